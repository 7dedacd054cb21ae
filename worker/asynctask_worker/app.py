"""The public API for writing task handlers: an :class:`App` and its ``@app.task`` decorator."""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import typing
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any, TypeVar, overload

from pydantic import TypeAdapter

from asynctask_worker.context import TaskContext

#: A handler: ``(request)`` or ``(request, ctx)``, ``def`` or ``async def``.
Handler = Callable[..., Any]
F = TypeVar("F", bound=Handler)


class TaskFailed(Exception):
    """Raise from a handler to end the task as ``Failed``: an expected, business failure.

    Any other exception ends the task as ``Error``. ``reason`` is CamelCase and lands in
    ``.status.error.reason``; the message in ``.status.error.message``.
    """

    def __init__(self, message: str, *, reason: str = "TaskFailed") -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


@dataclass(frozen=True)
class TaskDefinition:
    """One registered handler and how to call it."""

    queue: str
    func: Handler
    request_adapter: TypeAdapter[Any] | None
    wants_context: bool
    is_async: bool

    def parse_request(self, raw: Any) -> Any:
        """Validate the raw JSON request into the handler's annotated type (if any)."""
        if self.request_adapter is None:
            return raw
        return self.request_adapter.validate_python(raw)

    def call(self, request: Any, ctx: TaskContext) -> Any:
        """Run the handler to completion in the calling thread (async ones get a loop)."""
        args = (request, ctx) if self.wants_context else (request,)
        if self.is_async:
            return asyncio.run(_with_cancellation(self.func(*args), ctx))
        return self.func(*args)


async def _with_cancellation(coro: Coroutine[Any, Any, Any], ctx: TaskContext) -> Any:
    """Run an async handler; cancel its asyncio task as soon as the task is cancelled."""
    task = asyncio.ensure_future(coro)
    loop = asyncio.get_running_loop()

    def cancel() -> None:
        with contextlib.suppress(RuntimeError):  # the loop is already closed: nothing to do
            loop.call_soon_threadsafe(task.cancel)

    ctx._on_cancel(cancel)
    return await task


class App:
    """A set of task handlers, served by ``asynctask-worker module:app``.

    >>> app = App()
    >>> @app.task("resize-image")
    ... def resize(request: dict, ctx: TaskContext) -> dict:
    ...     ctx.progress(50, "halfway")
    ...     return {"ok": True}
    >>> app.queues
    ['resize-image']
    """

    def __init__(self, name: str = "asynctask") -> None:
        self.name = name
        self.tasks: dict[str, TaskDefinition] = {}

    @overload
    def task(self, queue: str) -> Callable[[F], F]: ...
    @overload
    def task(self, queue: str, func: F) -> F: ...

    def task(self, queue: str, func: F | None = None) -> Callable[[F], F] | F:
        """Register a handler for the tasks whose ``spec.queue`` is ``queue``.

        The handler takes the request (validated into the annotated type when the first
        parameter is annotated, e.g. with a pydantic model) and, optionally, a
        :class:`TaskContext` as second parameter. It may be ``def`` or ``async def``.
        The decorator returns the function unchanged, so it can still be called directly.
        """

        def register(f: F) -> F:
            if queue in self.tasks:
                raise ValueError(f"queue {queue!r} already has a handler")
            self.tasks[queue] = define(queue, f)
            return f

        return register(func) if func is not None else register

    @property
    def queues(self) -> list[str]:
        return sorted(self.tasks)

    def definition(self, queue: str) -> TaskDefinition:
        try:
            return self.tasks[queue]
        except KeyError:
            raise KeyError(f"no handler for queue {queue!r}; the app has {self.queues}") from None


def define(queue: str, func: Handler) -> TaskDefinition:
    """Inspect a handler: how many arguments, which request type, sync or async."""
    if not callable(func):
        raise TypeError(f"handler for {queue!r} is not callable: {func!r}")
    sig = inspect.signature(func)
    params = [
        p for p in sig.parameters.values() if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
    ]
    required_kw = [
        p.name for p in sig.parameters.values() if p.kind is p.KEYWORD_ONLY and p.default is p.empty
    ]
    name = getattr(func, "__qualname__", repr(func))
    if not 1 <= len(params) <= 2 or required_kw:
        raise TypeError(f"handler {name} must take (request) or (request, ctx)")
    try:
        hints = typing.get_type_hints(func)
    except NameError as exc:
        raise TypeError(
            f"handler {name}: cannot resolve its annotations ({exc}); define "
            "the request type at module level"
        ) from exc
    annotation = hints.get(params[0].name, Any)
    adapter = None if annotation is Any else TypeAdapter(annotation)
    return TaskDefinition(
        queue=queue,
        func=func,
        request_adapter=adapter,
        wants_context=len(params) == 2,
        is_async=inspect.iscoroutinefunction(func),
    )
