"""CPU time per component over a window, from ``/proc/<pid>/stat``.

A component is one or more root processes and all their descendants (RabbitMQ's
``rabbitmq-server`` script starts ``beam.smp``, which starts ``erl_child_setup``...). Its CPU
is the sum, over every process of its tree, of ``utime + stime`` (the process itself) and
``cutime + cstime`` (children it has already reaped, so that no process that ended within
the window is lost). The difference of two snapshots is what the component used in between.
"""

from __future__ import annotations

import collections
import os
import time
from collections.abc import Iterable, Mapping
from pathlib import Path

TICK = 1.0 / os.sysconf("SC_CLK_TCK")


def _stat(pid: int) -> tuple[int, float] | None:
    """(parent pid, CPU seconds of the process and its reaped children) or None if gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name (field 2) is in parentheses and may hold spaces: split after it.
    fields = text[text.rindex(")") + 2 :].split()
    ppid = int(fields[1])
    utime, stime, cutime, cstime = (int(x) for x in fields[11:15])
    return ppid, (utime + stime + cutime + cstime) * TICK


def _table() -> tuple[dict[int, list[int]], dict[int, float]]:
    children: dict[int, list[int]] = collections.defaultdict(list)
    cpu: dict[int, float] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        found = _stat(int(entry.name))
        if found is None:
            continue
        children[found[0]].append(int(entry.name))
        cpu[int(entry.name)] = found[1]
    return children, cpu


def snapshot(components: Mapping[str, Iterable[int]]) -> dict[str, float]:
    """CPU seconds used so far by each component's process trees."""
    children, cpu = _table()
    out: dict[str, float] = {}
    for name, roots in components.items():
        seen: set[int] = set()
        todo = list(roots)
        while todo:
            pid = todo.pop()
            if pid in seen or pid not in cpu:
                continue
            seen.add(pid)
            todo.extend(children.get(pid, ()))
        out[name] = sum(cpu[pid] for pid in seen)
    return out


class Meter:
    """CPU per component between ``start()`` and ``stop()`` (wall time too)."""

    def __init__(self, components: Mapping[str, Iterable[int]]) -> None:
        self.components = {name: list(pids) for name, pids in components.items()}
        self._first: dict[str, float] = {}
        self._began = 0.0
        self.used: dict[str, float] = {}
        self.wall = 0.0

    def start(self) -> None:
        self._began = time.monotonic()
        self._first = snapshot(self.components)

    def stop(self) -> dict[str, float]:
        last = snapshot(self.components)
        self.wall = time.monotonic() - self._began
        self.used = {name: last[name] - self._first.get(name, 0.0) for name in last}
        return self.used


def per_task_lines(
    label: str, used: Mapping[str, float], tasks: int, extra: Iterable[str] = ()
) -> list[str]:
    """A table of CPU ms a task per component, the sum of all but ``extra`` (shown apart:
    the benchmark's own client, helpers that are not part of a task's path)."""
    skip = set(extra)
    lines = [f"  {label}: CPU ms per task ({tasks} tasks)"]
    total = 0.0
    for name, seconds in sorted(used.items(), key=lambda kv: -kv[1]):
        if name in skip:
            continue
        total += seconds
        lines.append(f"    {name:<24} {seconds * 1000 / tasks:7.2f}")
    lines.append(f"    {'total':<24} {total * 1000 / tasks:7.2f}")
    for name in extra:
        if name in used:
            lines.append(f"    ({name}, not in the total: {used[name] * 1000 / tasks:.2f})")
    return lines


def total_ms(used: Mapping[str, float], tasks: int, extra: Iterable[str] = ()) -> float:
    skip = set(extra)
    return sum(s for n, s in used.items() if n not in skip) * 1000 / tasks
