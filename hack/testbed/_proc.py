"""Small process helpers shared by the launchers: free ports, waiting, clean teardown."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path


def log(component: str, text: str) -> None:
    print(f"[{component}] {text}", file=sys.stderr, flush=True)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def spawn(
    args: list[str], logfile: Path, env: dict[str, str] | None = None
) -> subprocess.Popen[bytes]:
    """Start a service in its own process group, output to ``logfile``."""
    out = logfile.open("ab")
    try:
        return subprocess.Popen(
            args,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
            start_new_session=True,
        )
    finally:
        out.close()


def stop(proc: subprocess.Popen[bytes], timeout: float = 10.0) -> None:
    """SIGTERM the whole process group, SIGKILL it if it lingers."""
    if proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(5)


def wait_until(
    what: str,
    check: Callable[[], object],
    timeout: float,
    procs: Sequence[tuple[str, subprocess.Popen[bytes], Path]] = (),
    interval: float = 0.25,
) -> float:
    """Poll ``check`` until it is truthy; returns the seconds it took.

    The one wait of the project's tests and launchers. Fails fast with the log tail if one
    of ``procs`` died; an exception from ``check`` means "not yet" (a service still
    starting), and the last one is shown if time runs out.
    """
    start = time.monotonic()
    last_error: Exception | None = None
    while True:
        for name, proc, logfile in procs:
            if proc.poll() is not None:
                raise RuntimeError(
                    f"{name} exited with code {proc.returncode} while waiting for {what}; "
                    f"last lines of {logfile}:\n{tail(logfile)}"
                )
        try:
            if check():
                return time.monotonic() - start
        except Exception as exc:  # noqa: BLE001 - any failure just means "not yet"
            last_error = exc
        if time.monotonic() - start > timeout:
            detail = "".join(f"\n--- {n} ({lf}):\n{tail(lf)}" for n, _, lf in procs)
            if last_error is not None:
                detail += f"\nlast error of the check: {last_error!r}"
            raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}{detail}")
        time.sleep(interval)


def tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"
