"""The history archive end to end: a private operator (archive on) and worker on the real
control plane, RabbitMQ and PostgreSQL. A finished task is archived, then its TTL deletes
it, and its row is there whole; PostgreSQL stopped during a burst holds the TTL deletions
back until the archive has caught up; an operator SIGKILLed with a batch unwritten loses
nothing and duplicates nothing."""

from __future__ import annotations

import json
import sys
import time
import uuid
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest

from asynctask_operator.archive.record import decode
from testbed import ControlPlane, PostgreSQL, RabbitMQ, probes, wait_until
from testbed._proc import free_port
from tests.e2e.private_system import QUEUE
from tests.e2e.system import Process, operator_ready, running, system_env, worker_ready
from tests.e2e.tasks import sample, scrape

pytestmark = pytest.mark.e2e

#: What the test's burst is: small, quick tasks (the echo handler).
BURST = 12


@pytest.fixture(scope="module")
def fuzz_ns(control_plane: ControlPlane) -> Iterator[str]:
    """The module's namespace, outside the shared operator's ``t-*``."""
    name = f"ar-{uuid.uuid4().hex[:8]}"
    control_plane.kubectl("create", "namespace", name)
    yield name
    control_plane.kubectl("delete", "namespace", name, "--wait=false")


@pytest.fixture(scope="module")
def database_url(postgres: PostgreSQL) -> Iterator[str]:
    name = f"ar_{uuid.uuid4().hex[:8]}"
    yield postgres.create_database(name)
    postgres.drop_database(name)


@pytest.fixture(scope="module")
def archived_system(
    control_plane: ControlPlane,
    rabbitmq: RabbitMQ,
    fuzz_ns: str,
    database_url: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[Process, Process]]:
    """A private operator with the archive on (its own database) and an echo worker, for
    the module (each test uses names of its own)."""
    tmp_path = tmp_path_factory.mktemp("archive")
    vhost = f"ar-{uuid.uuid4().hex[:8]}"
    fuzz_url = rabbitmq.add_vhost(vhost)
    env = dict(
        system_env(control_plane, rabbitmq),
        ASYNCTASK_AMQP_URL=fuzz_url,
        ASYNCTASK_WORKER_AMQP_URL=fuzz_url,
        LIFECYCLE_MARKERS=str(tmp_path),
        ASYNCTASK_METRICS_PORT=str(free_port()),
        ASYNCTASK_METRICS_ADDRESS="127.0.0.1",
        ASYNCTASK_ARCHIVE_URL=database_url,
        ASYNCTASK_ARCHIVE_FLUSH_SECONDS="0.5",
    )
    live, metrics = free_port(), free_port()
    operator_args = [sys.executable, "-m", "asynctask_operator", "--standalone"]
    operator_args += ["--namespace", fuzz_ns, "--liveness", probes.liveness_url(live)]
    worker_args = [sys.executable, "-m", "asynctask_worker", "tests.e2e.lifecycle_app:app"]
    worker_args += ["--queues", QUEUE, "--concurrency", "4", "--metrics-port", str(metrics)]
    with (
        running(
            "archive-operator", operator_args, env, tmp_path, ready=operator_ready(live)
        ) as operator,
        running(
            "archive-worker", worker_args, env, tmp_path, ready=worker_ready(metrics)
        ) as worker,
    ):
        yield operator, worker


def create_all(cp: ControlPlane, ns: str, names: list[str], **spec: Any) -> None:
    """Create tasks in one kubectl call (a List)."""
    items = [
        {
            "apiVersion": "asynctask.dev/v1alpha1",
            "kind": "AsyncTask",
            "metadata": {"name": name, "namespace": ns, "labels": {"burst": "yes"}},
            "spec": {"queue": QUEUE, "request": {"name": name}, **spec},
        }
        for name in names
    ]
    cp.kubectl(
        "create", "-f", "-", input=json.dumps({"apiVersion": "v1", "kind": "List", "items": items})
    )


def live_tasks(cp: ControlPlane, ns: str, prefix: str = "") -> dict[str, str]:
    """Each task of the namespace whose name starts with ``prefix``: its phase ('' before
    it has one)."""
    out = json.loads(cp.kubectl("get", "asynctasks", "-n", ns, "-o", "json").stdout)
    return {
        i["metadata"]["name"]: (i.get("status") or {}).get("phase", "")
        for i in out["items"]
        if i["metadata"]["name"].startswith(prefix)
    }


def archived(url: str, ns: str, prefix: str) -> list[tuple[Any, ...]]:
    """The rows of tasks whose name starts with ``prefix``: (name, uid, phase)."""
    with psycopg.connect(url) as conn:
        return conn.execute(
            "SELECT name, uid, phase FROM asynctask_history "
            "WHERE namespace = %s AND starts_with(name, %s) ORDER BY name",
            (ns, prefix),
        ).fetchall()


