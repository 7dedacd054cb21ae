"""Large payloads, the operator's side, end to end: a private operator with object storage
on (the test bed's S3 server, a bucket of this module's own) and a worker without any
storage settings or credentials (it has only the presigned URLs of its task messages), in
a namespace of their own, on the real control plane and RabbitMQ. Deleting a task deletes
its objects; a requestRef into another namespace is refused and its object left alone; the
sweep removes orphans past the grace and keeps what is still owned; the operator's memory
does not move while a 1 GiB result is stored (the bytes never pass through it)."""

from __future__ import annotations

import hashlib
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from asynctask_worker.payloads import result_key, upload_key
from testbed import ControlPlane, RabbitMQ, S3Server, probes, wait_until
from testbed._proc import free_port
from tests.e2e.system import Process, operator_ready, running, system_env, worker_ready
from tests.e2e.tasks import Counted, create, wait_phase

pytestmark = pytest.mark.e2e

PREFIX = "asynctask/"
#: A queue no worker serves: a task there stays Pending, published with its grant.
IDLE = "idle"
#: The sweep runs every second and takes objects older than this; small, so a test sees
#: it work, yet longer than the gap between a test's upload and its task's creation.
GRACE_SECONDS = 8
DELETED = "asynctask_operator_payload_objects_deleted_total"
MIB = 1024 * 1024
#: What the operator's peak RSS may grow by while a 1 GiB result is stored: the bytes
#: passing through it would be 1024 MiB; this is room for ordinary work (status writes,
#: the watch, allocator noise).
RSS_GROWTH_LIMIT = 32 * MIB


@dataclass
class Stored:
    """The module's private operator, its namespace and the bucket it stores in."""

    operator: Process
    ns: str
    bucket: str
    s3: S3Server
    client: Any

    def put(self, key: str, body: bytes = b"payload", content_type: str = "text/plain") -> str:
        self.client.put_object(Bucket=self.bucket, Key=key, Body=body, ContentType=content_type)
        return key

    def exists(self, key: str) -> bool:
        listed = self.client.list_objects_v2(Bucket=self.bucket, Prefix=key)
        return any(item["Key"] == key for item in listed.get("Contents") or [])

    def ref(self, key: str, body: bytes = b"payload") -> dict[str, Any]:
        digest = hashlib.sha256(body).hexdigest()
        return {"bucket": self.bucket, "key": key, "size": len(body), "sha256": digest}


@pytest.fixture(scope="module")
def stored(
    control_plane: ControlPlane,
    rabbitmq: RabbitMQ,
    s3: S3Server,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Stored]:
    tmp_path = tmp_path_factory.mktemp("payloads-operator")
    suffix = uuid.uuid4().hex[:8]
    ns, vhost, bucket = f"pl-{suffix}", f"pl-{suffix}", s3.create_bucket(f"t-{suffix}")
    control_plane.kubectl("create", "namespace", ns)
    url = rabbitmq.add_vhost(vhost)
    env = dict(
        system_env(control_plane, rabbitmq),
        ASYNCTASK_AMQP_URL=url,
        ASYNCTASK_METRICS_PORT=str(free_port()),
        ASYNCTASK_METRICS_ADDRESS="127.0.0.1",
        ASYNCTASK_S3_SWEEP_SECONDS="1",
        ASYNCTASK_S3_GRACE_SECONDS=str(GRACE_SECONDS),
        **s3.env(bucket),
    )
    # the worker: no ASYNCTASK_S3_* and no AWS_* variables at all
    worker_env = {k: v for k, v in env.items() if not k.startswith(("ASYNCTASK_S3_", "AWS_"))}
    worker_env["ASYNCTASK_WORKER_AMQP_URL"] = url
    live, metrics = free_port(), free_port()
    args = [sys.executable, "-m", "asynctask_operator", "--standalone", "--namespace", ns]
    args += ["--liveness", probes.liveness_url(live)]
    worker = [sys.executable, "-m", "asynctask_worker", "tests.e2e.payload_operator_app:app"]
    worker += ["--queues", "generate", "--metrics-port", str(metrics)]
    try:
        with (
            running(
                "payloads-operator", args, env, tmp_path, ready=operator_ready(live)
            ) as operator,
            running("payloads-worker", worker, worker_env, tmp_path, ready=worker_ready(metrics)),
        ):
            yield Stored(operator, ns, bucket, s3, s3.client())
    finally:
        control_plane.kubectl("delete", "namespace", ns, "--wait=false")
        rabbitmq.delete_vhost(vhost)


