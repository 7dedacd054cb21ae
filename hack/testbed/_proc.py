"""Small process helpers shared by the launchers: free ports, waiting, clean teardown."""

from __future__ import annotations

import contextlib
import os
import random
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path


def log(component: str, text: str) -> None:
    print(f"[{component}] {text}", file=sys.stderr, flush=True)


#: Ports handed out by :func:`free_port` in this process (never handed out twice).
_HANDED_OUT: set[int] = set()
#: How many ports below the kernel's ephemeral range :func:`free_port` chooses from.
_PORT_SPAN = 10_000
#: Kubernetes' NodePort range starts here (kube-proxy may answer them on 127.0.0.1 too).
_NODE_PORTS = 30_000


def _ephemeral_low() -> int:
    """The first port of the kernel's range for outgoing connections' source ports."""
    try:
        text = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text()
        return int(text.split()[0])
    except (OSError, ValueError, IndexError):
        return 32768  # Linux's default


def free_port() -> int:
    """A free TCP port on 127.0.0.1 for a test-bed service, below the ephemeral range.

    A port from the ephemeral range (what binding port 0 gives) can be taken as the
    source port of any outgoing connection between this check and the service's bind, or
    while a killed service restarts on it: clients that reconnect to a stopped RabbitMQ
    node make many connections, and a restarted node once found its distribution port so
    taken (``dist_port_already_used``). Below the range, only a listener can take it.
    Kubernetes' NodePorts are avoided too."""
    low = min(_ephemeral_low(), _NODE_PORTS)
    first = max(1024, low - _PORT_SPAN)
    for _ in range(1000):
        port = random.randrange(first, low)
        if port in _HANDED_OUT:
            continue
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
        _HANDED_OUT.add(port)
        return port
    raise RuntimeError(f"no free port in {first}-{low - 1}")


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
    timeout: float = 30,
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
