"""A client generated from docs/openapi.json (openapi-python-client, offline) submits a task
and waits for it against the real gateway: a second consumer of the document, reading its
types, operations and answers as any client generator would."""

from __future__ import annotations

import importlib
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from tests.e2e.system import Process

if TYPE_CHECKING:
    from tests.e2e.gateway_client import Gateway

pytestmark = pytest.mark.e2e
pytest_plugins = ["tests.e2e.gateway_fixtures"]  # gateway
REPO = Path(__file__).resolve().parents[2]
PACKAGE = "generated_gateway"


def generate(folder: Path) -> None:
    """The client package ``generated_gateway`` in ``folder``: no project files, no
    formatter run afterwards (the generator's post hooks are switched off)."""
    config = folder / "generator.yaml"
    config.write_text(f"post_hooks: []\npackage_name_override: {PACKAGE}\n")
    generator = Path(sys.executable).parent / "openapi-python-client"
    proc = subprocess.run(
        [
            str(generator),
            "generate",
            "--path",
            str(REPO / "docs" / "openapi.json"),
            "--output-path",
            str(folder / PACKAGE),
            "--meta",
            "none",
            "--config",
            str(config),
            "--fail-on-warning",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    print(proc.stdout, proc.stderr)
    assert proc.returncode == 0
    # Every generated module compiles without a warning (a document the generator reads
    # wrongly shows here first, e.g. as invalid literals).
    compiled = subprocess.run(
        [sys.executable, "-W", "error", "-m", "compileall", "-q", str(folder / PACKAGE)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert compiled.returncode == 0, compiled.stdout + compiled.stderr


def test_a_generated_client_submits_a_task_and_waits_for_its_result(
    gateway: Gateway, worker: Process, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    generate(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    client_mod: Any = importlib.import_module(f"{PACKAGE}.client")
    create: Any = importlib.import_module(f"{PACKAGE}.api.default.create_task")
    wait: Any = importlib.import_module(f"{PACKAGE}.api.default.wait_task")
    get: Any = importlib.import_module(f"{PACKAGE}.api.default.get_task")
    models: Any = importlib.import_module(f"{PACKAGE}.models")
    client = client_mod.AuthenticatedClient(base_url=gateway.url, token=gateway.tokens["writer"])
    try:
        body = models.TaskRequest.from_dict({"queue": "hello", "request": {"name": "Generated"}})
        answer = create.sync_detailed(gateway.namespace, client=client, body=body)
        assert answer.status_code == 202, answer.content
        created = answer.parsed
        assert isinstance(created, models.TaskView)
        assert answer.headers["Location"].endswith(f"/tasks/{created.name}")
        done = created
        for _ in range(10):  # each long-poll answers at its timeout with done: false
            done = wait.sync(gateway.namespace, created.name, client=client, timeout="10s")
            assert isinstance(done, models.TaskView)
            if done.done:
                break
        assert done.done and done.phase == models.Phase.SUCCEEDED
        assert done.result == {"greeting": "Hello, Generated!", "steps": 5}
        # A documented refusal is parsed as the document's Problem, not an exception.
        missing = get.sync_detailed(gateway.namespace, "no-such-task", client=client)
        assert missing.status_code == 404
        assert isinstance(missing.parsed, models.Problem)
        assert missing.parsed.reason == "NotFound"
    finally:
        client.get_httpx_client().close()
        for name in [m for m in sys.modules if m == PACKAGE or m.startswith(f"{PACKAGE}.")]:
            del sys.modules[name]
