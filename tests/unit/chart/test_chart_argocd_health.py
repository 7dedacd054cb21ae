"""The Argo CD health check (deploy/argocd/asynctask.dev/AsyncTask/health.lua) on every case
of its health_test.yaml, the format Argo CD's own tests use, run in gopher-lua (the Lua 5.1
interpreter Argo CD embeds, set up as Argo CD sets up a check from argocd-cm: tests/gitops.py)
and in Debian's lua5.4; and what kstatus (Flux) computes for the same samples. Argo CD hands
the object to the script as the global ``obj``."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from asynctask_worker.messages import Phase
from tests import gitops

REPO = Path(__file__).resolve().parents[3]
CHECK = REPO / "deploy" / "argocd" / "asynctask.dev" / "AsyncTask"
CRD = REPO / "deploy" / "crds" / "asynctask.dev_asynctasks.yaml"
EXPECTED = {  # phase -> Argo CD health, as docs/deploying.md states it
    "Pending": "Progressing",
    "Processing": "Progressing",
    "Succeeded": "Healthy",
    "Failed": "Degraded",
    "Error": "Degraded",
    "TimedOut": "Degraded",
    "Cancelled": "Degraded",
}
KSTATUS = {  # sample -> what kstatus (Flux) computes, as docs/deploying.md states it
    "new": "InProgress",
    "pending": "InProgress",
    "processing": "InProgress",
    "cancel-requested": "InProgress",
    "succeeded": "Current",
    "failed": "Failed",
    "error": "Failed",
    "timedout": "Failed",
    "cancelled": "Failed",
    # Without the CRD's status default; the apiserver never shows such an object any more.
    "no-status": "Current",
    "unknown-phase": "Current",  # no conditions to go by: kstatus assumes current
}


def lua() -> str:
    found = shutil.which("lua5.4") or shutil.which("lua")
    assert found, "lua5.4 is missing: hack/install-deps.sh installs Debian's lua5.4"
    return found


def lua_literal(value: Any) -> str:
    """A Lua table constructor for JSON-like data (what Argo CD builds from the object)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        out = []
        for byte in value.encode():
            char = chr(byte)
            out.append(char if 32 <= byte < 127 and char not in '"\\' else f"\\{byte:03d}")
        return '"' + "".join(out) + '"'
    if isinstance(value, list):
        return "{" + ", ".join(lua_literal(v) for v in value if v is not None) + "}"
    if isinstance(value, dict):
        return (
            "{"
            + ", ".join(
                f"[{lua_literal(str(k))}] = {lua_literal(v)}"
                for k, v in value.items()
                if v is not None
            )
            + "}"
        )
    raise TypeError(f"no Lua literal for {value!r}")


def run_check(
    obj: dict[str, Any], tmp_path: Path, script: Path = CHECK / "health.lua"
) -> dict[str, str]:
    harness = tmp_path / "harness.lua"
    harness.write_text(
        f"obj = {lua_literal(obj)}\n"
        f"local check = assert(loadfile({lua_literal(str(script))}))\n"
        "local hs = check()\n"
        'io.write(tostring(hs.status), "\\n", tostring(hs.message), "\\n")\n'
    )
    proc = subprocess.run(
        [lua(), str(harness)], capture_output=True, text=True, timeout=30, check=False
    )
    assert proc.returncode == 0, proc.stderr
    status, message = proc.stdout.split("\n", 2)[:2]
    return {"status": status, "message": message}


def cases() -> list[dict[str, Any]]:
    data = yaml.safe_load((CHECK / "health_test.yaml").read_text())
    return list(data["tests"])


@pytest.mark.parametrize("case", cases(), ids=lambda c: Path(c["inputPath"]).stem)
def test_health_check_case_in_gopher_lua(case: dict[str, Any]) -> None:
    obj = yaml.safe_load((CHECK / case["inputPath"]).read_text())
    assert gitops.argocd(obj) == [case["healthStatus"]]


@pytest.mark.parametrize("case", cases(), ids=lambda c: Path(c["inputPath"]).stem)
def test_health_check_case_in_lua54(case: dict[str, Any], tmp_path: Path) -> None:
    obj = yaml.safe_load((CHECK / case["inputPath"]).read_text())
    assert run_check(obj, tmp_path) == case["healthStatus"]


def test_kstatus_of_every_sample() -> None:
    samples = sorted((CHECK / "testdata").glob("*.yaml"))
    verdicts = gitops.kstatus(*(yaml.safe_load(p.read_text()) for p in samples))
    assert {p.stem: v["status"] for p, v in zip(samples, verdicts, strict=True)} == KSTATUS
    new = verdicts[[p.stem for p in samples].index("new")]
    assert new["message"] == "AsyncTask generation is 1, but latest observed generation is 0"


