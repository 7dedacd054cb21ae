"""The admission order and limits of one queue, decided without I/O (queues.admission)."""

from __future__ import annotations

import random

from asynctask_operator.queues.admission import Admission, Held
from asynctask_operator.queues.policy import QueuePolicy, Reason, parse


def policy(**spec: object) -> QueuePolicy:
    parsed, error = parse(spec)
    assert error == ""
    return parsed


def held(uid: str, ns: str = "a", priority: int = 0, since: float = 0.0) -> Held:
    return Held(uid, ns, priority, since, (f"{since:012.3f}", uid))


def drain(adm: Admission, now: float = 0.0) -> list[str]:
    """Admit one at a time, each finishing before the next (cap 1 style)."""
    out: list[str] = []
    while len(adm):
        got = adm.admit(now)
        assert got, "held tasks but nothing admitted"
        for uid in got:
            adm.finished(uid)
        out += got
    return out


def test_without_limits_everything_is_admitted_at_once_in_order() -> None:
    adm = Admission(policy(), 0)
    for i in range(5):
        adm.hold(held(f"t{i}", since=i))
    assert adm.admit(10) == ["t0", "t1", "t2", "t3", "t4"]
    assert len(adm) == 0 and len(adm.in_flight) == 5


def test_the_cap_is_never_exceeded_and_a_finished_task_frees_its_slot() -> None:
    adm = Admission(policy(maxInFlight=3), 0)
    for i in range(10):
        adm.hold(held(f"t{i:02}", since=i))
    assert adm.admit(20) == ["t00", "t01", "t02"]
    assert adm.admit(20) == [] and adm.blocked_by(20) is Reason.CONCURRENCY_LIMIT
    assert adm.reason("t05", 20) is Reason.CONCURRENCY_LIMIT
    adm.finished("t01")
    assert adm.admit(21) == ["t03"]
    assert len(adm.in_flight) == 3
    adm.started("t99")  # a task published before the policy (a restart): counted
    adm.finished("t00")
    assert adm.admit(22) == []


def test_the_rate_limit_admits_burst_then_rate_per_second() -> None:
    adm = Admission(policy(rateLimit={"perSecond": 10, "burst": 3}), 0)
    for i in range(500):
        adm.hold(held(f"t{i:03}", since=0))
    assert len(adm.admit(0)) == 3  # the bucket starts full
    assert adm.admit(0) == [] and adm.reason("t100", 0) is Reason.RATE_LIMITED
    wake = adm.wake_at(0)
    assert wake is not None and abs(wake - 0.1) < 1e-6
    admitted_at: list[float] = []
    now = 0.0
    while now < 10:
        now = round(now + 0.01, 2)
        admitted_at += [now] * len(adm.admit(now))
    assert len(admitted_at) == 100  # 10/s for 10 s (the burst spent at 0)
    # No window of 1 s holds more than burst + rate: 13.
    for start in admitted_at:
        assert sum(1 for t in admitted_at if start <= t < start + 1) <= 13


def test_pause_admits_nothing_and_resume_drains_in_order() -> None:
    adm = Admission(policy(paused=True), 0)
    for i in range(4):
        adm.hold(held(f"t{i}", since=i))
    assert adm.admit(5) == [] and adm.reason("t2", 5) is Reason.PAUSED
    assert adm.wake_at(5) is None
    adm.reshape(policy(paused=False), 6)
    assert adm.admit(6) == ["t0", "t1", "t2", "t3"]


def test_higher_priority_goes_first_then_creation_order() -> None:
    adm = Admission(policy(maxInFlight=1), 0)
    adm.started("running")
    for i in range(50):
        adm.hold(held(f"low{i:02}", priority=0, since=i))
    adm.hold(held("high", priority=5, since=60))
    adm.hold(held("higher", priority=50, since=61))
    assert adm.reason("low10", 61) is Reason.WAITING_FOR_TURN  # behind higher priority
    assert adm.reason("higher", 61) is Reason.CONCURRENCY_LIMIT  # first in line
    adm.finished("running")
    order = drain(adm, 62)
    assert order[:3] == ["higher", "high", "low00"]
    assert order[2:] == [f"low{i:02}" for i in range(50)]


def test_each_high_task_goes_before_every_low_task_held_when_it_arrived() -> None:
    """The issue's priority claim, without ageing: 2,000 low, 20 high arrive later."""
    adm = Admission(policy(maxInFlight=1), 0)
    for i in range(2000):
        adm.hold(held(f"low{i:04}", since=i * 0.001))
    first = drain_some(adm, 100)
    for j in range(20):
        adm.hold(held(f"high{j:02}", priority=10, since=5 + j))
    rest = drain(adm, 30)
    assert len(first) == 100 and rest[:20] == [f"high{j:02}" for j in range(20)]


def drain_some(adm: Admission, count: int, now: float = 0.0) -> list[str]:
    out: list[str] = []
    while len(out) < count:
        got = adm.admit(now)
        for uid in got:
            adm.finished(uid)
        out += got
    return out


