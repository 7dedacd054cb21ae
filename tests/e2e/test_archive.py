"""The history archive end to end: a private operator (archive on) and worker on the real
control plane, RabbitMQ and PostgreSQL. A finished task is archived, then its TTL deletes
it, and its row is there whole; PostgreSQL stopped during a burst holds the TTL deletions
back until the archive has caught up; an operator SIGKILLed with a batch unwritten loses
nothing and duplicates nothing."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from selenium.webdriver.common.by import By

from asynctask_operator.archive.record import decode
from testbed import ControlPlane, PostgreSQL, RabbitMQ, probes, wait_until
from testbed._proc import free_port
from tests.e2e.browser import chromium, one, severe_logs, shot, until
from tests.e2e.chart import gateway_container, gateway_rbac
from tests.e2e.gateway_client import CALLER_VERBS, Gateway, grant
from tests.e2e.gateway_fixtures import chart_gateway
from tests.e2e.private_system import QUEUE
from tests.e2e.system import Process, operator_ready, running, system_env, worker_ready
from tests.e2e.tasks import sample, scrape

pytestmark = pytest.mark.e2e

#: What the test's burst is: small, quick tasks (the echo handler).
BURST = 12
#: How long PostgreSQL stays down in the outage test. CI keeps it short (20 s: well past
#: the burst's end and its 1 s TTL); the bench report runs it at the issue's 60 s
#: (``ASYNCTASK_E2E_ARCHIVE_OUTAGE_SECONDS=60``, bench/README.md).
OUTAGE_SECONDS = float(os.environ.get("ASYNCTASK_E2E_ARCHIVE_OUTAGE_SECONDS", "20"))


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


@pytest.fixture(scope="module")
def history_gateway(
    control_plane: ControlPlane,
    rabbitmq: RabbitMQ,
    fuzz_ns: str,
    database_url: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Gateway]:
    """A gateway as the chart runs it, reading the module's archive, serving the module's
    namespace (where the callers have rights) and another one (where they have none)."""
    suffix = uuid.uuid4().hex[:6]
    home, other = f"gwh-{suffix}", f"arx-{suffix}"
    for ns in (home, other):
        control_plane.kubectl("create", "namespace", ns)
    folder = tmp_path_factory.mktemp("history-gateway")
    with gateway_rbac(control_plane, home, served=[fuzz_ns, other]) as identity:
        tokens = {
            kind: grant(control_plane, fuzz_ns, kind, verbs) for kind, verbs in CALLER_VERBS.items()
        }
        container = gateway_container(control_plane, home, served=[fuzz_ns, other])
        with chart_gateway(
            "history-gateway",
            control_plane,
            rabbitmq,
            container,
            identity,
            folder,
            ASYNCTASK_GATEWAY_ARCHIVE_URL=database_url,
        ) as (proc, port, _):
            yield Gateway(proc, port, fuzz_ns, other, identity, tokens)
    for ns in (home, other):
        control_plane.kubectl("delete", "namespace", ns, "--wait=false", check=False)


def create_all(
    cp: ControlPlane, ns: str, names: list[str], labels: dict[str, str] | None = None, **spec: Any
) -> None:
    """Create tasks in one kubectl call (a List)."""
    items = [
        {
            "apiVersion": "asynctask.dev/v1alpha1",
            "kind": "AsyncTask",
            "metadata": {"name": name, "namespace": ns, "labels": labels or {"burst": "yes"}},
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
        # The TTL (1 s) has passed for every task, yet none is deleted while PostgreSQL is
        # down: none is archived. Checked every few seconds until the outage ends.
        while (left := OUTAGE_SECONDS - (time.monotonic() - stopped)) > 0:
            assert len(live_tasks(control_plane, fuzz_ns, "b")) == BURST
            time.sleep(min(5.0, left))
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


def cli(gw: Gateway, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "ASYNCTASK_GATEWAY": gw.url, "ASYNCTASK_TOKEN": gw.tokens["writer"]}
    return subprocess.run(
        [sys.executable, "-m", "asynctask_client", "-n", gw.namespace, *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_the_gateway_and_cli_read_archived_tasks_list_history_and_resubmit(
    control_plane: ControlPlane,
    fuzz_ns: str,
    database_url: str,
    archived_system: tuple[Process, Process],
    history_gateway: Gateway,
) -> None:
    gw = history_gateway
    create_all(control_plane, fuzz_ns, ["h0", "h1", "h2"], {"set": "h"}, ttlSecondsAfterFinished=1)
    wait_until(
        "the tasks to be archived and deleted by their TTL",
        lambda: (
            not live_tasks(control_plane, fuzz_ns, "h")
            and gw.call("GET", f"{gw.tasks()}/h2").status == 200
        ),
        60,
    )
    # GET of a task that is no longer live: its latest archived run, the same view.
    got = gw.call("GET", f"{gw.tasks()}/h1", token="reader")
    assert got.status == 200, got.body
    view = got.json()
    assert view["archived"] is True and view["phase"] == "Succeeded" and view["done"]
    assert view["result"]["type"] == "dict" and view["queue"] == QUEUE
    assert gw.call("GET", f"{gw.tasks()}/never-existed").status == 404
    # The history: filters and keyset pages.
    history = f"/v1/namespaces/{fuzz_ns}/history"
    pages, params = [], "labelSelector=set%3Dh&phase=Succeeded&limit=2"
    while True:
        page = gw.call("GET", f"{history}?{params}")
        assert page.status == 200, page.body
        pages.append([(i["name"], i["completionTime"]) for i in page.json()["items"]])
        if not page.json()["continue"]:
            break
        params = f"labelSelector=set%3Dh&phase=Succeeded&limit=2&continue={page.json()['continue']}"
    assert [len(p) for p in pages] == [2, 1]
    listed = [item for p in pages for item in p]
    assert sorted(name for name, _ in listed) == ["h0", "h1", "h2"]
    assert [t for _, t in listed] == sorted((t for _, t in listed), reverse=True)  # newest first
    # Hostile queries: 400 problem details, never a slow scan.
    for bad in ("limit=100000", "since=yesterday", "labelSelector=a%20in%20(x", "continue=AAAA"):
        answer = gw.call("GET", f"{history}?{bad}")
        assert answer.status == 400, (bad, answer.body)
        assert answer.headers["content-type"].startswith("application/problem+json")
    sql = gw.call("GET", f"{history}?queue=x%27%20OR%20%271%27%3D%271")
    assert sql.status == 200 and sql.json()["items"] == []
    # Another namespace's history: the same SubjectAccessReview refuses it.
    assert gw.call("GET", f"/v1/namespaces/{gw.other}/history").status == 403
    assert gw.call("GET", f"{gw.tasks(gw.other)}/h1").status == 403
    # Resubmit: a new task from the archived spec, linked to the original, and it runs.
    again = gw.call("POST", f"{gw.tasks()}/h1:resubmit")
    assert again.status == 202, again.body
    new = again.json()
    assert again.headers["location"] == f"{gw.tasks()}/{new['name']}"
    obj = json.loads(
        control_plane.kubectl("get", "asynctask", new["name"], "-n", fuzz_ns, "-o", "json").stdout
    )
    assert obj["metadata"]["labels"]["asynctask.dev/resubmitted-from"] == view["uid"]
    assert obj["spec"]["request"] == {"name": "h1"}
    # The CLI: the archive listed with --archived, and resubmit by name.
    out = cli(gw, "list", "--archived", "-l", "set=h", "-o", "json")
    assert out.returncode == 0, out.stderr
    assert {"h0", "h1", "h2"} <= {i["name"] for i in json.loads(out.stdout)["items"]}
    made = cli(gw, "resubmit", "h0")
    assert made.returncode == 0 and "created from h0" in made.stdout, made.stderr
    wait_until(  # they run, end, and are archived in turn (their TTL was copied too)
        "the resubmitted tasks to be archived",
        lambda: (
            {
                r[2]
                for r in archived(database_url, fuzz_ns, "h0-")
                + archived(database_url, fuzz_ns, "h1-")
            }
            == {"Succeeded"}
            and len(archived(database_url, fuzz_ns, "h0-") + archived(database_url, fuzz_ns, "h1-"))
            == 2
        ),
        60,
    )


def settled(cp: ControlPlane, gw: Gateway, db: str, ns: str, prefix: str, gone: list[str]) -> bool:
    """Every task named ``prefix...`` archived as Succeeded, those in ``gone`` deleted by
    their TTL, and the gateway serving each of ``gone`` from the archive."""
    rows = archived(db, ns, prefix)
    live = live_tasks(cp, ns, prefix)
    return (
        len(rows) == len(gone) + 1
        and {r[2] for r in rows} == {"Succeeded"}
        and not set(gone) & set(live)
        and all(gw.call("GET", f"{gw.tasks()}/{n}").status == 200 for n in gone)
    )


def test_a_task_is_read_by_uid_and_the_cli_reads_the_archive_and_other_namespaces_are_refused(
    control_plane: ControlPlane,
    fuzz_ns: str,
    database_url: str,
    archived_system: tuple[Process, Process],
    history_gateway: Gateway,
) -> None:
    gw = history_gateway
    create_all(control_plane, fuzz_ns, ["u0", "u1"], {"set": "u"}, ttlSecondsAfterFinished=1)
    create_all(control_plane, fuzz_ns, ["ukeep"], {"set": "u"})  # no TTL: stays live
    wait_until(
        "u0 and u1 archived and deleted, ukeep archived and live",
        lambda: settled(control_plane, gw, database_url, fuzz_ns, "u", ["u0", "u1"]),
        60,
    )
    uids = {r[0]: r[1] for r in archived(database_url, fuzz_ns, "u")}
    # By uid: the archived run (u1), and the live task (ukeep); its record with ?archived.
    by_uid = gw.call("GET", f"{gw.tasks()}/{uids['u1']}", token="reader")
    assert by_uid.status == 200, by_uid.body
    assert by_uid.json()["name"] == "u1" and by_uid.json()["archived"] is True
    live = gw.call("GET", f"{gw.tasks()}/{uids['ukeep']}").json()
    assert live["name"] == "ukeep" and live["archived"] is False
    record = gw.call("GET", f"{gw.tasks()}/ukeep?archived=true").json()
    assert record["archived"] is True and record["uid"] == uids["ukeep"]
    assert gw.call("GET", f"{gw.tasks()}/ukeep?archived=maybe").status == 400
    detail = gw.call("GET", f"{gw.tasks()}/{uids['u0']}/detail").json()
    assert detail["task"]["archived"] is True and detail["spec"]["request"] == {"name": "u0"}
    # The history says which items are still live.
    items = gw.call("GET", f"/v1/namespaces/{fuzz_ns}/history?labelSelector=set%3Du").json()
    assert {i["name"]: i["archived"] for i in items["items"]} == {
        "u0": True,
        "u1": True,
        "ukeep": False,
    }
    # The CLI: get and result find the archived task by name or uid; --archived reads the
    # record of a live one.
    got = cli(gw, "get", "u0")
    assert got.returncode == 0 and "u0" in got.stdout and "Succeeded" in got.stdout, got.stderr
    assert "no longer live" in got.stderr
    result = cli(gw, "result", uids["u1"], "-o", "json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["type"] == "dict"
    record_cli = cli(gw, "get", "ukeep", "--archived", "-o", "json")
    assert record_cli.returncode == 0, record_cli.stderr
    assert json.loads(record_cli.stdout)["archived"] is True
    assert cli(gw, "get", "never-existed").returncode == 3
    # Another namespace: a token with every right there reads nothing of this one, by
    # name, by uid, as a record, as a history or by resubmitting it; and asking its own
    # namespace for this one's uid finds nothing (every query is bound to the namespace).
    outsider = grant(control_plane, gw.other, "outsider", CALLER_VERBS["writer"])
    for method, path in [
        ("GET", f"{gw.tasks()}/u0"),
        ("GET", f"{gw.tasks()}/{uids['u0']}"),
        ("GET", f"{gw.tasks()}/{uids['u0']}/detail"),
        ("GET", f"/v1/namespaces/{fuzz_ns}/history"),
        ("POST", f"{gw.tasks()}/{uids['u0']}:resubmit"),
    ]:
        assert gw.call(method, path, token=outsider).status == 403, (method, path)
    own = gw.call("GET", f"/v1/namespaces/{gw.other}/history", token=outsider)
    assert own.status == 200 and own.json()["items"] == []
    for method, suffix in [("GET", ""), ("GET", "/detail"), ("POST", ":resubmit")]:
        path = f"{gw.tasks(gw.other)}/{uids['u0']}{suffix}"
        answer = gw.call(method, path, token=outsider)
        assert answer.status == 404, (path, answer.body)
    control_plane.kubectl("delete", "asynctask", "ukeep", "-n", fuzz_ns, "--wait=false")


def rows(driver: Any) -> list[tuple[str, str]]:
    """The History view's rows: (name, live or archived)."""
    found = driver.find_elements(By.CSS_SELECTOR, "#history-rows tr[data-name]")
    return [(r.get_attribute("data-name"), r.get_attribute("data-record")) for r in found]


