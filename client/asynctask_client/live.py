"""Following a task on the screen: a live progress bar on a terminal, plain lines elsewhere.

The task's states arrive on a thread (``Task.updates`` blocks on its stream) and are handed
over through a queue; the screen is redrawn a few times a second even when nothing arrives,
so the elapsed time and the estimate keep moving while a handler is quiet.
"""

from __future__ import annotations

import queue
import shutil
import threading
import time
from typing import IO

from asynctask_client.client import Task
from asynctask_client.render import Rate, bar_line, plain_line
from asynctask_worker.views import TaskView

REDRAW_SECONDS = 0.25
CLEAR_LINE = "\r\x1b[2K"


def follow(task: Task, out: IO[str], *, tty: bool, timeout: float | None = None) -> TaskView:
    """Show ``task`` until it ends (or ``timeout``); the last state seen. Errors of the
    stream (deleted, refused, out of reach, :class:`WaitTimeout`) are raised here."""
    inbox: queue.Queue[TaskView | BaseException | None] = queue.Queue()

    def pump() -> None:
        try:
            for view in task.updates(timeout):
                inbox.put(view)
            inbox.put(None)
        except BaseException as exc:  # noqa: BLE001 - handed to the main thread as is
            inbox.put(exc)

    threading.Thread(target=pump, name="asynctask-follow", daemon=True).start()
    return (_bar if tty else _lines)(task, inbox, out)


def _next(
    inbox: queue.Queue[TaskView | BaseException | None], wait: float | None
) -> TaskView | bool | None:
    """A view, ``None`` at the end, ``False`` when nothing arrived within ``wait``."""
    try:
        item = inbox.get(timeout=wait)
    except queue.Empty:
        return False
    if isinstance(item, BaseException):
        raise item
    return item


def _lines(
    task: Task, inbox: queue.Queue[TaskView | BaseException | None], out: IO[str]
) -> TaskView:
    while True:
        item = _next(inbox, None)
        if item is None or item is False:
            return task.view
        assert isinstance(item, TaskView)
        out.write(plain_line(item) + "\n")
        out.flush()


def _bar(task: Task, inbox: queue.Queue[TaskView | BaseException | None], out: IO[str]) -> TaskView:
    started = time.monotonic()
    rate = Rate()
    view = task.view
    try:
        while True:
            item = _next(inbox, REDRAW_SECONDS)
            if item is None:
                return view
            if isinstance(item, TaskView):
                view = item
                rate.add(time.monotonic(), view)
            now = time.monotonic()
            width = shutil.get_terminal_size((100, 24)).columns
            out.write(CLEAR_LINE + bar_line(view, now - started, rate.eta(now), width - 1))
            out.flush()
    finally:
        out.write("\n")
        out.flush()
