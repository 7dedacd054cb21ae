"""docs/architecture.md names every module of the four packages, and no module that is gone.

Each package has one section whose heading names its folder (``## The operator
(`operator/asynctask_operator/`)``); in it, every module appears in backticks by its path
inside the package (`` `cli.py` ``, `` `webhooks/sender.py` ``) in the first column of a
table row. Package ``__init__`` and ``__main__`` modules are wiring, not rooms, and need no
row.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]
DOC = REPO / "docs" / "architecture.md"
PACKAGES = (
    "operator/asynctask_operator",
    "worker/asynctask_worker",
    "gateway/asynctask_gateway",
    "client/asynctask_client",
)
WIRING = {"__init__.py", "__main__.py"}


def modules(package: str) -> set[str]:
    root = REPO / package
    return {p.relative_to(root).as_posix() for p in root.rglob("*.py") if p.name not in WIRING}


def section(text: str, package: str) -> str:
    """The part of the page under the one ``## `` heading that names ``package/``."""
    parts = re.split(r"^## ", text, flags=re.MULTILINE)
    found = [p for p in parts[1:] if f"`{package}/`" in p.split("\n", 1)[0]]
    assert len(found) == 1, f"docs/architecture.md needs one '## ...(`{package}/`)' section"
    return found[0]


def named(text: str) -> set[str]:
    """The modules the first column of the section's tables names (prose and the "owns"
    column may mention other files)."""
    first = [line.split("|")[1] for line in text.splitlines() if line.startswith("|")]
    return set(re.findall(r"`([\w/]+\.py)`", "\n".join(first)))


@pytest.mark.parametrize("package", PACKAGES)
def test_every_module_has_its_line_and_no_line_is_stale(package: str) -> None:
    text = section(DOC.read_text(), package)
    have, told = modules(package), named(text)
    assert not have - told, f"modules missing from docs/architecture.md: {sorted(have - told)}"
    assert not told - have, (
        f"docs/architecture.md names modules that are gone: {sorted(told - have)}"
    )


def test_the_map_is_checked_against_real_files() -> None:
    """The check above would pass on an empty tree: make sure it saw the packages."""
    assert all(len(modules(p)) >= 5 for p in PACKAGES)
    assert "tracking.py" in modules("operator/asynctask_operator")
