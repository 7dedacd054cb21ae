"""``import asynctask_client`` loads neither pika nor the SDK's runtime.

The client shares the wire contract and the task view with the worker SDK; the SDK's package
``__init__`` must therefore not import the runtime eagerly. import-linter cannot see this (it
skips a parent package's ``__init__``), so each check runs in a fresh interpreter and reads
``sys.modules``: what other tests imported cannot hide or fake an import.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

RUNTIME = ("pika", "asynctask_worker._runtime")


def loaded_after(code: str) -> set[str]:
    """The modules a fresh interpreter holds after running ``code``."""
    script = f"{code}\nimport json, sys\nprint(json.dumps(sorted(sys.modules)))"
    out = subprocess.run(
        [sys.executable, "-c", script], check=True, capture_output=True, text=True
    ).stdout
    return set(json.loads(out))


def runtime_in(modules: set[str]) -> set[str]:
    return {m for m in modules if any(m == r or m.startswith(r + ".") for r in RUNTIME)}


def test_the_client_loads_no_pika_and_no_runtime() -> None:
    loaded = loaded_after("import asynctask_client")
    assert {"asynctask_client", "asynctask_worker.messages"} <= loaded
    assert runtime_in(loaded) == set()


def test_the_wire_contract_and_the_task_view_load_no_runtime() -> None:
    loaded = loaded_after("import asynctask_worker.messages, asynctask_worker.views")
    assert runtime_in(loaded) == set()


def test_the_sdk_names_still_import_from_the_package() -> None:
    loaded = loaded_after(
        "from asynctask_worker import App, Phase, TaskContext, TaskFailed, WorkerSettings\n"
        "assert App('probe').name == 'probe' and Phase.SUCCEEDED.terminal"
    )
    assert runtime_in(loaded) == set()  # App alone needs no broker


def test_the_worker_loads_the_runtime_when_asked_for() -> None:
    loaded = loaded_after("from asynctask_worker import Worker")
    assert {"pika", "asynctask_worker._runtime.runtime"} <= loaded  # the probe itself works


def test_an_unknown_name_is_an_attribute_error() -> None:
    import asynctask_worker

    with pytest.raises(AttributeError, match="NoSuchThing"):
        asynctask_worker.NoSuchThing  # noqa: B018
