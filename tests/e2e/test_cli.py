"""The ``asynctask`` CLI as a script uses it: exit codes per outcome, JSON and YAML output,
no escape codes off a terminal, both transports, and ``kubectl asynctask`` found on PATH
by kubectl's plugin convention. (As a person uses it, in a terminal: test_cli_tty.py.)"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from testbed import ControlPlane
from tests.e2e.gateway_client import Gateway

pytestmark = pytest.mark.e2e
pytest_plugins = ["tests.e2e.gateway_fixtures", "tests.e2e.client_fixtures"]
BIN = Path(sys.executable).parent


def cli_env(kubeconfig: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ASYNCTASK_")}
    env.update(KUBECONFIG=str(kubeconfig), PATH=f"{BIN}{os.pathsep}{env.get('PATH', '')}", **extra)
    return env


def run(
    env: dict[str, str], *args: str, program: str = "asynctask", timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [program, *args], env=env, capture_output=True, text=True, timeout=timeout, check=False
    )
    print(f"$ {program} {' '.join(args)}  -> {done.returncode}\n{done.stdout}{done.stderr}")
    return done


@pytest.fixture
def env(writer_kubeconfig: Path, client_worker: object) -> dict[str, str]:
    """The CLI's environment: the ``writer`` caller's kubeconfig, nothing else."""
    return cli_env(writer_kubeconfig)


def test_submit_wait_off_a_terminal_prints_plain_lines_and_the_result(env: dict[str, str]) -> None:
    done = run(env, "submit", "cl-steps", "--request", '{"steps": 2, "pause": 0.8}', "--wait")
    assert done.returncode == 0
    assert "\x1b" not in done.stdout + done.stderr and "\r" not in done.stdout
    lines = done.stdout.splitlines()
    assert any(" Processing " in line and "step 1 of 2" in line for line in lines), lines
    assert " Succeeded 100%" in lines[-2]
    assert json.loads(lines[-1]) == {"steps": 2, "greeting": "Hello, world!"}


@pytest.mark.parametrize(
    ("queue", "request_", "flags", "code"),
    [
        ("cl-refuses", "{}", [], 10),
        ("cl-raises", "{}", [], 11),
        ("cl-sleepy", '{"seconds": 30}', ["--timeout", "1"], 13),
    ],
)
def test_the_exit_code_says_the_outcome(
    env: dict[str, str], queue: str, request_: str, flags: list[str], code: int
) -> None:
    done = run(env, "submit", queue, "--request", request_, *flags, "--wait")
    assert done.returncode == code
    assert "\x1b" not in done.stdout + done.stderr


def test_cancel_then_wait_exits_12_and_a_short_wait_exits_5(env: dict[str, str]) -> None:
    submitted = run(env, "submit", "cl-sleepy", "--request", '{"seconds": 60}', "-o", "json")
    name = json.loads(submitted.stdout)["name"]
    assert run(env, "wait", name, "--timeout", "2").returncode == 5
    assert run(env, "result", name).returncode == 5
    assert run(env, "cancel", name).returncode == 0
    waited = run(env, "wait", name, "--timeout", "60", "-o", "json")
    assert waited.returncode == 12 and json.loads(waited.stdout)["phase"] == "Cancelled"


def test_machine_output_and_requests_from_files(env: dict[str, str], tmp_path: Path) -> None:
    (tmp_path / "request.json").write_text('{"steps": 1, "pause": 0.1, "name": "file"}')
    done = run(
        env,
        "submit",
        "cl-steps",
        "--request",
        f"@{tmp_path / 'request.json'}",
        "--wait",
        "-o",
        "json",
        "-l",
        "source=file",
    )
    view = json.loads(done.stdout)
    assert done.returncode == 0 and view["phase"] == "Succeeded"
    assert view["result"]["greeting"] == "Hello, file!"
    got = yaml.safe_load(run(env, "get", view["name"], "-o", "yaml").stdout)
    assert got["name"] == view["name"] and got["progress"] == 100
    listed = json.loads(run(env, "list", "--queue", "cl-steps", "-o", "json").stdout)
    assert view["name"] in {item["name"] for item in listed["items"]}
    result = run(env, "result", view["name"], "-o", "json")
    assert json.loads(result.stdout) == {"steps": 1, "greeting": "Hello, file!"}
    table = run(env, "list", "-l", "source=file").stdout.splitlines()
    assert table[0].split() == ["NAME", "PHASE", "PROGRESS", "AGE", "MESSAGE"]
    assert table[1].split()[:3] == [view["name"], "Succeeded", "100%"]


def test_usage_refusal_and_unreachable_servers_have_their_codes(env: dict[str, str]) -> None:
    bad = run(env, "submit", "cl-steps", "--request", "{not json")
    assert bad.returncode == 2 and "--request is not JSON" in bad.stderr
    missing = run(env, "get", "no-such-task")
    assert missing.returncode == 3 and "NotFound" in missing.stderr
    assert "history archive is read through the gateway" in missing.stderr  # where to look
    invalid = run(env, "submit", "cl-steps", "--retries", "99")
    assert invalid.returncode == 3 and "retries" in invalid.stderr
    down = run(env, "list", "--gateway", "http://127.0.0.1:9", "--token", "x")
    assert down.returncode == 4 and "cannot reach" in down.stderr


def test_the_gateway_transport_with_a_token_from_the_environment(
    env: dict[str, str], gateway: Gateway
) -> None:
    through = dict(env, ASYNCTASK_GATEWAY=gateway.url, ASYNCTASK_TOKEN=gateway.tokens["writer"])
    done = run(through, "submit", "cl-refuses", "-n", gateway.namespace, "--wait", "-o", "json")
    assert done.returncode == 10
    assert json.loads(done.stdout)["error"]["reason"] == "Refused"
    described = run(through, "describe", json.loads(done.stdout)["name"], "-n", gateway.namespace)
    assert "Phase:        Failed" in described.stdout
    denied = run(through, "list", "-n", gateway.other)
    assert denied.returncode == 3 and "Forbidden" in denied.stderr


def test_kubectl_finds_the_plugin_and_describe_shows_conditions_and_events(
    control_plane: ControlPlane, gateway: Gateway, client_worker: object
) -> None:
    assert control_plane.bin_dir is not None
    admin = cli_env(control_plane.kubeconfig)  # a client certificate, allowed to read Events
    kubectl = str(control_plane.bin_dir / "kubectl")
    plugins = run(admin, "plugin", "list", program=kubectl)
    assert str(BIN / "kubectl-asynctask") in plugins.stdout
    done = run(
        admin,
        "asynctask",
        "-n",
        gateway.namespace,
        "submit",
        "cl-raises",
        "--wait",
        "-o",
        "json",
        program=kubectl,
    )
    assert done.returncode == 11
    name = json.loads(done.stdout)["name"]
    described = run(
        admin, "asynctask", "describe", name, "-n", gateway.namespace, program=kubectl
    ).stdout
    assert "Phase:        Error" in described and "RuntimeError: the handler broke" in described
    assert "Completed     True" in described and "Stalled       True" in described
    assert "Events:" in described and "Error " in described.split("Events:")[1]
