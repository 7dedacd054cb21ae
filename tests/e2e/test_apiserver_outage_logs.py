"""An apiserver outage across progress-reporting tasks, as the person on call reads it: the
operator says once that the Kubernetes API is unavailable, with the cause, and once that it
answers again; no other WARNING, no ERROR, no traceback. Every write waited (status,
progress), so every task still succeeds."""

from __future__ import annotations

import re
import time

import pytest

from testbed import ControlPlane, wait_until
from tests.e2e.private_system import fuzz_ns, fuzz_url, system
from tests.e2e.system import Process
from tests.e2e.tasks import create, status

pytestmark = pytest.mark.e2e

__all__ = ["fuzz_ns", "fuzz_url", "system"]  # fixtures, used by name

WORKER_QUEUES = "ticking"  # what the private worker serves
TASKS = 4  # the private worker runs 4 at once
OUTAGE_SECONDS = 8
RUN_SECONDS = 25  # each task reports progress every 0.3 s for this long: across the outage
UNAVAILABLE = re.compile(r" WARNING .*?: the Kubernetes API is unavailable \((.+)\); writes wait")
BACK = re.compile(r" INFO .*?: the Kubernetes API answers again after ([\d.]+)s")


def test_an_apiserver_outage_is_one_warning_and_one_info_and_no_error(
    control_plane: ControlPlane, fuzz_ns: str, system: tuple[Process, Process]
) -> None:
    own_operator, _ = system
    names = [f"ticks-{i}" for i in range(TASKS)]
    for name in names:
        create(control_plane, fuzz_ns, name, queue="ticking", request={"seconds": RUN_SECONDS})

    def phases() -> list[str]:
        return [str(status(control_plane, fuzz_ns, name).get("phase")) for name in names]

    wait_until(
        "every task to report progress",
        lambda: all(status(control_plane, fuzz_ns, n).get("progress") for n in names),
        60,
    )
    assert set(phases()) == {"Processing"}  # the outage falls in the middle of every task
    control_plane.stop_apiserver()
    try:
        time.sleep(OUTAGE_SECONDS)  # the outage itself: the fault, not a wait for something
    finally:
        control_plane.start_apiserver()
    wait_until("every task to succeed", lambda: set(phases()) == {"Succeeded"}, 90)
    text = own_operator.text()
    downs, backs = UNAVAILABLE.findall(text), BACK.findall(text)
    print(f"\noutage told as {downs}; back after {backs} s")
    assert " ERROR " not in text and "Traceback" not in text
    assert len(downs) == 1 and len(backs) == 1, (downs, backs)
    # Nothing else warns of it (the watch, the autoscaler, the Lease tell it the same way).
    warnings = [line for line in text.splitlines() if " WARNING " in line]
    assert len(warnings) == 1 and UNAVAILABLE.search(warnings[0]), warnings
    assert float(backs[0]) >= OUTAGE_SECONDS / 2  # the one outage, not a blip within it
