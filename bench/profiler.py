"""Where a burst's time goes: py-spy on the operator, and what the apiserver served.

``--profile FILE`` records the operator with py-spy (``pip install py-spy`` into the
benchmark's environment; it is no dependency of the project) in its ``raw`` format
(collapsed stacks, one line per stack with its sample count), non-blocking so that the
operator is not paused to be sampled. ``summary`` reads such a file back: the share of
samples in each of our functions, self and inclusive.
"""

from __future__ import annotations

import collections
import shutil
import signal
import subprocess
import sys
import threading
from pathlib import Path

from stack import Stack


def start(stack: Stack, path: str) -> subprocess.Popen[bytes] | None:
    if not path:
        return None
    assert stack.operator is not None
    exe = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    return subprocess.Popen(
        [exe, "record", "--pid", str(stack.operator.pid), "--rate", "200", "--nonblocking",
         "--format", "raw", "--output", path],
        stdout=subprocess.DEVNULL,
    )  # fmt: skip


def stop(spy: subprocess.Popen[bytes] | None) -> None:
    if spy is None:
        return
    spy.send_signal(signal.SIGINT)  # py-spy writes its file on SIGINT
    spy.wait(30)


def start_apiserver(stack: Stack, path: str, seconds: int) -> threading.Thread | None:
    """The apiserver's CPU profile over the next ``seconds`` into ``path`` (a thread; the
    control plane was started with its profiler on, ``testbed.controlplane.PROFILING_ENV``)."""
    if not path:
        return None

    def take() -> None:
        Path(path).write_bytes(stack.cp.cpu_profile(seconds))

    thread = threading.Thread(target=take, daemon=True)
    thread.start()
    return thread


def stop_apiserver(thread: threading.Thread | None, path: str, lines: int = 40) -> None:
    """Wait for the apiserver's profile, then print its top frames, flat and cumulative."""
    if thread is None:
        return
    thread.join()
    args = ["go", "tool", "pprof", "-top", f"-nodecount={lines}"]
    for extra, title in (([], "flat"), (["-cum"], "cumulative")):
        out = subprocess.run([*args, *extra, path], capture_output=True, text=True, check=False)
        print(f"  apiserver CPU profile ({title}), {path}:\n{out.stdout}{out.stderr}")


def delta(
    after: dict[str, tuple[float, float]], before: dict[str, tuple[float, float]]
) -> dict[str, tuple[float, float]]:
    out = {}
    for key, (count, seconds) in after.items():
        was = before.get(key, (0.0, 0.0))
        if count - was[0] or seconds - was[1]:
            out[key] = (count - was[0], seconds - was[1])
    return out


def request_lines(requests: dict[str, tuple[float, float]], tasks: int) -> str:
    """The apiserver's requests over the burst by kind, most time first (a WATCH's seconds
    are the lifetime of the watches that ended; ``watch-events`` are the events sent)."""
    lines = ["  apiserver, over the burst: requests (per task), seconds spent serving them"]
    for key, (count, seconds) in sorted(requests.items(), key=lambda kv: (-kv[1][1], kv[0])):
        if key.startswith("watch-events"):
            continue
        lines.append(f"    {key:<36} {count:7.0f} ({count / tasks:5.2f}) {seconds:8.2f} s")
    for key, (count, _) in sorted(requests.items()):
        if key.startswith("watch-events") and count >= 0.05 * tasks:  # not the resyncs
            lines.append(f"    {key:<36} {count:7.0f} ({count / tasks:5.2f})")
    return "\n".join(lines)


#: Leaf frames of a thread that waits (py-spy's --nonblocking mode cannot tell idle threads
#: apart, so their samples are dropped by the frame they wait in).
IDLE = (
    "Condition.wait", "PollPoller.poll", "EpollSelector.select", "_PollLikeSelector.select",
    "Event.wait", "Queue.get", "Thread.join", "_wait_for_tstate_lock",
)  # fmt: skip
#: The operator's threads, by a frame only they have.
THREADS = (
    ("event loop", "run_forever"),
    ("publishers (pika)", "Publisher.run"),
    ("consumer (pika)", "Broker.run"),
)


def summary(path: Path, top: int = 40, prefix: str = "") -> str:
    """The busy samples of a py-spy ``raw`` file: by thread, then the functions with the
    most samples, inclusive (frames whose text contains ``prefix``) and self."""
    own: collections.Counter[str] = collections.Counter()
    incl: collections.Counter[str] = collections.Counter()
    threads: collections.Counter[str] = collections.Counter()
    total = busy = 0
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack:
            continue
        n, frames = int(count), stack.split(";")
        total += n
        if frames[-1].startswith(tuple(f"{name} " for name in IDLE)):
            continue
        busy += n
        own[frames[-1]] += n
        thread = next((t for t, mark in THREADS if any(mark in f for f in frames)), "other")
        threads[thread] += n
        for frame in set(frames):
            if prefix in frame:
                incl[frame] += n
    out = [f"{total} samples, {busy} busy (not waiting); by thread:"]
    out += [f"  {n / busy:6.1%}  {t}" for t, n in threads.most_common()]
    out.append(f"inclusive (frames containing {prefix!r}):")
    out += [f"  {n / busy:6.1%}  {f}" for f, n in incl.most_common(top)]
    out.append("self:")
    out += [f"  {n / busy:6.1%}  {f}" for f, n in own.most_common(top)]
    return "\n".join(out)


if __name__ == "__main__":
    print(summary(Path(sys.argv[1]), prefix=sys.argv[2] if len(sys.argv) > 2 else ""))
