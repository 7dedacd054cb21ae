"""The schedule controller: one timer heap of every schedule's next slot, and the runs.

Fed by :mod:`schedules.watch` (the schedules, and the tasks labelled
``asynctask.dev/schedule``), it acts only once both lists are complete, through
``ports.ScheduleApi``. At a slot (never before: the slot is taken from the clock at firing,
:func:`slots.catch_up`) it:

1. counts the slots that fell due since the last one acted on: at most the latest runs (within
   ``startingDeadlineSeconds``), the others are recorded as missed;
2. applies ``suspend`` and ``concurrencyPolicy`` (Forbid skips while a task is active;
   Replace sets ``spec.cancel`` on the active ones first);
3. creates the task named after the slot: AlreadyExists means the slot already ran (another
   leader, or this one before a restart), never a second run;
4. writes the schedule's status once (last/next times, active tasks, completions seen since
   the previous write, missed and skipped counts, Ready) and deletes the tasks beyond the
   history limits: at most two writes per run besides the create (plus one per cancelled
   task under Replace).

Firing runs in tasks of their own (one at a time per schedule), so 1,000 schedules due in
the same second do not queue behind each other's API calls: at most :data:`PARALLEL` create
their slot's task at once, and a fire gives its place up once its task is created; the
status writes and history deletes that follow (step 4) run apart from the fire, in one of
:data:`BOOKKEEPING` places of their own. So the creates of a second's many due slots never
queue behind the bookkeeping of the first ones, and a schedule's next slot never waits for
its previous run's bookkeeping: a schedule has at most one bookkeeping under way or
waiting, which writes the state as of its turn (under a backlog, one write covers the runs
fired meanwhile), and deletes a slot's task only once a written status records the slot
(an operator that takes over never reads it as missed). An apiserver that cannot be
reached retries the slot (or the status write) after :data:`RETRY_SECONDS`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from asynctask_operator.apiserver.resource import SCHEDULE_KIND
from asynctask_operator.background import Background
from asynctask_operator.errors import AlreadyExists, Gone, Rejected, Unavailable
from asynctask_operator.metrics import OperatorMetrics
from asynctask_operator.ports import EventSink, ScheduleApi
from asynctask_operator.schedules.due import DueTimes
from asynctask_operator.schedules.runs import (
    Run,
    Schedule,
    Tally,
    beyond_history,
    last_recorded,
    status,
    task_body,
)
from asynctask_operator.schedules.slots import InvalidTimetable, Timetable, catch_up, timetable
from asynctask_operator.status import rfc3339
from asynctask_worker.messages import TaskRef

log = logging.getLogger("asynctask.operator.schedules")

Key = tuple[str, str]  # (namespace, schedule name)
#: Fires creating their slot's task at once: twice the creates' connections
#: (``ApiClient.SCHEDULE_CONNECTIONS``), so that one is ready as soon as one is free.
PARALLEL = 192
#: Status writes and history deletes of fired schedules at once (the creates have priority:
#: a schedule's next slot waits for its bookkeeping, so this must keep up with the fires).
BOOKKEEPING = 8
RETRY_SECONDS = 2.0
READY = (True, "Scheduled", "slots are served")
#: At most one Missed Event a schedule in this many seconds (the count is in the status):
#: an operator that falls behind must not add a write per late slot.
MISSED_EVENT_SECONDS = 60.0


@dataclass
class Entry:
    schedule: Schedule
    table: Timetable | None
    invalid: InvalidTimetable | None
    handled: datetime  # the latest slot acted on (or the time slots count from)
    tally: Tally = field(default_factory=Tally)
    dirty: bool = True  # a status write is owed (new, edited, or a bad template)
    rejected: str = ""  # why the latest create was refused (Ready=False until one succeeds)
    missed_told: float = float("-inf")  # when the latest Missed Event was recorded
    prune: bool = False  # history deletes are owed (after a run)


class ScheduleController:
    def __init__(
        self,
        api: ScheduleApi,
        events: EventSink,
        metrics: OperatorMetrics,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._api = api
        self._events = events
        self._metrics = metrics
        self._clock = clock
        self._entries: dict[Key, Entry] = {}
        self._runs: dict[Key, dict[str, Run]] = {}
        self._due: DueTimes[Key] = DueTimes()
        self._wakeup = asyncio.Event()
        self.synced = asyncio.Event()  # set by the watch once both lists are complete
        self._busy: set[Key] = set()  # a fire under way
        self._booking: set[Key] = set()  # a bookkeeping under way or waiting for a place
        self._firing = Background()
        self._slots = asyncio.Semaphore(PARALLEL)
        self._books = asyncio.Semaphore(BOOKKEEPING)
        metrics.schedules.set_function(lambda: float(len(self._entries)))

    def __len__(self) -> int:
        return len(self._entries)

    # what the watch hands in -----------------------------------------------------------

    def schedule_seen(self, obj: dict[str, Any]) -> None:
        meta = obj.get("metadata") or {}
        known = self._entries.get((str(meta.get("namespace") or ""), str(meta.get("name") or "")))
        if (
            known is not None
            and known.schedule.uid == str(meta.get("uid") or "")
            and known.schedule.generation == int(meta.get("generation") or 0)
        ):
            return  # a status write (ours) or metadata only: not parsed (one a run)
        schedule = Schedule.parse(obj)
        now = self._now()
        entry = self._entries.get(schedule.key)
        if entry is None or entry.schedule.uid != schedule.uid:
            table, invalid = _table(schedule)
            handled = schedule.resume_from(now)
            dirty = schedule.status.get("observedGeneration") != schedule.generation
            self._entries[schedule.key] = Entry(schedule, table, invalid, handled, dirty=dirty)
        else:
            if schedule.spec.timing() != entry.schedule.spec.timing():
                entry.handled = max(entry.handled, now)  # takes effect at the next slot
            entry.table, entry.invalid = _table(schedule)
            # the status is ours: keep the copy written last, not the watch's (maybe older)
            entry.schedule = replace(schedule, status=entry.schedule.status)
            entry.dirty, entry.rejected = True, ""
        self._plan(schedule.key)

    def schedule_gone(self, namespace: str, name: str) -> None:
        self._entries.pop((namespace, name), None)
        self._due.discard((namespace, name))

    def run_seen(self, namespace: str, schedule: str, obj: dict[str, Any]) -> None:
        run = Run.parse(obj)
        self._runs.setdefault((namespace, schedule), {})[run.uid] = run

    def run_gone(self, namespace: str, schedule: str, uid: str) -> None:
        runs = self._runs.get((namespace, schedule))
        if runs is not None:
            runs.pop(uid, None)
            if not runs:
                del self._runs[(namespace, schedule)]

    def known_schedules(self) -> list[Key]:
        return list(self._entries)

    def uid_of(self, namespace: str, name: str) -> str:
        entry = self._entries.get((namespace, name))
        return entry.schedule.uid if entry is not None else ""

    def known_runs(self) -> list[tuple[str, str, str]]:
        return [(ns, name, uid) for (ns, name), runs in self._runs.items() for uid in runs]

    # the timer -------------------------------------------------------------------------

    def _plan(self, key: Key) -> None:
        entry = self._entries[key]
        if entry.dirty and key not in self._booking:  # a status write owed, none under way
            self._set(key, self._clock())
        elif entry.table is not None and not entry.schedule.spec.suspend:
            self._set(key, entry.table.next_after(entry.handled).timestamp())
        else:
            self._due.discard(key)

    def _set(self, key: Key, at: float) -> None:
        if self._due.set(key, at):
            self._wakeup.set()

    async def run(self) -> None:
        """Fire each schedule's next slot when it is due, until cancelled."""
        await self.synced.wait()
        while True:
            delay = self._next_delay()
            self._wakeup.clear()
            if delay is None or delay > 0:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wakeup.wait(), delay)
                continue
            key = self._due.pop(self._clock())
            if key is None:
                continue
            if key in self._busy:
                self._set(key, self._clock() + 0.05)
                continue
            self._busy.add(key)
            await self._slots.acquire()
            self._firing.spawn(self._fire_guarded(key), name=f"schedule-{key[0]}/{key[1]}")

    def _next_delay(self) -> float | None:
        at = self._due.earliest()
        return None if at is None else max(0.0, at - self._clock())

    async def _fire_guarded(self, key: Key) -> None:
        creating = True

        def created() -> None:  # the slot's task is created: give the place up
            nonlocal creating
            if creating:
                creating = False
                self._slots.release()

        try:
            retry = await _attempt(key, self._act(key, created), "not acted on")
        finally:
            self._busy.discard(key)
            created()
        if key in self._entries:
            if retry is not None:
                self._set(key, self._clock() + retry)
            else:
                self._owe(key)
                self._plan(key)

    def _owe(self, key: Key) -> None:
        """Start the schedule's bookkeeping unless one is under way or waiting (it writes
        the latest state when its turn comes: one write for the runs fired meanwhile)."""
        entry = self._entries.get(key)
        if entry is None or not entry.dirty or key in self._booking:
            return
        self._booking.add(key)
        self._firing.spawn(self._book_guarded(key), name=f"schedule-status-{key[0]}/{key[1]}")

    async def _book_guarded(self, key: Key) -> None:
        try:
            retry = await _attempt(key, self._booked(key), "status unwritten")
        finally:
            self._booking.discard(key)
        if retry is None or key not in self._entries:
            return
        at, due = self._clock() + retry, self._due.get(key)
        if due is None or due > at:
            self._set(key, at)  # a fire that finds no slot due writes it

    async def _booked(self, key: Key) -> None:
        async with self._books:
            await self._book(key)

    # a slot ----------------------------------------------------------------------------

    async def fire(self, key: Key, created: Callable[[], None] = lambda: None) -> None:
        """Act on what is due for one schedule (see the module's docstring) and do the
        bookkeeping it owes; ``created`` is called once the slot's task is created (or
        none is due), before the bookkeeping."""
        await self._act(key, created)
        async with self._books:
            await self._book(key)

    async def _act(self, key: Key, created: Callable[[], None]) -> None:
        """A fire's steps 1-3: what is due, created; the entry then owes its bookkeeping
        (``dirty``, and ``prune`` after a run)."""
        entry = self._entries.get(key)
        if entry is None:
            return
        now = self._now()
        schedule, table = entry.schedule, entry.table
        if table is None or schedule.spec.suspend:
            created()
            entry.handled = max(entry.handled, now)
            return
        runs = self._runs.get(key, {})
        ran = frozenset(r.slot for r in runs.values() if r.slot is not None)
        plan = catch_up(table, entry.handled, now, schedule.spec.starting_deadline_seconds, ran)
        if plan.missed:
            self._missed(entry, plan.missed, plan.last_missed)
        if plan.run is not None and plan.run not in ran:
            await self._run(entry, plan.run)
        elif plan.run is not None:
            entry.tally.last_schedule = plan.run  # ran before (a cut-short status write)
        created()
        latest = table.latest_at_or_before(now)
        if latest is not None and latest > entry.handled:
            entry.handled = latest
            entry.dirty = True
        entry.prune = entry.prune or entry.dirty

    async def _book(self, key: Key) -> None:
        """The status write a schedule owes (if any) and, after a run, the history
        deletes (in one of :data:`BOOKKEEPING` places, which the caller holds: the creates
        of other fires go first), again while a fire or an edit meanwhile owes more."""
        entry = self._entries.get(key)
        while entry is not None and entry.dirty:
            prune, entry.prune = entry.prune, False  # the runs this write records
            try:
                await self._write(entry)
                if prune and self._entries.get(key) is entry:
                    await self._prune(entry)
            except BaseException:
                entry.prune = entry.prune or prune
                raise
            entry = self._entries.get(key)

    async def _run(self, entry: Entry, slot: datetime) -> None:
        schedule = entry.schedule
        key, spec = schedule.key, schedule.spec
        active = [r for r in self._runs.get(key, {}).values() if r.active]
        if active and spec.concurrency_policy == "Forbid":
            entry.tally.last_skipped, entry.tally.skipped = slot, entry.tally.skipped + 1
            self._metrics.schedule_runs.labels("skipped").inc()
            names = ", ".join(sorted(r.name for r in active))
            self._event(schedule, "Skipped", f"slot {rfc3339(slot)} skipped: {names} active")
            return
        if active and spec.concurrency_policy == "Replace":
            for run in active:
                if not run.cancel:
                    with contextlib.suppress(Gone):
                        await self._api.cancel_task(schedule.namespace, run.name, run.uid)
                    run.cancel = True
        body = task_body(schedule, slot)
        try:
            created = await self._api.create_task(schedule.namespace, body)
        except AlreadyExists:
            log.info("%s/%s: the task of slot %s exists already", *key, rfc3339(slot))
        except Rejected as exc:
            entry.rejected = f"the task of slot {rfc3339(slot)} was refused: {exc}"
            self._event(schedule, "Refused", entry.rejected)
            return
        else:
            lag = max(0.0, self._clock() - slot.timestamp())
            self._metrics.schedule_runs.labels("started").inc()
            self._metrics.schedule_lag.observe(lag)
            self.run_seen(schedule.namespace, schedule.name, created)
            name = body["metadata"]["name"]
            self._event(schedule, "Created", f"created {name} for slot {rfc3339(slot)}")
        entry.rejected = ""
        entry.tally.last_schedule = slot

    def _missed(self, entry: Entry, count: int, last: datetime | None) -> None:
        tally = entry.tally
        tally.missed += count
        if last is not None and (tally.last_missed is None or last > tally.last_missed):
            tally.last_missed = last
        self._metrics.schedule_runs.labels("missed").inc(count)
        entry.dirty = True
        if self._clock() - entry.missed_told >= MISSED_EVENT_SECONDS:
            entry.missed_told = self._clock()
            detail = f", the latest {rfc3339(last)}" if last is not None else ""
            total = int(entry.schedule.status.get("missedCount") or 0) + tally.missed
            self._event(
                entry.schedule, "Missed", f"{count} slot(s) missed{detail} ({total} in all)"
            )

    async def _write(self, entry: Entry) -> None:
        """The schedule's status as of now (the tally gathered so far, the next slot not
        acted on); a fire or an edit while it is written owes another."""
        schedule, table, now = entry.schedule, entry.table, self._now()
        next_slot = None
        if table is not None and not schedule.spec.suspend:
            next_slot = table.next_after(entry.handled)
        if entry.invalid is not None:
            ready = (False, entry.invalid.reason, entry.invalid.message)
        elif entry.rejected:
            ready = (False, "TaskRefused", entry.rejected)
        elif schedule.spec.suspend:
            ready = (True, "Suspended", "suspended: no slot runs until spec.suspend is false")
        else:
            ready = READY
        runs = list(self._runs.get(schedule.key, {}).values())
        tally, entry.tally, entry.dirty = entry.tally, Tally(), False
        written = status(schedule, tally, runs, next_slot, ready, now)
        try:
            await self._api.write_schedule_status(
                schedule.namespace, schedule.name, schedule.uid, written
            )
        except Gone:
            if self._entries.get(schedule.key) is entry:
                self.schedule_gone(*schedule.key)
            return
        except BaseException:
            entry.tally, entry.dirty = tally.merged(entry.tally), True
            raise
        # the spec as the watch saw it last (an edit meanwhile), the status as written
        entry.schedule = replace(entry.schedule, status=written)

    async def _prune(self, entry: Entry) -> None:
        schedule = entry.schedule
        spec, runs = schedule.spec, self._runs.get(schedule.key, {})
        recorded = last_recorded(schedule.status)
        for run in beyond_history(
            list(runs.values()), spec.successful_history, spec.failed_history, recorded
        ):
            with contextlib.suppress(Gone):
                await self._api.delete(schedule.namespace, run.name, run.uid)
            self.run_gone(schedule.namespace, schedule.name, run.uid)

    def _event(self, schedule: Schedule, reason: str, message: str) -> None:
        ref = TaskRef(namespace=schedule.namespace, name=schedule.name, uid=schedule.uid)
        self._events.record(ref, reason, message, about=SCHEDULE_KIND)

    def _now(self) -> datetime:
        return datetime.fromtimestamp(self._clock(), UTC)

    async def stop(self) -> None:
        """Cancel the fires under way and wait until they are done: none outlives the
        operator's stop (a fire cut short is retried by the next leader: its task's name
        makes a second create AlreadyExists)."""
        await self._firing.stop()


def _table(schedule: Schedule) -> tuple[Timetable | None, InvalidTimetable | None]:
    spec = schedule.spec
    try:
        return timetable(
            spec.schedule, spec.interval_seconds, spec.time_zone, schedule.created
        ), None
    except InvalidTimetable as exc:
        return None, exc


async def _attempt(key: Key, work: Awaitable[None], what: str) -> float | None:
    """Await ``work`` for the schedule ``key``: None once done, else the seconds until it
    is tried again (soon after the apiserver was unreachable, 5 s after anything else)."""
    try:
        await work
    except Unavailable as exc:
        log.info("schedule %s/%s: %s, the apiserver unavailable (%s); again soon", *key, what, exc)
        return RETRY_SECONDS
    except Exception:
        log.exception("schedule %s/%s: %s; again in 5s", *key, what)
        return 5.0
    return None