def test_ageing_bounds_starvation_under_a_stream_of_higher_priority_tasks() -> None:
    """A priority -100 task under an endless stream of priority-100 newcomers (as many as
    are admitted) is admitted once its effective priority passes 100: after
    (100 - -100 + 1) x agingSeconds held. (Under overload it is admitted before every
    newcomer that arrives after then: it ranks as a priority-100 task arriving then.)"""
    aging = 2
    adm = Admission(policy(maxInFlight=1, priority={"agingSeconds": aging}), 0)
    adm.hold(held("starved", priority=-100, since=0))
    admitted_at = None
    for second in range(1000):
        for k in range(1):  # a new high task a second, 1 admitted a second
            adm.hold(held(f"hot{second:04}-{k}", priority=100, since=second))
        got = adm.admit(second)
        for uid in got:
            adm.finished(uid)
        if "starved" in got:
            admitted_at = second
            break
    bound = (100 - -100 + 1) * aging
    assert admitted_at is not None and admitted_at <= bound
    # Without ageing it would never go.
    strict = Admission(policy(maxInFlight=1), 0)
    strict.hold(held("starved", priority=-100, since=0))
    for second in range(600):
        for k in range(1):
            strict.hold(held(f"hot{second:04}-{k}", priority=100, since=second))
        for uid in strict.admit(second):
            strict.finished(uid)
    assert "starved" in strict


def test_a_small_burst_of_one_namespace_is_served_alongside_a_large_backlog() -> None:
    """Fairness: A holds 2,000; B's 20 arrive later and are admitted in alternation with
    A's (at most one of A's before each of B's), so B is done within 40 admissions."""
    adm = Admission(policy(maxInFlight=1), 0)
    for i in range(2000):
        adm.hold(held(f"a{i:04}", ns="a", since=0))
    drain_some(adm, 300)
    for j in range(20):
        adm.hold(held(f"b{j:02}", ns="b", since=1))
    assert adm.reason("b05", 1) is Reason.WAITING_FOR_TURN
    order = drain(adm, 2)
    last_b = max(order.index(f"b{j:02}") for j in range(20))
    assert last_b < 40
    assert order[:40:2] == [f"b{j:02}" for j in range(20)] or order[1:40:2] == [
        f"b{j:02}" for j in range(20)
    ]


def test_weights_share_the_turns() -> None:
    adm = Admission(policy(maxInFlight=1, fairness={"weights": {"big": 3}}), 0)
    for i in range(300):
        adm.hold(held(f"big{i:03}", ns="big", since=0))
        adm.hold(held(f"small{i:03}", ns="small", since=0))
    first = drain_some(adm, 400)
    big = sum(1 for uid in first if uid.startswith("big"))
    assert big == 300 and first.count("small100") == 0  # 3:1 until big ran out
    assert abs(sum(1 for uid in first[:200] if uid.startswith("big")) - 150) <= 1


def test_an_idle_namespace_gets_no_credit_for_its_idle_time() -> None:
    adm = Admission(policy(maxInFlight=1), 0)
    adm.hold(held("b-early", ns="b", since=0))
    for i in range(100):
        adm.hold(held(f"a{i:03}", ns="a", since=0))
    drain_some(adm, 60)  # b's one task went early; a went on alone
    for j in range(10):
        adm.hold(held(f"b{j}", ns="b", since=1))
    nxt = drain_some(adm, 10)
    assert 4 <= sum(1 for uid in nxt if uid.startswith("b")) <= 6  # turns, not a burst of b


def test_the_order_does_not_depend_on_the_order_tasks_were_seen() -> None:
    """A restart sees the held tasks in the list's order: admission is the same."""
    entries = [
        held(f"{ns}{i:03}", ns=ns, priority=p, since=i)
        for i in range(200)
        for ns, p in (("a", i % 3), ("b", 0))
    ]
    first = Admission(policy(maxInFlight=1), 0)
    for entry in entries:
        first.hold(entry)
    shuffled = list(entries)
    random.Random(7).shuffle(shuffled)
    second = Admission(policy(maxInFlight=1), 0)
    for entry in shuffled:
        second.hold(entry)
    assert drain(first, 500) == drain(second, 500)


def test_a_removed_task_is_never_admitted() -> None:
    adm = Admission(policy(maxInFlight=1), 0)
    for i in range(5):
        adm.hold(held(f"t{i}", since=i))
    assert adm.remove("t0") and not adm.remove("t0")
    assert adm.remove("t3")
    assert drain(adm, 9) == ["t1", "t2", "t4"]
    assert adm.oldest_since() is None


def test_oldest_since_is_the_longest_held() -> None:
    adm = Admission(policy(paused=True), 0)
    adm.hold(held("x", ns="b", since=30))
    adm.hold(held("y", ns="a", priority=3, since=12))
    adm.hold(held("z", ns="a", since=20))
    assert adm.oldest_since() == 12


def test_a_policy_the_model_refuses_is_read_as_no_limit_but_its_pause() -> None:
    got, error = parse({"paused": True, "maxInFlight": 0})
    assert got.paused and got.max_in_flight is None
    assert error.startswith("spec.maxInFlight")
    assert parse({"rateLimit": {"perSecond": 2}})[0].describe() == "2/s (burst 1)"
