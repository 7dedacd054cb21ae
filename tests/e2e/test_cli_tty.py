"""The ``asynctask`` CLI as a person uses it: in a real terminal (tmux), typed in, read from
the screen. The live bar advances while the handler reports progress and ends at 100%
Succeeded; the exit code is what the shell sees."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.gateway_client import Gateway

pytestmark = pytest.mark.e2e
pytest_plugins = ["tests.e2e.gateway_fixtures", "tests.e2e.client_fixtures"]
BIN = Path(sys.executable).parent
PERCENT = re.compile(r"\]\s+(\d+)% (\w+)")
EXITED = re.compile(r"^EXIT=\d+", re.MULTILINE)  # the shell's answer, not the typed line


class Terminal:
    """A tmux server of its own (``-L``), one 110x20 window running bash."""

    def __init__(self, env: dict[str, str]) -> None:
        self.socket = f"asynctask-{uuid.uuid4().hex[:8]}"
        self.env = env
        self.tmux(
            "new-session", "-d", "-s", "t", "-x", "110", "-y", "20", "bash --norc --noprofile"
        )

    def tmux(self, *args: str) -> str:
        return subprocess.run(
            ["tmux", "-L", self.socket, "-f", os.devnull, *args],
            env=self.env,
            capture_output=True,
            text=True,
            check=True,
            timeout=30,
        ).stdout

    def type(self, line: str) -> None:
        self.tmux("send-keys", "-t", "t", line, "Enter")

    def screen(self) -> str:
        return self.tmux("capture-pane", "-p", "-t", "t")

    def close(self) -> None:
        self.tmux("kill-server")


@pytest.fixture
def terminal(
    writer_kubeconfig: Path, gateway: Gateway, client_worker: object
) -> Iterator[Terminal]:
    """A shell with the ``writer`` caller's kubeconfig, and the gateway's address, token
    and namespace in ``GW_URL``, ``GW_TOKEN`` and ``GW_NS`` for a command to use."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ASYNCTASK_", "TMUX"))}
    env.update(
        KUBECONFIG=str(writer_kubeconfig),
        TERM="xterm-256color",
        PS1="$ ",
        PATH=f"{BIN}{os.pathsep}{env.get('PATH', '')}",
        GW_URL=gateway.url,
        GW_TOKEN=gateway.tokens["writer"],
        GW_NS=gateway.namespace,
    )
    term = Terminal(env)
    try:
        yield term
    finally:
        term.close()


def test_the_live_bar_advances_and_ends_at_100_percent_succeeded(
    terminal: Terminal, tmp_path: Path
) -> None:
    terminal.type(
        'asynctask submit cl-steps --request \'{"steps": 4, "pause": 1.5}\' --wait; echo EXIT=$?'
    )
    seen: list[tuple[int, str]] = []
    screens: list[str] = []
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        screen = terminal.screen()
        screens.append(screen)
        for percent, phase in PERCENT.findall(screen):
            if not seen or seen[-1] != (int(percent), phase):
                seen.append((int(percent), phase))
        if EXITED.search(screen):
            break
        time.sleep(0.3)
    (tmp_path / "screens.txt").write_text("\n----\n".join(screens))
    running_screens = [s for s in screens if re.search(r"\] +[1-9]\d% Processing", s)]
    print("while running:", *running_screens[-1:], sep="\n")
    print("at the end:", screens[-1].rstrip(), sep="\n")
    print("bar states:", seen)
    final = screens[-1]
    assert "EXIT=0" in final, final
    assert seen[-1] == (100, "Succeeded"), seen
    running = [p for p, phase in seen if phase == "Processing" and 0 < p < 100]
    assert len(set(running)) >= 2, f"the bar did not advance: {seen}"
    assert running == sorted(running)
    bar_line = next(line for line in final.splitlines() if "100% Succeeded" in line)
    assert "[" + "=" * 10 in bar_line and "ETA" not in bar_line
    assert re.search(r"\d+:\d\d$", bar_line.rstrip()), bar_line  # the elapsed time
    result = next(line for line in final.splitlines() if line.startswith("{"))
    assert json.loads(result) == {"steps": 4, "greeting": "Hello, world!"}


def test_watch_through_the_gateway_shows_an_estimate_while_the_task_runs(
    terminal: Terminal,
) -> None:
    terminal.type('export ASYNCTASK_GATEWAY="$GW_URL" ASYNCTASK_TOKEN="$GW_TOKEN"; clear')
    terminal.type(
        'N=$(asynctask -n $GW_NS submit cl-steps --request \'{"steps": 5, '
        "\"pause\": 1.2}' -o json | python3 -c 'import json,sys; "
        'print(json.load(sys.stdin)["name"])\'); asynctask -n $GW_NS watch $N; '
        "echo EXIT=$?"
    )
    etas = set()
    deadline = time.monotonic() + 90
    screen = ""
    while time.monotonic() < deadline and not EXITED.search(screen):
        screen = terminal.screen()
        etas.update(re.findall(r"ETA (\d+:\d\d)", screen))
        time.sleep(0.3)
    print(screen)
    assert "EXIT=0" in screen and "100% Succeeded" in screen
    assert etas, "no time-left estimate was shown while the task ran"
