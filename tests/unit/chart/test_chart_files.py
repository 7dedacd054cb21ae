"""The chart's files themselves: the CRD copy, the values documentation and schema, versions."""

from __future__ import annotations

import json
import re
import tomllib
from pathlib import Path
from typing import Any

import yaml

from asynctask_worker._version import __version__
from tests.incluster.install_lines import install_lines, install_version

REPO = Path(__file__).resolve().parents[3]
CHART = REPO / "deploy" / "helm" / "asynctask"
CRDS = REPO / "deploy" / "crds"


def test_chart_crds_are_byte_identical_to_deploy_crds() -> None:
    source = sorted(p.name for p in CRDS.iterdir())
    copy = sorted(p.name for p in (CHART / "crds").iterdir())
    assert copy == source, "the chart's crds/ must hold exactly the files of deploy/crds/"
    for name in source:
        assert (CHART / "crds" / name).read_bytes() == (CRDS / name).read_bytes(), (
            f"crds/{name} differs: copy deploy/crds/{name} into the chart"
        )


def test_chart_versions_are_the_projects_one_version() -> None:
    """The chart carries the version of asynctask_worker/_version.py, which pyproject reads:
    change one without the other and this fails."""
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    project = tomllib.loads((REPO / "pyproject.toml").read_text())
    assert chart["apiVersion"] == "v2"
    assert chart["name"] == "asynctask"
    assert "version" in project["project"]["dynamic"] and "version" not in project["project"]
    source = project["tool"]["setuptools"]["dynamic"]["version"]["attr"]
    assert source == "asynctask_worker._version.__version__"
    assert chart["version"] == __version__, "Chart.yaml's version is not the project's"
    assert chart["appVersion"] == __version__, "the image tag defaults to appVersion"
    assert re.fullmatch(r"\d+\.\d+\.\d+", chart["version"])


def schema_objects(schema: dict[str, Any], path: str = "") -> list[tuple[str, dict[str, Any]]]:
    found = [(path, schema)] if "properties" in schema else []
    for name, sub in schema.get("properties", {}).items():
        found += schema_objects(sub, f"{path}.{name}")
    if isinstance(schema.get("items"), dict):
        found += schema_objects(schema["items"], f"{path}[]")
    return found


def test_schema_refuses_unknown_keys_everywhere() -> None:
    schema = json.loads((CHART / "values.schema.json").read_text())
    objects = schema_objects(schema)
    assert len(objects) > 15
    for path, obj in objects:
        assert obj.get("additionalProperties") is False, f"{path or '<root>'} allows unknown keys"


def leaf_paths(values: Any, schema: dict[str, Any], path: str = "") -> list[str]:
    """Keys to document: those whose schema has no sub-properties of its own."""
    out = []
    for key, value in values.items():
        sub = schema["properties"][key]
        if isinstance(value, dict) and "properties" in sub:
            out += leaf_paths(value, sub, f"{path}.{key}")
        else:
            out.append(f"{path}.{key}")
    return out


def documented_keys(text: str) -> set[str]:
    """Dotted paths of the keys in values.yaml whose line is preceded by a `# --` comment
    (the helm-docs convention), possibly followed by more comment lines."""
    documented: set[str] = set()
    stack: list[tuple[int, str]] = []  # (indent, key) of the enclosing keys
    lines = text.splitlines()
    for i, line in enumerate(lines):
        m = re.match(r"^(\s*)([A-Za-z][A-Za-z0-9]*):", line)
        if not m or line.lstrip().startswith("-"):
            continue
        indent = len(m.group(1))
        while stack and stack[-1][0] >= indent:
            stack.pop()
        stack.append((indent, m.group(2)))
        j = i - 1
        while (
            j >= 0 and lines[j].strip().startswith("#") and not lines[j].strip().startswith("# --")
        ):
            j -= 1
        if j >= 0 and lines[j].strip().startswith("# --"):
            documented.add("." + ".".join(k for _, k in stack))
    return documented


def test_every_value_is_documented() -> None:
    text = (CHART / "values.yaml").read_text()
    values = yaml.safe_load(text)
    schema = json.loads((CHART / "values.schema.json").read_text())
    leaves = leaf_paths(values, schema)
    assert ".image.repository" in leaves and ".workers.defaults.autoscaling.minReplicas" in leaves
    missing = sorted(set(leaves) - documented_keys(text))
    assert missing == [], f"values without a '# --' comment: {missing}"


def test_every_schema_property_is_described() -> None:
    schema = json.loads((CHART / "values.schema.json").read_text())
    missing = []
    for path, obj in schema_objects(schema):
        for name, sub in obj["properties"].items():
            if "description" not in sub and "properties" not in sub:
                missing.append(f"{path}.{name}")
    assert missing == []


def test_defaults_pull_no_latest_and_name_no_registry() -> None:
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    assert values["image"]["tag"] in ("", None) or values["image"]["tag"] != "latest"
    assert "/" not in values["image"]["repository"]  # no registry host baked in
    for path in [CHART / "values.yaml", *sorted((CHART / "ci").glob("*.yaml"))]:
        assert ":latest" not in path.read_text() and "tag: latest" not in path.read_text()


def test_ci_values_files_are_valid_yaml_maps() -> None:
    files = sorted((CHART / "ci").glob("*-values.yaml"))
    assert len(files) >= 4
    for path in files:
        data = yaml.safe_load(path.read_text())
        assert data is None or isinstance(data, dict), path.name


def test_the_readme_installs_this_version_from_the_packaged_files() -> None:
    """The README's install lines (which tests/incluster runs) name this release's files."""
    lines = install_lines()
    assert install_version(lines) == __version__, "README: VERSION= is not the project's"
    ctr = "ctr -n k8s.io images import --base-name localhost/asynctask"
    assert f"{ctr} asynctask-image-$VERSION.oci.tar" in lines
    assert "helm install asynctask asynctask-$VERSION.tgz" in lines
