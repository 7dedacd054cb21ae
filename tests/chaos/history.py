"""Every phase each AsyncTask showed, from a watch of etcd, and what must hold of it.

The apiserver's own watch cannot serve this suite: the suite stops the apiserver, and a
watch resumed afterwards may be refused as too old (the new apiserver's watch cache
starts at the current revision), so a relist would hide what happened in between. etcd
keeps running and its watch (the v3 JSON gateway) reports every revision of every key
from a given revision on: every version of every object the apiserver ever stored.
Custom resources are stored as JSON, so each version's ``status.phase`` can be read.

The checks (:func:`changed_after_terminal`, :func:`summary`) are pure; the unit tests
check them on hand-made histories (``tests/unit/testbed/test_chaos_history.py``).
"""

from __future__ import annotations

import base64
import collections
import contextlib
import http.client
import json
import socket
import threading
import urllib.parse
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

TERMINAL = frozenset({"Succeeded", "Failed", "Error", "Cancelled", "TimedOut"})


def changed_after_terminal(phases: Sequence[str | None]) -> bool:
    """Did a terminal phase ever give way to another phase (terminal or not)? A deletion
    (None) is the end of the object, not a phase."""
    first = next((p for p in phases if p in TERMINAL), None)
    if first is None:
        return False
    after = phases[phases.index(first) :]
    return any(p is not None and p != first for p in after)


@dataclass
class Summary:
    """What the histories of a scenario's tasks say."""

    tasks: int
    terminal: dict[str, int]  # final phase -> count, terminal phases only
    lost: list[str]  # names never terminal (or gone)
    double_terminal: list[str]  # names whose terminal phase changed afterwards


def summary(histories: dict[str, list[str | None]], names: Sequence[str]) -> Summary:
    """``histories``: name -> every phase its object showed, in order (a deleted object's
    history ends in None)."""
    finals: collections.Counter[str] = collections.Counter()
    lost, double = [], []
    for name in names:
        phases = histories.get(name, [])
        last = phases[-1] if phases else None
        if last in TERMINAL:
            finals[str(last)] += 1
        else:
            lost.append(name)
        if changed_after_terminal(phases):
            double.append(name)
    return Summary(len(names), dict(sorted(finals.items())), lost, double)


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def _prefix_end(prefix: str) -> str:
    """The end of etcd's range of every key that starts with ``prefix``."""
    return prefix[:-1] + chr(ord(prefix[-1]) + 1)


@dataclass
class PhaseWatch:
    """Watch every version of a namespace's AsyncTasks in etcd, from now until ``stop()``."""

    etcd_url: str
    namespace: str
    histories: dict[str, list[str | None]] = field(default_factory=dict)
    error: BaseException | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _sock: socket.socket | None = None
    _thread: threading.Thread | None = None
    _stopping: bool = False

    def start(self) -> PhaseWatch:
        url = urllib.parse.urlsplit(self.etcd_url)
        conn = http.client.HTTPConnection(url.hostname or "127.0.0.1", url.port)
        prefix = f"/registry/asynctask.dev/asynctasks/{self.namespace}/"
        revision = int(
            self._post(conn, "/v3/kv/range", {"key": _b64(prefix)})["header"]["revision"]
        )
        conn.connect()
        self._sock = conn.sock
        body = {
            "create_request": {
                "key": _b64(prefix),
                "range_end": _b64(_prefix_end(prefix)),
                "start_revision": str(revision + 1),
            }
        }
        conn.request("POST", "/v3/watch", json.dumps(body))
        response = conn.getresponse()
        self._thread = threading.Thread(
            target=self._read, args=(response,), daemon=True, name="chaos-phase-watch"
        )
        self._thread.start()
        return self

    @staticmethod
    def _post(conn: http.client.HTTPConnection, path: str, body: object) -> dict[str, Any]:
        conn.request("POST", path, json.dumps(body))
        answer: dict[str, Any] = json.loads(conn.getresponse().read())
        conn.close()
        return answer

    def _read(self, response: http.client.HTTPResponse) -> None:
        try:
            while line := response.readline():
                if line.strip():
                    self._record(json.loads(line))
        except (OSError, ValueError) as exc:
            if not self._stopping:
                self.error = exc

    def _record(self, message: dict[str, Any]) -> None:
        result = message.get("result")
        if not isinstance(result, dict):
            self.error = RuntimeError(f"etcd watch said {message}")
            return
        for event in result.get("events") or []:
            kv = event["kv"]
            name = base64.b64decode(kv["key"]).decode().rsplit("/", 1)[1]
            if event.get("type") == "DELETE":
                phase = None
            else:
                obj = json.loads(base64.b64decode(kv["value"]))
                phase = (obj.get("status") or {}).get("phase")
            with self._lock:
                self.histories.setdefault(name, []).append(phase)

    def snapshot(self) -> dict[str, list[str | None]]:
        if self.error is not None:
            raise RuntimeError(f"the etcd watch failed: {self.error!r}")
        with self._lock:
            return {name: list(phases) for name, phases in self.histories.items()}

    def terminal(self, names: Sequence[str]) -> int:
        """How many of ``names`` are in a terminal phase now."""
        now = self.snapshot()
        return sum(1 for n in names if (now.get(n) or [None])[-1] in TERMINAL)

    def stop(self) -> None:
        self._stopping = True
        if self._sock is not None:
            with contextlib.suppress(OSError):
                self._sock.shutdown(socket.SHUT_RDWR)
        if self._thread is not None:
            self._thread.join(5)