def test_deleting_a_task_deletes_its_objects_and_never_a_foreign_one(
    control_plane: ControlPlane, stored: Stored
) -> None:
    ns, counted = stored.ns, Counted(stored.operator.env)
    own = stored.put(upload_key(PREFIX, ns))
    task = create(control_plane, ns, "own", queue=IDLE, requestRef=stored.ref(own))
    wait_phase(control_plane, ns, "own", "Pending")  # published, with its grant
    result = stored.put(result_key(PREFIX, ns, task["metadata"]["uid"]))  # as a worker would
    foreign = stored.put(upload_key(PREFIX, "another-namespace"))
    create(control_plane, ns, "foreign", queue=IDLE, requestRef=stored.ref(foreign))
    refused = wait_phase(control_plane, ns, "foreign", "Error")
    assert refused["error"]["reason"] == "RequestRefRefused"
    assert f"{PREFIX}{ns}/" in refused["error"]["message"]
    assert counted.delta("asynctask_operator_payload_grants_total") == 1  # "own" only

    control_plane.kubectl("delete", "asynctask", "own", "foreign", "-n", ns)
    # own: its upload and its result; foreign: its (absent) result key only
    counted.wait(1, DELETED, kind="request")
    counted.wait(2, DELETED, kind="result")
    assert not stored.exists(own) and not stored.exists(result)
    assert stored.exists(foreign)
    assert counted.delta(DELETED, kind="request") == 1


def test_the_sweep_removes_orphans_past_the_grace_and_keeps_what_is_owned(
    control_plane: ControlPlane, stored: Stored
) -> None:
    ns, counted = stored.ns, Counted(stored.operator.env)
    named = stored.put(upload_key(PREFIX, ns))
    create(control_plane, ns, "live", queue=IDLE, requestRef=stored.ref(named))
    kept = [
        named,  # a live task names it
        stored.put(f"{PREFIX}other-ns/{uuid.uuid4()}/result"),  # a namespace not served
        stored.put(f"{PREFIX}{ns}/not-a-layout"),  # not a key the project writes
        stored.put(f"elsewhere/{ns}/{uuid.uuid4()}/result"),  # outside the prefix
    ]
    orphans = [
        stored.put(upload_key(PREFIX, ns)),  # an upload whose task was never created
        stored.put(result_key(PREFIX, ns, str(uuid.uuid4()))),  # a result whose task is gone
    ]
    wait_until(
        "the sweep to delete the orphans",
        lambda: not any(stored.exists(key) for key in orphans),
        GRACE_SECONDS + 60,  # the grace, then a sweep each second on a loaded machine
    )
    assert all(stored.exists(key) for key in kept)
    assert counted.delta("asynctask_operator_payload_sweep_deletions_total", kind="request") == 1
    assert counted.delta("asynctask_operator_payload_sweep_deletions_total", kind="result") == 1
    control_plane.kubectl("delete", "asynctask", "live", "-n", ns)


def vm_kib(pid: int, field: str) -> int:
    """A ``/proc/<pid>/status`` figure (VmRSS, VmHWM), in KiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1])
    raise AssertionError(f"no {field} for process {pid}")


def test_the_operators_memory_does_not_move_while_a_1_gib_result_is_stored(
    control_plane: ControlPlane, stored: Stored
) -> None:
    ns = stored.ns
    # warm up: the first grant and status write of a stored result load what they need
    create(control_plane, ns, "warm", queue="generate", request={"size": MIB})
    assert wait_phase(control_plane, ns, "warm", "Succeeded", timeout=60)["resultRef"]
    pid = stored.operator.proc.pid
    Path(f"/proc/{pid}/clear_refs").write_text("5")  # VmHWM := VmRSS from here on
    before = vm_kib(pid, "VmRSS")
    size = 1024 * MIB
    task = create(control_plane, ns, "big", queue="generate", request={"size": size})
    key = result_key(PREFIX, ns, task["metadata"]["uid"])
    try:
        done = wait_phase(control_plane, ns, "big", "Succeeded", timeout=240)
        growth = (vm_kib(pid, "VmHWM") - before) * 1024
        print(f"\noperator RSS {before / 1024:.1f} MiB before, peak growth {growth / MIB:.1f} MiB")
        assert done["resultRef"]["key"] == key and done["resultRef"]["size"] == size
        assert (stored.s3.data_dir / stored.bucket / key).stat().st_size == size
        assert growth < RSS_GROWTH_LIMIT
    finally:  # the 1 GiB object goes with its task, at once (no sweep to wait for)
        control_plane.kubectl("delete", "asynctask", "big", "warm", "-n", ns)
    wait_until("the 1 GiB result to be deleted with its task", lambda: not stored.exists(key), 60)
