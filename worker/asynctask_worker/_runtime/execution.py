"""Running one attempt of a task: the handler call itself, and the thread pool mode.

:func:`run_handler` is the one place a handler is called (in a handler thread, or in a
child process in process mode): it validates the request, calls the handler and turns
what happened into an :class:`~asynctask_worker._runtime.outcome.Outcome`.

An *execution* runs one attempt and hands its outcome to a callback. Thread mode runs the
handler on a daemon thread of this process (reused: :mod:`.handler_threads`). A thread
cannot be killed: when a handler ignores its cancellation past the grace period,
:meth:`ThreadExecution.kill` returns False, the dispatcher reports the outcome anyway and
the thread is *abandoned*: it runs on in the background and whatever it returns is
dropped. Process mode (:mod:`asynctask_worker._runtime.processes`) can kill.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any, Protocol

from pydantic import ValidationError

from asynctask_worker._runtime import offload, outcome
from asynctask_worker._runtime.handler_threads import HandlerThreads
from asynctask_worker._runtime.offload import PayloadPlan, RequestNotJson, Workspace
from asynctask_worker._runtime.outcome import Outcome
from asynctask_worker._runtime.payload_io import TransferError
from asynctask_worker.app import TaskDefinition
from asynctask_worker.context import TaskCancelled, TaskContext, current_task

OutcomeCallback = Callable[[Outcome], None]


def run_handler(
    definition: TaskDefinition,
    raw_request: Any,
    ctx: TaskContext,
    on_started: Callable[[], None] = lambda: None,
    plan: PayloadPlan | None = None,
) -> Outcome:
    """Fetch a stored request, validate it, call the handler, store and classify the result.
    Never raises.

    ``on_started`` is called right before the handler (before the download of a stored
    request, which is the attempt's work too): its time limit counts from there."""
    token = current_task.set(ctx)
    work = Workspace(plan.workdir if plan is not None else None)
    try:
        result = _attempt(definition, raw_request, ctx, on_started, plan, work)
        return result if plan is None else dataclasses.replace(result, moved=work.moved)
    finally:
        work.close()
        current_task.reset(token)


def _attempt(
    definition: TaskDefinition,
    raw_request: Any,
    ctx: TaskContext,
    on_started: Callable[[], None],
    plan: PayloadPlan | None,
    work: Workspace,
) -> Outcome:
    try:
        if plan is not None and plan.request_ref is not None:
            on_started()
            raw_request = offload.fetch_request(plan, ctx, work)
        try:
            request = definition.parse_request(raw_request)
        except ValidationError as exc:
            return outcome.invalid_request(exc)
        if plan is None or plan.request_ref is None:
            on_started()
        try:
            value = definition.call(request, ctx)
        except BaseException as exc:  # noqa: BLE001 - every failure becomes a status
            return outcome.from_exception(exc, cancel_reason=ctx.cancel_reason)
        if ctx.cancelled:
            # Asked to stop: what the handler returned afterwards does not count.
            return outcome.stopped(ctx.cancel_reason, ctx.cancel_detail)
        return offload.store_result(value, plan, ctx, work)
    except TransferError as exc:
        return outcome.transfer_failed(exc.reason, exc.message)
    except RequestNotJson as exc:
        return outcome.invalid_request(exc)
    except TaskCancelled as exc:  # cancelled while moving bytes
        return outcome.from_exception(exc, cancel_reason=ctx.cancel_reason)
    except Exception as exc:  # noqa: BLE001 - e.g. a result file that vanished: a status
        return outcome.from_exception(exc, cancel_reason=ctx.cancel_reason)


class Execution(Protocol):
    """One attempt of one task, running somewhere; reports through its outcome callback."""

    def start(self) -> None: ...

    def kill(self) -> bool:
        """Stop the attempt hard. True if it is stopped; False if it could only be abandoned."""
        ...

    def alive(self) -> bool: ...


class ThreadExecution:
    """Thread mode: the handler runs on a thread of the worker process (one of
    :class:`~asynctask_worker._runtime.handler_threads.HandlerThreads`, reused)."""

    def __init__(
        self,
        definition: TaskDefinition,
        raw_request: Any,
        ctx: TaskContext,
        on_outcome: OutcomeCallback,
        on_started: Callable[[], None] = lambda: None,
        plan: PayloadPlan | None = None,
        threads: HandlerThreads | None = None,
    ) -> None:
        self._definition = definition
        self._plan = plan
        self._request = raw_request
        self._ctx = ctx
        self._on_outcome = on_outcome
        self._on_started = on_started
        self._threads = threads or _THREADS
        self._running = False

    def start(self) -> None:
        self._running = True
        ctx = self._ctx
        try:
            self._threads.run(f"asynctask-task-{ctx.namespace}/{ctx.name}#{ctx.attempt}", self._run)
        except BaseException:
            self._running = False
            raise

    def kill(self) -> bool:
        return False  # threads cannot be killed: the dispatcher abandons this one

    def alive(self) -> bool:
        return self._running

    def _run(self) -> None:
        try:
            self._on_outcome(
                run_handler(
                    self._definition, self._request, self._ctx, self._on_started, self._plan
                )
            )
        finally:
            self._running = False


#: The handler threads of the process's thread-mode executions.
_THREADS = HandlerThreads()
