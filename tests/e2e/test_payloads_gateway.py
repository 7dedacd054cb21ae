"""Large payloads through the gateway, the Python client, the CLI and the dashboard (issue
24), on the real control plane, RabbitMQ and S3 server: a private operator (object storage
on) and worker in a namespace of their own, and a gateway as the chart runs it with the same
bucket. The worker holds no storage credentials (the operator's presigned URLs only).

* 10 MiB through the CLI (``submit --request-file``, ``result -o FILE`` and to stdout), the
  task object under 4 KiB, the presigned URL route, a large JSON request offloaded by the
  gateway, and a caller from another namespace who gets neither bytes nor URL;
* 10 MiB through the Python client (``submit(bytes)``, ``Task.result``), 1 GiB through the
  Python client (``submit(Path)``, ``Task.download``) and through the CLI;
* the store down at submit: a clear error, and no task;
* the dashboard's task page: size, type, and the links.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from asynctask_client import ApiError, Client, Task
from testbed import ControlPlane, RabbitMQ, S3Server, probes
from testbed._proc import free_port
from tests.e2e.browser import chromium, one, severe_logs, shot, until
from tests.e2e.chart import gateway_container, gateway_rbac
from tests.e2e.gateway_client import CALLER_VERBS, Gateway, grant
from tests.e2e.gateway_fixtures import chart_gateway
from tests.e2e.system import operator_ready, running, system_env, worker_ready

pytestmark = pytest.mark.e2e
QUEUE = "pl-echo"
MIB = 1024 * 1024
#: How long a task whose request and result are each 1 GiB may take: four streams of 1 GiB
#: (client → gateway → store, store → worker, worker → store) and the checks on each side,
#: on a loaded 2-core machine (about a minute here; generous against the CI's load).
BIG_SECONDS = 300
#: A 10 MiB task: seconds here.
TASK_SECONDS = 120


def pattern(path: Path, size: int, seed: int) -> str:
    """``size`` bytes of a fast deterministic generator (a random MiB, each copy numbered)
    written to ``path``; their sha256."""
    block = random.Random(seed).randbytes(MIB)
    sha = hashlib.sha256()
    with path.open("wb") as file:
        for i in range(size // MIB):
            chunk = i.to_bytes(8, "big") + block[8:]
            file.write(chunk)
            sha.update(chunk)
    return sha.hexdigest()


def file_sha256(path: Path) -> str:
    sha = hashlib.sha256()
    with path.open("rb") as file:
        while chunk := file.read(MIB):
            sha.update(chunk)
    return sha.hexdigest()


@pytest.fixture(scope="module")
def home(control_plane: ControlPlane) -> Iterator[str]:
    """The module's namespace, outside the shared operator's ``t-*``."""
    name = f"pl-{uuid.uuid4().hex[:8]}"
    control_plane.kubectl("create", "namespace", name)
    yield name
    control_plane.kubectl("delete", "namespace", name, "--wait=false")


@pytest.fixture(scope="module")
def bucket(s3: S3Server) -> str:
    return s3.create_bucket(f"t-{uuid.uuid4().hex[:8]}")


@pytest.fixture(scope="module")
def payload_system(
    control_plane: ControlPlane,
    rabbitmq: RabbitMQ,
    home: str,
    s3: S3Server,
    bucket: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[None]:
    """A private operator with object storage on, and a worker of the echo handler (which
    has no storage settings or credentials: the operator's URLs are all it gets)."""
    folder = tmp_path_factory.mktemp("payload-system")
    url = rabbitmq.add_vhost(f"pl-{uuid.uuid4().hex[:8]}")
    base = dict(system_env(control_plane, rabbitmq), ASYNCTASK_AMQP_URL=url)
    base["ASYNCTASK_WORKER_AMQP_URL"] = url
    live, metrics = free_port(), free_port()
    operator = [sys.executable, "-m", "asynctask_operator", "--standalone", "--namespace", home]
    operator += ["--liveness", probes.liveness_url(live)]
    worker = [sys.executable, "-m", "asynctask_worker", "tests.e2e.payload_gateway_app:app"]
    worker += ["--queues", QUEUE, "--concurrency", "2", "--metrics-port", str(metrics)]
    worker_env = {k: v for k, v in base.items() if not k.startswith(("AWS_", "ASYNCTASK_S3_"))}
    with (
        running(
            "payload-operator",
            operator,
            {**base, **s3.env(bucket)},
            folder,
            ready=operator_ready(live),
        ),
        running("payload-worker", worker, worker_env, folder, ready=worker_ready(metrics)),
    ):
        yield


@pytest.fixture(scope="module")
def gw(
    control_plane: ControlPlane,
    rabbitmq: RabbitMQ,
    home: str,
    s3: S3Server,
    bucket: str,
    payload_system: None,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Gateway]:
    """A gateway as the chart runs it, with the bucket; a ``writer`` with rights in the
    module's namespace, and a ``stranger`` with the same rights in another one."""
    suffix = uuid.uuid4().hex[:6]
    gw_home, other = f"gwp-{suffix}", f"plx-{suffix}"
    for ns in (gw_home, other):
        control_plane.kubectl("create", "namespace", ns)
    folder = tmp_path_factory.mktemp("payload-gateway")
    with gateway_rbac(control_plane, gw_home, served=[home, other]) as identity:
        tokens = {
            "writer": grant(control_plane, home, "writer", CALLER_VERBS["writer"]),
            "stranger": grant(control_plane, other, "stranger", CALLER_VERBS["writer"]),
        }
        container = gateway_container(control_plane, gw_home, served=[home, other])
        with chart_gateway(
            "payload-gateway",
            control_plane,
            rabbitmq,
            container,
            identity,
            folder,
            **s3.env(bucket),
        ) as (proc, port, _):
            yield Gateway(proc, port, home, other, identity, tokens)
    for ns in (gw_home, other):
        control_plane.kubectl("delete", "namespace", ns, "--wait=false", check=False)


def cli(
    gw: Gateway, *args: str, seconds: float = TASK_SECONDS
) -> subprocess.CompletedProcess[bytes]:
    env = {**os.environ, "ASYNCTASK_GATEWAY": gw.url, "ASYNCTASK_TOKEN": gw.tokens["writer"]}
    return subprocess.run(
        [sys.executable, "-m", "asynctask_client", "-n", gw.namespace, *args],
        env=env,
        capture_output=True,
        timeout=seconds,
        check=False,
    )


def client(gw: Gateway) -> Client:
    return Client(gw.url, token=gw.tokens["writer"], namespace=gw.namespace)


def finished(task: Task, seconds: float) -> Task:
    for _ in task.updates(seconds):
        pass
    assert task.view.phase.value == "Succeeded", task.view
    return task


def test_10_mib_through_the_cli_with_a_small_object_and_no_access_from_elsewhere(
    control_plane: ControlPlane, gw: Gateway, tmp_path: Path
) -> None:
    source = tmp_path / "in.bin"
    digest = pattern(source, 10 * MIB, seed=10)
    submitted = cli(gw, "submit", QUEUE, "--request-file", str(source),
                    "--content-type", "application/x-pl", "-o", "json")  # fmt: skip
    assert submitted.returncode == 0, submitted.stderr
    name = json.loads(submitted.stdout)["name"]
    waited = cli(gw, "wait", name, "--timeout", str(TASK_SECONDS - 10))
    assert waited.returncode == 0, waited.stderr
    # The result, to a file and to standard output: the same bytes, checked on the way.
    out = tmp_path / "out.bin"
    assert cli(gw, "result", name, "-o", str(out)).returncode == 0
    assert file_sha256(out) == digest
    streamed = cli(gw, "result", name)
    assert streamed.returncode == 0 and hashlib.sha256(streamed.stdout).hexdigest() == digest
    # The object holds refs only: far under etcd's limits.
    raw = control_plane.kubectl("get", "asynctask", name, "-n", gw.namespace, "-o", "json").stdout
    obj = json.loads(raw)
    assert len(raw.encode()) < 4096, len(raw.encode())
    assert obj["spec"]["requestRef"]["size"] == 10 * MIB and "request" not in obj["spec"]
    result_ref = obj["status"]["resultRef"]
    assert (result_ref["sha256"], result_ref["contentType"]) == (digest, "application/x-pl")
    assert "result" not in obj["status"]
    # The URL route: a presigned GET of the store's public endpoint, for 5 minutes.
    path = f"{gw.tasks()}/{name}/result"
    answer = gw.call("GET", f"{path}/url")
    assert answer.status == 200 and answer.json()["ref"] == result_ref
    with urllib.request.urlopen(answer.json()["url"], timeout=60) as stored:
        assert hashlib.sha256(stored.read()).hexdigest() == digest
    # A caller with every right in another namespace gets neither bytes nor a URL here,
    # and cannot upload here.
    for refused in (gw.call("GET", path, token="stranger"),
                    gw.call("GET", f"{path}/url", token="stranger"),
                    gw.call("POST", f"/v1/namespaces/{gw.namespace}/payloads", raw=b"x",
                            token="stranger", headers={"Content-Type": "text/plain"})):  # fmt: skip
        assert refused.status == 403, refused.problem
    # A JSON request over the threshold, offloaded by the gateway and given back parsed.
    rows = [{"row": i, "text": "x" * 100} for i in range(1000)]  # about 120 KiB
    with client(gw) as c:
        task = finished(c.submit(QUEUE, {"rows": rows}), TASK_SECONDS)
        assert task.view.request_ref is not None and task.view.request_ref.is_json
        assert task.view.result_ref is not None and task.result() == {"rows": rows}
        task.delete()
    control_plane.kubectl("delete", "asynctask", name, "-n", gw.namespace, "--wait=false")


def test_1_gib_through_the_python_client(gw: Gateway, tmp_path: Path) -> None:
    source, out = tmp_path / "big.bin", tmp_path / "big.out"
    digest = pattern(source, 1024 * MIB, seed=1024)
    started = time.monotonic()
    with client(gw) as c:
        task = finished(c.submit(QUEUE, source), BIG_SECONDS)
        source.unlink()  # disk: the store, the worker and the download hold a copy each
        ref = task.download(out)
        print(f"1 GiB request and result end to end: {time.monotonic() - started:.1f}s")
        assert ref is not None and ref.size == 1024 * MIB and ref.sha256 == digest
        assert file_sha256(out) == digest
        task.delete()
    out.unlink()


def test_10_mib_through_the_python_client_as_bytes(gw: Gateway, tmp_path: Path) -> None:
    source = tmp_path / "in.bin"
    digest = pattern(source, 10 * MIB, seed=11)
    with client(gw) as c:
        task = finished(
            c.submit(QUEUE, source.read_bytes(), content_type="application/x-pl"), TASK_SECONDS
        )
        assert task.view.result_ref is not None and task.view.result_ref.sha256 == digest
        result = task.result()
        assert isinstance(result, bytes) and hashlib.sha256(result).hexdigest() == digest
        task.delete()


def test_1_gib_through_the_cli(gw: Gateway, tmp_path: Path) -> None:
    source, out = tmp_path / "big.bin", tmp_path / "big.out"
    digest = pattern(source, 1024 * MIB, seed=1025)
    started = time.monotonic()
    submitted = cli(gw, "submit", QUEUE, "--request-file", str(source), "-o", "json",
                    seconds=BIG_SECONDS)  # fmt: skip
    assert submitted.returncode == 0, submitted.stderr
    source.unlink()  # disk: the store, the worker and the download hold a copy each
    name = json.loads(submitted.stdout)["name"]
    waited = cli(gw, "wait", name, "--timeout", str(BIG_SECONDS - 10), seconds=BIG_SECONDS)
    assert waited.returncode == 0, waited.stderr
    fetched = cli(gw, "result", name, "-o", str(out), seconds=BIG_SECONDS)
    assert fetched.returncode == 0, fetched.stderr
    print(f"1 GiB request and result through the CLI: {time.monotonic() - started:.1f}s")
    assert file_sha256(out) == digest
    out.unlink()
    assert cli(gw, "delete", name).returncode == 0


def test_the_store_down_at_submit_is_a_clear_error_and_no_task(
    control_plane: ControlPlane, gw: Gateway, s3: S3Server, tmp_path: Path
) -> None:
    def tasks() -> list[str]:
        out = control_plane.kubectl("get", "asynctasks", "-n", gw.namespace, "-o", "name")
        return sorted(out.stdout.split())

    source = tmp_path / "in.bin"
    pattern(source, MIB, seed=1)
    before = tasks()
    s3.stop_server()
    try:
        submitted = cli(gw, "submit", QUEUE, "--request-file", str(source))
        assert submitted.returncode == 3, submitted.stderr
        assert b"PayloadStoreUnavailable" in submitted.stderr, submitted.stderr
        with client(gw) as c, pytest.raises(ApiError) as refused:
            c.submit(QUEUE, {"blob": "y" * 100_000})  # over the threshold: offloaded
        assert (refused.value.status, refused.value.reason) == (503, "PayloadStoreUnavailable")
    finally:
        s3.start_server()
    assert tasks() == before


def test_the_dashboard_shows_a_stored_results_size_type_and_links(
    control_plane: ControlPlane, gw: Gateway, tmp_path: Path
) -> None:
    data = random.Random(7).randbytes(3 * MIB + 5)
    with client(gw) as c:
        task = finished(c.submit(QUEUE, data, content_type="image/png"), TASK_SECONDS)
    page: Any
    with chromium(tmp_path / "profile") as page:
        page.get(f"{gw.url}/ui/")
        page.execute_script(
            "sessionStorage.setItem('asynctask.token', arguments[0])", gw.tokens["writer"]
        )
        page.get(f"{gw.url}/ui/#/ns/{gw.namespace}/tasks/{task.name}")
        until(page, "the stored result", lambda d: d.find_elements("css selector", "#result-ref"))
        assert one(page, "#result-size").text == f"3.0 MiB ({len(data)} bytes)"
        assert one(page, "#result-type").text == "image/png"
        assert one(page, "#request-size").text == f"3.0 MiB ({len(data)} bytes)"
        one(page, "#result-download").click()  # through the gateway, with the token
        one(page, "#result-link").click()
        until(page, "the direct link", lambda d: one(d, "#result-url").is_displayed())
        shot(page, "task-stored-result")
        href = one(page, "#result-url").get_attribute("href") or ""
        with urllib.request.urlopen(href, timeout=60) as stored:
            assert stored.read() == data
        assert severe_logs(page) == []
    control_plane.kubectl("delete", "asynctask", task.name, "-n", gw.namespace, "--wait=false")