def test_the_new_sample_is_what_the_crd_defaults_give() -> None:
    """testdata/new.yaml is no-status.yaml with the CRD's defaults applied (the apiserver
    applies them on create and on every read; tests/e2e/test_gitops.py reads them back)."""
    crd = yaml.safe_load(CRD.read_text())
    status = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["status"]
    defaulted = dict(status["default"])
    for name, prop in status["properties"].items():
        if "default" in prop and name not in defaulted:
            defaulted[name] = prop["default"]
    bare = yaml.safe_load((CHECK / "testdata" / "no-status.yaml").read_text())
    assert "status" not in bare
    assert yaml.safe_load((CHECK / "testdata" / "new.yaml").read_text()) == dict(
        bare, status=defaulted
    )


def test_gopher_lua_is_argo_cds_lua_not_lua54(tmp_path: Path) -> None:
    """The gopher-lua run is not lua5.4 under another name: Lua 5.3+ syntax (integer
    division) runs in lua5.4 and fails in gopher-lua, as it would in Argo CD; so does the
    string library, which Argo CD does not open for checks from argocd-cm."""
    obj = yaml.safe_load((CHECK / "testdata" / "pending.yaml").read_text())
    modern = tmp_path / "modern.lua"
    modern.write_text('return {status = "Healthy", message = tostring(7 // 2)}\n')
    assert run_check(obj, tmp_path, modern) == {"status": "Healthy", "message": "3"}
    assert "syntax error" in gitops.argocd_error(obj, modern)
    formatted = tmp_path / "formatted.lua"
    formatted.write_text('return {status = "Healthy", message = string.format("%d", 3)}\n')
    assert run_check(obj, tmp_path, formatted) == {"status": "Healthy", "message": "3"}
    assert "non-table object(nil) with key 'format'" in gitops.argocd_error(obj, formatted)
    plain = tmp_path / "plain.lua"
    plain.write_text('return {status = "Healthy", message = tostring(7 / 2)}\n')
    assert gitops.argocd(obj, script=plain) == [{"status": "Healthy", "message": "3.5"}]


def test_every_phase_has_a_sample_and_the_documented_health(tmp_path: Path) -> None:
    crd = yaml.safe_load(CRD.read_text())
    status = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["status"]
    phases = set(status["properties"]["phase"]["enum"])
    assert phases == {p.value for p in Phase} == set(EXPECTED)
    covered: dict[str, str] = {}
    for case in cases():
        obj = yaml.safe_load((CHECK / case["inputPath"]).read_text())
        phase = (obj.get("status") or {}).get("phase")
        generation, observed = (
            obj["metadata"].get("generation"),
            (obj.get("status") or {}).get("observedGeneration"),
        )
        if phase in EXPECTED and observed == generation:
            covered[phase] = case["healthStatus"]["status"]
    assert covered == EXPECTED


def test_every_sample_is_a_valid_asynctask() -> None:
    """The samples use only fields the CRD declares (so they look like real objects)."""
    crd = yaml.safe_load(CRD.read_text())
    schema = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]

    def unknown(value: Any, sub: dict[str, Any], path: str) -> list[str]:
        if not isinstance(value, dict) or "properties" not in sub:
            if isinstance(value, list) and "items" in sub:
                return [
                    u for i, v in enumerate(value) for u in unknown(v, sub["items"], f"{path}[{i}]")
                ]
            return []
        out = []
        for key, v in value.items():
            if key not in sub["properties"]:
                out.append(f"{path}.{key}")
            else:
                out += unknown(v, sub["properties"][key], f"{path}.{key}")
        return out

    samples = sorted((CHECK / "testdata").glob("*.yaml"))
    assert {f"testdata/{p.name}" for p in samples} == {c["inputPath"] for c in cases()}
    for sample in samples:
        obj = yaml.safe_load(sample.read_text())
        assert obj["apiVersion"] == "asynctask.dev/v1alpha1" and obj["kind"] == "AsyncTask"
        obj.pop("metadata")
        assert unknown(obj, schema, "") == [], sample.name


def test_the_harness_notices_a_wrong_mapping(tmp_path: Path) -> None:
    """The cases run the real script: a copy that maps Succeeded wrongly fails its case."""
    case = next(c for c in cases() if c["inputPath"] == "testdata/succeeded.yaml")
    obj = yaml.safe_load((CHECK / case["inputPath"]).read_text())
    mutant = tmp_path / "mutant.lua"
    source = (CHECK / "health.lua").read_text()
    assert source.count('hs.status = "Healthy"') == 1
    mutant.write_text(source.replace('hs.status = "Healthy"', 'hs.status = "Degraded"'))
    assert run_check(obj, tmp_path, mutant) != case["healthStatus"]
    assert run_check(obj, tmp_path) == case["healthStatus"]
    assert gitops.argocd(obj, script=mutant) != [case["healthStatus"]]
    assert gitops.argocd(obj) == [case["healthStatus"]]
