"""The operator's status transitions: idempotent, monotonic, terminal phases final."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from asynctask_operator import status as st
from asynctask_worker.messages import ErrorInfo, Phase, StatusMessage, TaskRef

REF = TaskRef(uid="u1", namespace="ns", name="t")
NOW = datetime(2026, 1, 1, tzinfo=UTC)


def msg(phase: Phase, attempt: int = 1, seq: int = 0, **kw: Any) -> StatusMessage:
    return StatusMessage(task=REF, attempt=attempt, seq=seq, phase=phase, at=NOW, **kw)


def step(status: dict[str, Any], m: StatusMessage) -> dict[str, Any]:
    if st.classify(status, m) is st.Change.IGNORE:
        return status
    return st.apply(status, m, NOW, 1)


def pending() -> dict[str, Any]:
    return st.pending({}, "task:u1:1", NOW, 1)


def test_pending_then_processing_then_succeeded() -> None:
    s = pending()
    assert s["phase"] == "Pending" and s["attempts"] == 0 and s["progress"] == 0
    s = step(s, msg(Phase.PROCESSING, worker="w1"))
    assert (s["phase"], s["attempts"], s["worker"]) == ("Processing", 1, "w1")
    s = step(s, msg(Phase.PROCESSING, seq=1, progress=40, message="step 2"))
    assert (s["progress"], s["message"]) == (40, "step 2")
    s = step(s, msg(Phase.SUCCEEDED, seq=2, result={"ok": True}))
    assert s["phase"] == "Succeeded" and s["result"] == {"ok": True} and s["progress"] == 100
    assert "completionTime" in s


@pytest.mark.parametrize("final", [p for p in Phase if p.terminal])
def test_terminal_phases_never_change(final: Phase) -> None:
    s = step(step(pending(), msg(Phase.PROCESSING)), msg(final, seq=1))
    assert s["phase"] == final.value
    for late in (
        msg(Phase.PROCESSING, seq=5, progress=99),
        msg(Phase.SUCCEEDED, seq=6),
        msg(Phase.ERROR, attempt=2),
        msg(Phase.PROCESSING, attempt=3),
    ):
        assert st.classify(s, late) is st.Change.IGNORE


def test_duplicate_and_stale_messages_are_ignored() -> None:
    s = step(pending(), msg(Phase.PROCESSING))
    s = step(s, msg(Phase.PROCESSING, seq=3, progress=60))
    assert st.classify(s, msg(Phase.PROCESSING, seq=3, progress=60)) is st.Change.IGNORE
    assert st.classify(s, msg(Phase.PROCESSING, seq=2, progress=30)) is st.Change.IGNORE
    assert st.classify(s, msg(Phase.PROCESSING, seq=0)) is st.Change.IGNORE  # Processing again
    # Same progress, older message text: only the sequence number tells it is stale.
    older = msg(Phase.PROCESSING, seq=2, progress=60, message="older")
    assert st.classify(s, older) is st.Change.PROGRESS
    assert st.classify(s, older, last_seq=3) is st.Change.IGNORE


def test_progress_is_a_coalescable_change_and_phase_changes_are_not() -> None:
    s = step(pending(), msg(Phase.PROCESSING))
    assert st.classify(s, msg(Phase.PROCESSING, seq=1, progress=10)) is st.Change.PROGRESS
    assert st.classify(s, msg(Phase.PROCESSING, seq=1, message="hi")) is st.Change.PROGRESS
    assert st.classify(s, msg(Phase.SUCCEEDED, seq=1)) is st.Change.PHASE
    assert st.classify(pending(), msg(Phase.PROCESSING)) is st.Change.PHASE


def test_processing_before_pending_is_accepted_and_pending_never_downgrades() -> None:
    s = step({}, msg(Phase.PROCESSING))
    assert s["phase"] == "Processing"
    s = st.pending(s, "task:u1:1", NOW, 1)
    assert s["phase"] == "Processing" and s["messageId"] == "task:u1:1"


def test_a_new_attempt_resets_progress_and_an_old_one_is_ignored() -> None:
    s = step(step(pending(), msg(Phase.PROCESSING)), msg(Phase.PROCESSING, seq=1, progress=70))
    s2 = step(s, msg(Phase.PROCESSING, attempt=2, worker="w2"))
    assert (s2["attempts"], s2["progress"], s2["worker"]) == (2, 0, "w2")
    assert st.classify(s2, msg(Phase.PROCESSING, attempt=1, seq=9, progress=90)) is st.Change.IGNORE


def test_error_records_reason_message_and_traceback() -> None:
    s = step(
        pending(),
        msg(
            Phase.ERROR,
            error=ErrorInfo(
                reason="HandlerException", message="ValueError: x", traceback="Traceback ..."
            ),
        ),
    )
    assert s["error"] == {
        "reason": "HandlerException",
        "message": "ValueError: x",
        "traceback": "Traceback ...",
    }
    assert "result" not in s


def test_operator_error_for_invalid_spec() -> None:
    s = st.end({}, Phase.ERROR, "InvalidSpec", "spec.queue: required", NOW, 1)
    assert s["phase"] == "Error" and s["error"]["reason"] == "InvalidSpec"
    assert st.end(s, Phase.ERROR, "Other", "x", NOW, 1) is s  # terminal stays


def test_operator_messages_are_cut_to_the_named_limits() -> None:
    s = st.end({}, Phase.ERROR, "Huge", "x" * 10_000, NOW, 1)
    assert len(s["message"]) == 1024 and len(s["error"]["message"]) == 4096


# times ----------------------------------------------------------------------------------


def test_times_are_written_in_whole_seconds_and_read_back() -> None:
    at = datetime(2026, 3, 4, 5, 6, 7, 890_000, tzinfo=UTC)
    assert st.rfc3339(at) == "2026-03-04T05:06:07Z"
    assert st.parse_time(st.rfc3339(at)) == at.replace(microsecond=0)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-03-04T05:06:07.25Z", datetime(2026, 3, 4, 5, 6, 7, 250_000, tzinfo=UTC)),
        ("2026-03-04T05:06:07.123456Z", datetime(2026, 3, 4, 5, 6, 7, 123_456, tzinfo=UTC)),
        ("2026-03-04t05:06:07z", datetime(2026, 3, 4, 5, 6, 7, tzinfo=UTC)),
        ("2026-03-04T07:06:07+02:00", datetime(2026, 3, 4, 5, 6, 7, tzinfo=UTC)),
    ],
)
def test_rfc3339_with_fractions_and_offsets_is_read(text: str, expected: datetime) -> None:
    assert st.parse_time(text) == expected
    assert st.parse_time(text).utcoffset() == timedelta(0)


def test_seconds_between_two_status_times() -> None:
    assert st.seconds_between("2026-01-01T00:00:00Z", "2026-01-01T00:01:00.5Z") == 60.5


def test_malformed_times_are_refused() -> None:
    with pytest.raises(ValueError, match="Invalid isoformat"):
        st.parse_time("yesterday")


@pytest.mark.parametrize(
    ("phase", "ready", "completed", "reconciling", "stalled"),
    [
        (Phase.PENDING, "False", "False", "True", "False"),
        (Phase.PROCESSING, "False", "False", "True", "False"),
        (Phase.SUCCEEDED, "True", "True", "False", "False"),
        (Phase.FAILED, "False", "True", "False", "True"),
        (Phase.ERROR, "False", "True", "False", "True"),
        (Phase.TIMED_OUT, "False", "True", "False", "True"),
        (Phase.CANCELLED, "False", "True", "False", "True"),
    ],
)
def test_conditions_per_phase(
    phase: Phase, ready: str, completed: str, reconciling: str, stalled: str
) -> None:
    conds = {c["type"]: c for c in st.conditions({"phase": phase.value}, NOW, 3)}
    assert [conds[t]["status"] for t in ("Ready", "Completed", "Reconciling", "Stalled")] == [
        ready,
        completed,
        reconciling,
        stalled,
    ]
    assert all(c["observedGeneration"] == 3 and c["reason"] == phase.value for c in conds.values())


def test_condition_transition_time_kept_while_status_unchanged() -> None:
    first = st.finish({"phase": "Pending"}, NOW, 1)
    later = NOW + timedelta(seconds=30)
    second = st.finish(dict(first, phase="Processing"), later, 1)
    by_type = {c["type"]: c for c in second["conditions"]}
    assert by_type["Reconciling"]["lastTransitionTime"] == st.rfc3339(NOW)  # still True
    assert by_type["Ready"]["lastTransitionTime"] == st.rfc3339(NOW)  # still False


def test_order_prefers_later_attempt_then_phase_then_progress() -> None:
    assert st.order({"attempts": 2, "phase": "Processing"}) > st.order(
        {"attempts": 1, "phase": "Succeeded"}
    )
    assert st.order({"attempts": 1, "phase": "Error"}) > st.order(
        {"attempts": 1, "phase": "Processing", "progress": 99}
    )


def test_retry_goes_back_to_pending_and_ignores_the_old_attempt() -> None:
    s = step(pending(), msg(Phase.PROCESSING))
    boom = msg(Phase.ERROR, seq=1, error=ErrorInfo(reason="HandlerException", message="x"))
    assert st.retries_left(boom, retries=1)
    assert not st.retries_left(boom, retries=0)
    later = NOW + timedelta(seconds=5)
    r = st.retrying(s, boom, later, 1, NOW, 1)
    assert (r["phase"], r["nextAttempt"], r["attempts"]) == ("Pending", 2, 1)
    assert r["lastError"]["reason"] == "HandlerException" and "error" not in r
    assert r["nextAttemptTime"] == st.precise_time(later)
    # A late message of attempt 1 cannot take the task back to Processing.
    assert st.classify(r, msg(Phase.PROCESSING, seq=2, progress=50)) is st.Change.IGNORE
    assert st.classify(r, msg(Phase.SUCCEEDED, seq=3)) is st.Change.IGNORE
    # Attempt 2 starts: the retry bookkeeping goes away.
    r2 = step(r, msg(Phase.PROCESSING, attempt=2))
    assert (r2["phase"], r2["attempts"]) == ("Processing", 2)
    assert "nextAttempt" not in r2 and "nextAttemptTime" not in r2
    # Its Error is final when no retry is left.
    fail2 = msg(Phase.ERROR, attempt=2, seq=1, error=ErrorInfo(reason="HandlerException"))
    assert not st.retries_left(fail2, retries=1)


def test_failed_is_never_retried() -> None:
    assert not st.retries_left(msg(Phase.FAILED, seq=1), retries=5)


@pytest.mark.parametrize("phase", [Phase.CANCELLED, Phase.TIMED_OUT, Phase.ERROR])
def test_operator_ends_a_task(phase: Phase) -> None:
    s = st.end(pending(), phase, "Reason", "why", NOW, 1)
    assert (s["phase"], s["error"]["reason"], s["message"]) == (phase.value, "Reason", "why")
    assert st.end(s, Phase.CANCELLED, "Other", "x", NOW, 1) is s
