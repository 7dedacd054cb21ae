"""An AsyncQueue's status from the gate's view and RabbitMQ's depth (queues.report)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from asynctask_operator.queues.gate import QueueView
from asynctask_operator.queues.policy import Reason, parse
from asynctask_operator.queues.report import Depth, changed, merge_patch, queue_status

NOW = datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC)


def view(**spec: object) -> QueueView:
    policy, error = parse(spec)
    return QueueView(
        held=7,
        in_flight=5,
        oldest_since=NOW.timestamp() - 90,
        blocked_by=Reason.CONCURRENCY_LIMIT,
        start_rate=4.954,
        policy=policy,
        policy_error=error,
    )


def conditions(status: dict[str, object]) -> dict[str, tuple[str, str]]:
    found = status["conditions"]
    assert isinstance(found, list)
    return {c["type"]: (c["status"], c["reason"]) for c in found}


def test_a_saturated_queue_reads_as_such_with_its_counts() -> None:
    status = queue_status(view(maxInFlight=5), Depth(3, 2), 4, {}, NOW)
    assert status["held"] == 7 and status["inFlight"] == 5
    assert (status["ready"], status["consumers"]) == (3, 2)
    assert status["startRate"] == "4.95" and status["observedGeneration"] == 4
    assert status["oldestHeldTime"] == "2030-01-02T03:02:35Z"
    assert conditions(status) == {
        "Paused": ("False", "Running"),
        "Saturated": ("True", "ConcurrencyLimit"),
        "Ready": ("True", "Enforced"),
    }


def test_paused_and_an_unreadable_policy_show_in_the_conditions() -> None:
    status = queue_status(view(paused=True, maxInFlight=0), Depth(None, None), 1, {}, NOW)
    assert conditions(status)["Paused"] == ("True", "Paused")
    assert conditions(status)["Ready"] == ("False", "InvalidPolicy")
    assert "ready" not in status and "consumers" not in status  # unknown, never seen


def test_nothing_but_the_write_time_changed_means_no_write() -> None:
    first = queue_status(view(maxInFlight=5), Depth(3, 2), 1, {}, NOW)
    later = queue_status(view(maxInFlight=5), Depth(None, None), 1, first, NOW + timedelta(5))
    assert later["ready"] == 3  # RabbitMQ away: the last seen depth stays
    assert not changed(first, later)
    transitioned = [c["lastTransitionTime"] for c in later["conditions"]]
    assert transitioned == [c["lastTransitionTime"] for c in first["conditions"]]
    more = queue_status(view(maxInFlight=6), Depth(3, 2), 2, first, NOW + timedelta(5))
    assert changed(first, more)


def test_the_patch_removes_what_the_status_no_longer_has() -> None:
    before = {"held": 3, "oldestHeldTime": "2030-01-01T00:00:00Z"}
    assert merge_patch(before, {"held": 0}) == {"oldestHeldTime": None, "held": 0}
