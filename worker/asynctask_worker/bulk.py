"""The answer of a bulk action by label selector (cancel or delete every matching task),
shared by the gateway, which answers it, and the client, which builds the same answer
through the Kubernetes API (like :mod:`asynctask_worker.views`, it needs pydantic only).

What each task is counted as is decided here once, so both transports count alike and a
second call on the same tasks counts them as already done (``skipped``): a finished task,
a task whose cancel was already requested, a task already gone.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from asynctask_worker.views import TaskView

Action = Literal["cancel", "delete"]
Outcome = Literal["cancelled", "deleted", "skipped", "failed"]
#: What ``changed`` counts, by action.
DONE: dict[Action, Outcome] = {"cancel": "cancelled", "delete": "deleted"}


class BulkItem(BaseModel):
    """One matched task and what was done to it; ``reason`` says why it was skipped or
    failed (``AlreadyFinished``, ``CancelRequested``, ``NotFound``, ``Forbidden``, or the
    apiserver's reason), ``message`` in words."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    name: str
    outcome: Outcome
    reason: str | None = None
    message: str | None = None


class BulkAnswer(BaseModel):
    """The counts of one bulk action and every matched task by name. ``changed`` counts
    the tasks cancelled (or deleted) by this call; ``continue`` is set when more tasks
    matched than one call acts on: pass it back for the next ones."""

    model_config = ConfigDict(extra="ignore", frozen=True, populate_by_name=True)

    action: Action
    matched: int = Field(ge=0)
    changed: int = Field(ge=0)
    skipped: int = Field(ge=0)
    failed: int = Field(ge=0)
    items: list[BulkItem]
    continue_: str | None = Field(
        None, alias="continue", description="Pass as ?continue= for the next tasks; null: none."
    )

    @classmethod
    def of(cls, action: Action, items: Iterable[BulkItem], token: str | None = None) -> BulkAnswer:
        listed = list(items)
        counts = {o: sum(1 for i in listed if i.outcome == o) for o in ("skipped", "failed")}
        return cls(
            action=action,
            matched=len(listed),
            changed=sum(1 for i in listed if i.outcome == DONE[action]),
            skipped=counts["skipped"],
            failed=counts["failed"],
            items=listed,
            continue_=token,
        )

    def then(self, more: BulkAnswer) -> BulkAnswer:
        """This answer and the next call's, as one (``continue`` is the later one's)."""
        return BulkAnswer.of(self.action, [*self.items, *more.items], more.continue_)

    def to_json(self) -> dict[str, object]:
        return self.model_dump(mode="json", by_alias=True)


def cancel_skipped(view: TaskView, cancel_requested: bool) -> BulkItem | None:
    """Why a bulk cancel leaves this task alone, or ``None`` when it cancels it."""
    if view.done:
        return BulkItem(
            name=view.name,
            outcome="skipped",
            reason="AlreadyFinished",
            message=f"the task has already ended ({view.phase.value})",
        )
    if cancel_requested:
        return BulkItem(
            name=view.name,
            outcome="skipped",
            reason="CancelRequested",
            message="its cancel was already requested",
        )
    return None


def gone(name: str) -> BulkItem:
    """A task that disappeared between the list and the action: nothing left to do."""
    return BulkItem(name=name, outcome="skipped", reason="NotFound", message="already deleted")


def failed(name: str, reason: str, message: str) -> BulkItem:
    return BulkItem(name=name, outcome="failed", reason=reason, message=message)


def acted(name: str, action: Action) -> BulkItem:
    return BulkItem(name=name, outcome=DONE[action])


#: White space in a label selector (the gateway's ``patterns.WS``).
SELECTOR_BLANKS = " \t\n\r\f\v,"


def require_selector(label_selector: str) -> str:
    """``label_selector`` itself, or ValueError when it has no term (empty, or commas and
    white space only): it would select every task."""
    if not label_selector.strip(SELECTOR_BLANKS):
        raise ValueError(
            "a label selector with at least one term is required: a bulk action never "
            "acts on every task of a namespace"
        )
    return label_selector
