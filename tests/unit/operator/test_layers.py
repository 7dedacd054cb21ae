"""The pure modules stay pure: importing them loads no client library and no I/O module.

Which modules are pure, and what they may not load, is written once: the ``pure`` contract
of import-linter in ``pyproject.toml``. This test reads it and checks the same at run time, in
a fresh interpreter, so what other tests imported cannot hide an import, and what a parent
package's ``__init__`` loads counts too (lint-imports does not follow those).
"""

from __future__ import annotations

import json
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest

PYPROJECT = Path(__file__).resolve().parents[3] / "pyproject.toml"


def contract(contract_id: str) -> dict[str, Any]:
    config = tomllib.loads(PYPROJECT.read_text())["tool"]["importlinter"]
    (found,) = [c for c in config["contracts"] if c.get("id") == contract_id]
    return dict(found)


PURE = contract("pure")


def loaded_after(module: str) -> set[str]:
    code = f"import json, sys; import {module}; print(json.dumps(sorted(sys.modules)))"
    out = subprocess.run(
        [sys.executable, "-c", code], check=True, capture_output=True, text=True
    ).stdout
    return set(json.loads(out))


def forbidden_among(loaded: set[str]) -> set[str]:
    """The modules of ``loaded`` that the contract forbids (a package includes its modules)."""
    forbidden = PURE["forbidden_modules"]
    return {m for m in loaded if any(m == f or m.startswith(f + ".") for f in forbidden)}


@pytest.mark.parametrize("module", PURE["source_modules"])
def test_pure_modules_import_no_io(module: str) -> None:
    loaded = loaded_after(module)
    pulled = {m if m.startswith("asynctask_") else m.split(".")[0] for m in forbidden_among(loaded)}
    assert pulled == set(), f"{module} pulls in {sorted(pulled)}"


def test_the_check_sees_what_an_io_module_imports() -> None:
    loaded = loaded_after("asynctask_operator.app")
    seen = forbidden_among(loaded)
    assert "aiohttp" in seen  # the probe works: a library, by its top-level name
    assert {"asynctask_operator.broker", "asynctask_operator.webhooks.dispatcher"} <= seen
