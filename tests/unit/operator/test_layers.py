"""The pure modules stay pure: importing them loads no client library and no I/O module.

``status`` and ``deadlines`` (and what they import) decide; everything that talks to
Kubernetes, RabbitMQ or HTTP lives elsewhere. Checked in a fresh interpreter, so what
other tests imported cannot hide an import. The wire contract (``asynctask_worker.messages``)
is the baseline: what importing it loads (today its package's ``__init__`` loads the SDK's
runtime, pika included) is the SDK's business, not these modules'.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

FORBIDDEN_LIBRARIES = ("kopf", "kubernetes", "pika", "aiohttp")
IO_MODULES = (
    "app",
    "apiserver.apiclient",
    "apiserver.kube",
    "apiserver.listwatch",
    "broker",
    "handlers",
    "inbox",
    "kube_events",
    "leader.leadership",
    "outage",
    "scaling",
    "timers",
    "tracking",
    "webhooks",
    "webhook_sender",
    "writer",
)


def loaded_after(module: str) -> set[str]:
    code = f"import json, sys; import {module}; print(json.dumps(sorted(sys.modules)))"
    out = subprocess.run(
        [sys.executable, "-c", code], check=True, capture_output=True, text=True
    ).stdout
    return set(json.loads(out))


@pytest.mark.parametrize(
    "module",
    [
        "asynctask_operator.status",
        "asynctask_operator.deadlines",
        "asynctask_operator.leader.election",
        "asynctask_operator.spec",
        "asynctask_operator.apiserver.resource",
    ],
)
def test_pure_modules_import_no_io(module: str) -> None:
    loaded = loaded_after(module) - loaded_after("asynctask_worker.messages")
    libraries = {name for name in loaded if name.split(".")[0] in FORBIDDEN_LIBRARIES}
    assert libraries == set(), f"{module} pulls in {sorted(libraries)}"
    io = {
        name
        for name in loaded
        if name.startswith("asynctask_operator.")
        and name.removeprefix("asynctask_operator.") in IO_MODULES
    }
    assert io == set(), f"{module} pulls in {sorted(io)}"


def test_the_check_sees_what_an_io_module_imports() -> None:
    loaded = loaded_after("asynctask_operator.app") - loaded_after("asynctask_worker.messages")
    assert {"kubernetes", "asynctask_operator.apiserver.kube"} <= loaded  # the probe itself works
