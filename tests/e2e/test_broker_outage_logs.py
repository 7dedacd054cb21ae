"""A RabbitMQ restart, as the person on call reads it: the operator and the worker (as
processes) each say once per connection that RabbitMQ was lost, with the cause, and once
that it is back; no ERROR, no traceback. A task created during the outage still runs."""

from __future__ import annotations

import collections
import re
from collections.abc import Callable

import pytest

from testbed import ControlPlane, RabbitMQ, wait_until
from tests.e2e.private_system import QUEUE, fuzz_ns, fuzz_url, system
from tests.e2e.system import Process
from tests.e2e.tasks import create, status

pytestmark = pytest.mark.e2e

__all__ = ["fuzz_ns", "fuzz_url", "system"]  # fixtures, used by name

LOST = re.compile(r" WARNING .*?: (.+?): lost RabbitMQ \((.+)\)(?: at \S+)?; reconnecting")
BACK = re.compile(r" INFO .*?: (.+?): reconnected to RabbitMQ after")


def not_ready(proc: Process) -> Callable[[], bool]:
    ready = proc.ready
    assert ready is not None
    return lambda: not ready()


def test_a_broker_restart_is_one_warning_and_one_info_per_connection(
    control_plane: ControlPlane,
    rabbitmq: RabbitMQ,
    fuzz_ns: str,
    system: tuple[Process, Process],
    operator: Process,
    lifecycle_worker: Process,
) -> None:
    own_operator, own_worker = system
    shared = (operator, lifecycle_worker)
    rabbitmq.stop_node()
    try:
        for proc in (own_operator, own_worker):
            proc.wait_until("it notices the outage", not_ready(proc), 60)
        create(control_plane, fuzz_ns, "during-outage", queue=QUEUE, request={"x": 1})
    finally:
        rabbitmq.start_node()
    for proc in (own_operator, own_worker, *shared):  # the shared ones too, for later tests
        proc.wait_ready(90)
    wait_until(
        "the task created during the outage to succeed",
        lambda: status(control_plane, fuzz_ns, "during-outage").get("phase") == "Succeeded",
        60,
    )
    for proc in (own_operator, own_worker):
        text = proc.text()
        lost = collections.Counter(m.group(1) for m in LOST.finditer(text))
        back = collections.Counter(m.group(1) for m in BACK.finditer(text))
        causes = [m.group(2) for m in LOST.finditer(text)]
        print(f"\n{proc.name}: lost {dict(lost)}, back {dict(back)}; causes {causes}")
        assert lost and lost == back and set(lost.values()) == {1}, (lost, back)
        assert all(c and c != "()" and "no detail given" not in c for c in causes)
        assert " ERROR " not in text and "Traceback" not in text, proc.name