def test_a_task_is_archived_then_deleted_by_its_ttl_and_its_row_is_whole(
    control_plane: ControlPlane,
    fuzz_ns: str,
    database_url: str,
    archived_system: tuple[Process, Process],
) -> None:
    request = {"text": "nul\u0000inside", "deep": [[[[{"k": "é"}]]]]}
    manifest = {
        "apiVersion": "asynctask.dev/v1alpha1",
        "kind": "AsyncTask",
        "metadata": {"name": "whole", "namespace": fuzz_ns, "labels": {"team": "a"}},
        "spec": {"queue": QUEUE, "request": request, "ttlSecondsAfterFinished": 1},
    }
    out = control_plane.kubectl("create", "-f", "-", "-o", "json", input=json.dumps(manifest))
    uid = json.loads(out.stdout)["metadata"]["uid"]
    wait_until(
        "its TTL to delete the task", lambda: "whole" not in live_tasks(control_plane, fuzz_ns), 60
    )
    with psycopg.connect(database_url) as conn:
        row = conn.execute(
            "SELECT uid, phase, queue, labels, attempts, worker, request, request_text, "
            "result, result_text, started_at, finished_at FROM asynctask_history "
            "WHERE namespace = %s AND name = 'whole'",
            (fuzz_ns,),
        ).fetchone()
    assert row is not None
    assert row[:5] == (uid, "Succeeded", QUEUE, {"team": "a"}, 1)
    assert row[5]  # the worker that ran it
    assert decode(row[6], row[7]) == request  # the NUL kept: stored as exact text
    assert decode(row[8], row[9])["type"] == "dict"
    assert row[10] is not None and row[11] >= row[10]


def test_postgresql_down_during_a_burst_holds_ttl_until_the_archive_catches_up(
    control_plane: ControlPlane,
    postgres: PostgreSQL,
    fuzz_ns: str,
    database_url: str,
    archived_system: tuple[Process, Process],
) -> None:
    operator, _ = archived_system
    names = [f"b{n:02d}" for n in range(BURST)]
    postgres.stop_server()
    stopped = time.monotonic()
    try:
        create_all(control_plane, fuzz_ns, names, ttlSecondsAfterFinished=1)
        wait_until(
            "the burst to finish while PostgreSQL is down",
            lambda: set(live_tasks(control_plane, fuzz_ns, "b").values()) == {"Succeeded"},
            60,
        )
        finished = time.monotonic() - stopped
        # The TTL (1 s) has passed for every task, yet none is deleted: none is archived.
        time.sleep(max(0.0, 20 - (time.monotonic() - stopped)))
        assert len(live_tasks(control_plane, fuzz_ns, "b")) == BURST
        held = sample(scrape(operator.env), "asynctask_operator_archive_queue_depth")
        assert held == BURST
    finally:
        postgres.start_server()
    outage = time.monotonic() - stopped
    caught_up = wait_until(
        "the archive to catch up and the TTL to delete every task",
        lambda: (
            len(archived(database_url, fuzz_ns, "b")) == BURST
            and not live_tasks(control_plane, fuzz_ns, "b")
        ),
        90,
    )
    samples = scrape(operator.env)
    print(
        f"\noutage {outage:.1f}s: burst of {BURST} finished {finished:.1f}s into it; "
        f"archived and deleted {caught_up:.1f}s after PostgreSQL came back; "
        f"{sample(samples, 'asynctask_operator_archive_failures_total'):.0f} failed batch writes"
    )
    assert [r[0] for r in archived(database_url, fuzz_ns, "b")] == names
    assert sample(samples, "asynctask_operator_archive_unarchived_deletions_total") == 0
    assert sample(samples, "asynctask_operator_archive_failures_total") >= 1


def test_an_operator_killed_with_a_batch_unwritten_loses_and_duplicates_nothing(
    control_plane: ControlPlane,
    postgres: PostgreSQL,
    fuzz_ns: str,
    database_url: str,
    archived_system: tuple[Process, Process],
) -> None:
    operator, _ = archived_system
    first = [f"a{n:02d}" for n in range(BURST)]
    create_all(control_plane, fuzz_ns, first)
    wait_until(
        "the first burst to be archived",
        lambda: len(archived(database_url, fuzz_ns, "a")) == BURST,
        60,
    )
    second = [f"k{n:02d}" for n in range(BURST)]
    postgres.stop_server()
    try:
        create_all(control_plane, fuzz_ns, second)
        operator.wait_until(
            "the second burst to finish, its rows held in a batch being retried",
            lambda: sample(scrape(operator.env), "asynctask_operator_archive_queue_depth") == BURST,
            60,
        )
        operator.proc.kill()  # SIGKILL: the batch in memory is gone with it
        operator.proc.wait(10)
    finally:
        postgres.start_server()
    killed_at = time.monotonic()
    operator.restart()
    operator.wait_ready(60)
    took = wait_until(
        "the restarted operator to archive what the killed one held",
        lambda: (
            len(archived(database_url, fuzz_ns, "a")) + len(archived(database_url, fuzz_ns, "k"))
            == 2 * BURST
        ),
        60,
    )
    rows = archived(database_url, fuzz_ns, "a") + archived(database_url, fuzz_ns, "k")
    print(
        f"\nrestarted operator archived the lost batch {took:.1f}s after it came up "
        f"({time.monotonic() - killed_at:.1f}s after the kill)"
    )
    assert [r[0] for r in rows] == sorted(first + second)
    assert len({r[1] for r in rows}) == 2 * BURST  # one row per task: upserts, no duplicate
    assert {r[2] for r in rows} == {"Succeeded"}
