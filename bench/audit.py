"""What the apiserver's audit log says a burst cost: the mutating calls each task got
besides its create, as a distribution and as the pattern the ceiling replays.

The test bed audits every write (reads are not audited; for those, see the apiserver's
request metrics, ``KubeApi.request_stats``). A write is named ``verb resource[/sub]``,
e.g. ``patch asynctasks/status``; an Event about a task (``<task>.<suffix>``) counts as
the task's.
"""

from __future__ import annotations

import collections
import json
from pathlib import Path
from typing import Any

STATUS = "patch asynctasks/status"


def _complete(audit_log: Path) -> list[dict[str, Any]]:
    out = []
    for line in audit_log.read_text().splitlines():
        event = json.loads(line)
        if event.get("stage") == "ResponseComplete":
            out.append(event)
    return out


def _kind(event: dict[str, Any]) -> str:
    ref = event.get("objectRef") or {}
    sub = ref.get("subresource")
    return f"{event['verb']} {ref.get('resource')}" + (f"/{sub}" if sub else "")


class Writes:
    """The writes in ``namespace``: per task (in order) and those no task owns."""

    def __init__(self, audit_log: Path, namespace: str) -> None:
        self.per_task: dict[str, list[str]] = {}
        self.unowned: collections.Counter[str] = collections.Counter()
        #: The writes of tasks that were not answered 2xx (conflicts, timeouts...), by code.
        self.failed: collections.Counter[int] = collections.Counter()
        later: list[dict[str, Any]] = []
        for event in _complete(audit_log):
            ref = event.get("objectRef") or {}
            if ref.get("namespace") != namespace:
                continue
            if ref.get("resource") == "asynctasks" and event["verb"] == "create":
                self.per_task.setdefault(str(ref.get("name")), [])
            else:
                later.append(event)
        for event in later:
            name = str((event.get("objectRef") or {}).get("name"))
            owner = name if name in self.per_task else name.rsplit(".", 1)[0]
            if owner in self.per_task:
                self.per_task[owner].append(_kind(event))
                code = int((event.get("responseStatus") or {}).get("code") or 0)
                if not 200 <= code < 300:
                    self.failed[code] += 1
            else:
                self.unowned[_kind(event)] += 1

    @property
    def tasks(self) -> int:
        return len(self.per_task)

    def histogram(self) -> collections.Counter[int]:
        """How many tasks got 0, 1, 2... mutating calls besides their create."""
        return collections.Counter(len(w) for w in self.per_task.values())

    def patterns(self) -> collections.Counter[tuple[str, ...]]:
        return collections.Counter(tuple(w) for w in self.per_task.values())

    def replay(self) -> list[tuple[str, ...]]:
        """Every task's sequence of writes, in the order of the task names (the ceiling
        replays them one for one)."""
        return [tuple(self.per_task[name]) for name in sorted(self.per_task)]

    def lines(self) -> list[str]:
        hist = self.histogram()
        counts = sorted(n for n in (len(w) for w in self.per_task.values()))
        if not counts:
            return ["  writes per task: no task in the audit log"]
        mean = sum(counts) / len(counts)
        p50 = counts[len(counts) // 2]
        out = [
            f"  mutating calls per task besides its create (audit log, {len(counts)} tasks): "
            f"mean {mean:.2f}, min {counts[0]}, p50 {p50}, max {counts[-1]}",
            "    histogram: " + ", ".join(f"{n} → {k} tasks" for n, k in sorted(hist.items())),
        ]
        for pattern, k in self.patterns().most_common(4):
            out.append(f"    {k} tasks: {' + '.join(pattern) or '(none)'}")
        if self.failed:
            out.append(f"    of which not answered 2xx, by code: {dict(self.failed)}")
        if self.unowned:
            out.append(f"    writes no task owns: {dict(self.unowned)}")
        return out
