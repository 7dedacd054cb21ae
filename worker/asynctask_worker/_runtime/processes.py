"""Process mode: each task attempt runs in a child process that can be killed.

How it works:

* the child is started from a *forkserver* (``spawn`` where there is none): a clean
  process that imported the SDK and the handlers' modules once, forked per task, so it
  inherits none of the worker's threads or RabbitMQ sockets;
* the handler function travels by reference (module + qualified name), so it must be a
  module-level function; the request, the task's ids and the attempt travel by value;
* two pipes connect parent and child: the child sends ``("progress", percent, message)``
  and finally ``("outcome", Outcome)``; the parent sends ``("cancel", reason, detail)``,
  which sets the child's ``ctx.cancelled`` (and cancels an async handler's asyncio task);
* the child leads its own process group, so a hard stop (``SIGKILL`` to the group) also
  ends whatever the handler started (ffmpeg, a shell...);
* a child that sees its parent's pipe close (the worker died) exits at once.

Trade-offs: a fork per task (milliseconds with the forkserver); the request and result
cross a pipe (pickled); handlers must be importable module-level functions; module-level
state is per task, not shared; a handler cannot itself use ``multiprocessing`` (its
process is daemonic). In exchange a task that ignores its cancellation or its time
limit is really stopped, and a crashing handler (segfault, OOM kill) only ends its task,
in ``Error``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import multiprocessing
import os
import shutil
import signal
import tempfile
import threading
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any

from asynctask_worker._runtime import outcome
from asynctask_worker._runtime.execution import OutcomeCallback, run_handler
from asynctask_worker._runtime.logs import configure_logging
from asynctask_worker._runtime.offload import PayloadPlan
from asynctask_worker._runtime.outcome import Outcome
from asynctask_worker.app import Handler, TaskDefinition, define
from asynctask_worker.context import TaskContext
from asynctask_worker.messages import TaskRef

log = logging.getLogger("asynctask.worker.processes")

_POLL_SECONDS = 0.05


def mp_context() -> Any:
    """The multiprocessing context children are started with: forkserver where available."""
    methods = multiprocessing.get_all_start_methods()
    return multiprocessing.get_context("forkserver" if "forkserver" in methods else "spawn")


def preload(modules: list[str]) -> None:
    """Have the forkserver import these modules once (before it starts), not every child."""
    ctx = mp_context()
    if ctx.get_start_method() == "forkserver":
        wanted = ["asynctask_worker._runtime.processes"] + [m for m in modules if m != "__main__"]
        ctx.set_forkserver_preload(sorted(set(wanted)))


@dataclass(frozen=True)
class ChildTask:
    """What a child needs to run one attempt."""

    queue: str
    func: Handler
    task: TaskRef
    attempt: int
    request: Any
    log_format: str
    log_level: str
    plan: PayloadPlan | None = None


class ProcessExecution:
    """Process mode: one child process per attempt, plus a parent thread minding its pipe."""

    def __init__(
        self,
        definition: TaskDefinition,
        raw_request: Any,
        ctx: TaskContext,
        on_outcome: OutcomeCallback,
        on_started: Callable[[], None] = lambda: None,
        *,
        log_format: str = "text",
        log_level: str = "INFO",
        plan: PayloadPlan | None = None,
    ) -> None:
        # The parent makes and removes the attempt's folder: a killed child cannot.
        self._workdir = tempfile.mkdtemp(prefix="asynctask-payload-") if plan else None
        if plan is not None:
            plan = dataclasses.replace(plan, workdir=self._workdir)
        self._spec = ChildTask(
            definition.queue,
            definition.func,
            ctx.task,
            ctx.attempt,
            raw_request,
            log_format,
            log_level,
            plan,
        )
        self._ctx = ctx
        self._on_outcome = on_outcome
        self._on_started = on_started
        self._killed = threading.Event()
        self._proc: Any = None
        self._thread = threading.Thread(
            target=self._mind,
            daemon=True,
            name=f"asynctask-child-{ctx.namespace}/{ctx.name}#{ctx.attempt}",
        )

    @property
    def pid(self) -> int | None:
        return None if self._proc is None else int(self._proc.pid)

    def start(self) -> None:
        mp = mp_context()
        to_child_r, self._to_child = mp.Pipe(duplex=False)
        self._from_child, from_child_w = mp.Pipe(duplex=False)
        self._proc = mp.Process(
            target=child_main,
            args=(self._spec, to_child_r, from_child_w),
            daemon=True,
            name=f"asynctask-task-{self._ctx.uid}",
        )
        try:
            self._proc.start()
        finally:
            # The parent keeps only its ends, so that EOF means "the child is gone".
            to_child_r.close()
            from_child_w.close()
        self._thread.start()

    def kill(self) -> bool:
        self._killed.set()
        proc = self._proc
        if proc is None or proc.pid is None:
            return True
        try:
            os.killpg(proc.pid, signal.SIGKILL)  # the child leads its own process group
        except (ProcessLookupError, PermissionError):
            with contextlib.suppress(Exception):
                proc.kill()
        return True

    def alive(self) -> bool:
        return self._proc is not None and bool(self._proc.is_alive())

    def _mind(self) -> None:
        """Forward progress, pass the cancellation on, collect the outcome."""
        result: Outcome | None = None
        cancel_sent = False
        while True:
            if self._ctx.cancelled and not cancel_sent:
                cancel_sent = True
                with contextlib.suppress(OSError):
                    self._to_child.send(
                        ("cancel", self._ctx.cancel_reason, self._ctx.cancel_detail)
                    )
            try:
                if not self._from_child.poll(_POLL_SECONDS):
                    if not self._proc.is_alive() and not self._from_child.poll(0):
                        break
                    continue
                item = self._from_child.recv()
            except (EOFError, OSError):
                break  # the child closed its end: it exited (or was killed)
            if item[0] == "started":
                self._on_started()
            elif item[0] == "progress":
                self._ctx.progress(item[1], item[2])
            elif item[0] == "outcome":
                result = item[1]
        self._proc.join(5)
        for conn in (self._to_child, self._from_child):
            conn.close()
        if self._workdir is not None:
            shutil.rmtree(self._workdir, ignore_errors=True)
        if result is None:
            if self._killed.is_set():
                return  # a hard stop: the dispatcher already reported this attempt
            result = outcome.process_died(self._proc.exitcode)
        self._on_outcome(result)


def child_main(spec: ChildTask, inbox: Connection, outbox: Connection) -> None:
    """The child process: run the handler, talk to the parent over the pipes."""
    with contextlib.suppress(OSError):
        os.setpgid(0, 0)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    configure_logging(spec.log_format, spec.log_level)
    send_lock = threading.Lock()

    def send(item: tuple[Any, ...]) -> None:
        with send_lock:
            outbox.send(item)

    ctx = TaskContext(
        spec.task,
        spec.attempt,
        spec.queue,
        lambda percent, message: send(("progress", percent, message)),
    )

    def listen() -> None:
        while True:
            try:
                item = inbox.recv()
            except (EOFError, OSError):
                os._exit(70)  # the worker is gone: nobody would ack or report this attempt
            if item[0] == "cancel":
                ctx._cancel(item[1], item[2])

    threading.Thread(target=listen, daemon=True, name="asynctask-child-listener").start()
    result = run_handler(
        define(spec.queue, spec.func), spec.request, ctx, lambda: send(("started",)), spec.plan
    )
    send(("outcome", result))
    outbox.close()