def test_the_dashboard_pages_the_history_and_resubmits_an_archived_task(
    control_plane: ControlPlane,
    fuzz_ns: str,
    database_url: str,
    archived_system: tuple[Process, Process],
    history_gateway: Gateway,
    tmp_path: Any,
) -> None:
    gw = history_gateway
    create_all(control_plane, fuzz_ns, ["d0", "d1", "d2"], {"set": "d"}, ttlSecondsAfterFinished=1)
    create_all(control_plane, fuzz_ns, ["dkeep"], {"set": "d"})  # no TTL: stays live
    wait_until(
        "d0..d2 archived and deleted, dkeep archived and live",
        lambda: settled(control_plane, gw, database_url, fuzz_ns, "d", ["d0", "d1", "d2"]),
        60,
    )
    with chromium(tmp_path / "profile") as driver:
        driver.get(f"{gw.url}/ui/")
        driver.execute_script(
            "sessionStorage.setItem('asynctask.token', arguments[0])", gw.tokens["writer"]
        )
        # Two rows a page: "More" walks the keyset pages to the end.
        driver.get(f"{gw.url}/ui/#/ns/{fuzz_ns}/history?labelSelector=set%3Dd&limit=2")
        until(driver, "the first page", lambda d: len(rows(d)) == 2)
        one(driver, "#history-more").click()
        until(driver, "the second page", lambda d: len(rows(d)) == 4)
        assert not one(driver, "#history-more").is_displayed()
        shown = dict(rows(driver))
        assert shown == {"d0": "archived", "d1": "archived", "d2": "archived", "dkeep": "live"}
        shot(driver, "history")
        # The form's filters go to the gateway: a time range after now matches nothing.
        since = one(driver, "#history-since")  # a datetime-local: its typing is the locale's
        driver.execute_script("arguments[0].value = '2099-01-01T00:00:00'", since)
        one(driver, "#history-filter").click()
        until(driver, "no match", lambda d: "No finished task" in one(d, "#history-rows").text)
        assert "since=2099-01-01T" in driver.current_url
        # An archived row opens its task page by uid: marked archived, its result, and
        # Resubmit makes a new task linked to it.
        driver.back()
        until(driver, "the rows again", lambda d: len(rows(d)) == 2)
        row = driver.find_element(By.CSS_SELECTOR, "#history-rows tr[data-record='archived']")
        name, uid = row.get_attribute("data-name"), row.get_attribute("data-uid")
        link = row.find_element(By.TAG_NAME, "a")
        assert (link.get_attribute("href") or "").endswith(f"/tasks/{uid}")  # that very run
        link.click()
        until(
            driver,
            "the archived task page",
            lambda d: one(d, "#main").get_attribute("data-archived") == "true",
        )
        assert one(driver, "#task-archived").is_displayed() and one(driver, "h2").text == name
        assert json.loads(one(driver, "#section-request-body pre").text) == {"name": name}
        assert json.loads(one(driver, "#section-result-body pre").text)["type"] == "dict"
        assert not one(driver, "#cancel").is_displayed()
        shot(driver, "task-archived")
        one(driver, "#resubmit").click()
        made = until(
            driver, "the new task's link", lambda d: d.find_elements(By.CSS_SELECTOR, "#notice a")
        )[0].text
        assert made.startswith(f"{name}-"), made
        obj = json.loads(
            control_plane.kubectl("get", "asynctask", made, "-n", fuzz_ns, "-o", "json").stdout
        )
        assert obj["metadata"]["labels"]["asynctask.dev/resubmitted-from"] == uid
        assert severe_logs(driver) == []
    control_plane.kubectl("delete", "asynctask", "dkeep", made, "-n", fuzz_ns, "--wait=false")
