"""Large payloads through the Python worker SDK, end to end: a private operator (object
storage on) and worker on the real control plane, RabbitMQ and S3 server (versitygw).

Requests are uploaded with boto3 and tasks created with ``spec.requestRef`` straight on
the apiserver, as the client and the gateway would. Proven here: 10 MiB and 1 GiB
request → result round trips (the worker's RSS growth while streaming 1 GiB, measured; the
task object's size), a JSON request and result stored whole, a wrong sha256 refused, the
store down when a result is due (retried, then a clear Error), and a worker SIGKILLed
mid-upload (the next attempt writes the one result object)."""

from __future__ import annotations

import hashlib
import json
import random
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from asynctask_worker.payloads import PayloadRef, result_key, upload_key
from testbed import ControlPlane, RabbitMQ, probes, wait_until
from testbed._proc import free_port
from testbed.s3 import S3Server
from tests.e2e import tasks
from tests.e2e.payload_app import SHIFT, generated_block
from tests.e2e.system import Process, operator_ready, running, system_env, worker_ready

pytestmark = pytest.mark.e2e

PREFIX = "asynctask/"
MIB = 1024 * 1024
#: How long the worker tries a transfer again while the store is down: short, so the
#: outage test sees the bound passed soon (the default is 60 s).
RETRY_SECONDS = 6
#: The issue's bound on the worker's memory growth while it streams 1 GiB.
RSS_GROWTH_LIMIT = 100 * MIB


@dataclass
class PayloadSystem:
    cp: ControlPlane
    s3: S3Server
    ns: str
    bucket: str
    worker: Process
    markers: Path

    def upload(self, path: Path, content_type: str) -> PayloadRef:
        """A request uploaded as a producer would (boto3), and the ref that names it."""
        digest = hashlib.sha256()
        with path.open("rb") as f:
            while chunk := f.read(8 * MIB):
                digest.update(chunk)
        key = upload_key(PREFIX, self.ns)
        self.s3.client().upload_file(
            str(path), self.bucket, key, ExtraArgs={"ContentType": content_type}
        )
        return PayloadRef(
            bucket=self.bucket,
            key=key,
            size=path.stat().st_size,
            content_type=content_type,
            sha256=digest.hexdigest(),
        )

    def submit(self, name: str, queue: str, ref: PayloadRef | None = None, **spec: Any) -> str:
        if ref is not None:
            spec["requestRef"] = ref.document()
        created = tasks.create(self.cp, self.ns, name, queue=queue, **spec)
        return str(created["metadata"]["uid"])

    def stored(self, key: str) -> Path:
        """The stored object's file (the posix backend: a folder per bucket)."""
        return self.s3.data_dir / self.bucket / key

    def forget(self, name: str, *keys: str) -> None:
        """Delete the task and its objects now: 1 GiB files need not wait for a sweep."""
        self.cp.kubectl("delete", "asynctask", name, "-n", self.ns, "--wait=false")
        client = self.s3.client()
        for key in keys:
            client.delete_object(Bucket=self.bucket, Key=key)


@pytest.fixture(scope="module")
def system(
    control_plane: ControlPlane,
    rabbitmq: RabbitMQ,
    s3: S3Server,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[PayloadSystem]:
    """A private operator and worker with object storage on, in a namespace, a virtual
    host and a bucket of the module's own."""
    suffix = uuid.uuid4().hex[:8]
    ns, vhost, bucket = f"pw-{suffix}", f"pw-{suffix}", s3.create_bucket(f"t-{suffix}")
    control_plane.kubectl("create", "namespace", ns)
    url = rabbitmq.add_vhost(vhost)
    folder = tmp_path_factory.mktemp("payloads-worker")
    markers = folder / "markers"
    markers.mkdir()
    env = dict(
        system_env(control_plane, rabbitmq),
        **s3.env(bucket),
        ASYNCTASK_AMQP_URL=url,
        ASYNCTASK_WORKER_AMQP_URL=url,
        ASYNCTASK_WORKER_PAYLOAD_RETRY_SECONDS=str(RETRY_SECONDS),
        PAYLOAD_MARKERS=str(markers),
    )
    live, metrics = free_port(), free_port()
    operator_args = [sys.executable, "-m", "asynctask_operator", "--standalone"]
    operator_args += ["--namespace", ns, "--liveness", probes.liveness_url(live)]
    worker_args = [sys.executable, "-m", "asynctask_worker", "tests.e2e.payload_app:app"]
    worker_args += ["--concurrency", "2", "--metrics-port", str(metrics)]
    try:
        with (
            running("payload-operator", operator_args, env, folder, ready=operator_ready(live)),
            running("payload-worker", worker_args, env, folder, ready=worker_ready(metrics)) as w,
        ):
            yield PayloadSystem(control_plane, s3, ns, bucket, w, markers)
    finally:
        control_plane.kubectl("delete", "namespace", ns, "--wait=false")
        rabbitmq.delete_vhost(vhost)


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(8 * MIB):
            digest.update(chunk)
    return digest.hexdigest()


def write_data(path: Path, size: int) -> Path:
    """``size`` deterministic bytes, fast: one seeded random MiB, numbered per MiB."""
    block = random.Random(24).randbytes(MIB)
    with path.open("wb") as f:
        for i in range(0, size, MIB):
            f.write((i.to_bytes(8, "big") + block[8:])[: min(MIB, size - i)])
    return path


def vm_kib(pid: int, field: str) -> int:
    """A ``/proc/<pid>/status`` figure (VmRSS, VmHWM), in KiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1])
    raise AssertionError(f"no {field} for process {pid}")


def object_bytes(system: PayloadSystem, name: str) -> int:
    """The AsyncTask object as the apiserver stores it (managed fields included)."""
    path = f"/apis/asynctask.dev/v1alpha1/namespaces/{system.ns}/asynctasks/{name}"
    return len(system.cp.kubectl("get", "--raw", path).stdout.encode())


def test_a_10_mib_request_and_its_result_round_trip_through_the_store(
    system: PayloadSystem, tmp_path: Path
) -> None:
    data = write_data(tmp_path / "request", 10 * MIB).read_bytes()
    ref = system.upload(tmp_path / "request", "application/x-raw")
    uid = system.submit("shift-10m", "shift", ref)
    st = tasks.wait_phase(system.cp, system.ns, "shift-10m", "Succeeded", timeout=120)
    expected = hashlib.sha256(data.translate(SHIFT)).hexdigest()
    assert "result" not in st, st
    assert st["resultRef"] == {
        "bucket": system.bucket,
        "key": result_key(PREFIX, system.ns, uid),
        "size": 10 * MIB,
        "contentType": "application/x-shifted",
        "sha256": expected,
    }
    assert sha256_of(system.stored(st["resultRef"]["key"])) == expected
    size = object_bytes(system, "shift-10m")
    print(f"\nthe 10 MiB task's object: {size} bytes")
    assert size < 4096


def test_a_large_json_request_arrives_parsed_and_its_large_result_is_stored_as_json(
    system: PayloadSystem, tmp_path: Path
) -> None:
    value = {"rows": [{"id": i, "text": "x" * 100} for i in range(2000)]}  # ~230 KB
    (tmp_path / "request.json").write_text(json.dumps(value))
    ref = system.upload(tmp_path / "request.json", "application/json")
    system.submit("json-big", "json-echo", ref)
    st = tasks.wait_phase(system.cp, system.ns, "json-big", "Succeeded", timeout=120)
    assert st["resultRef"]["contentType"] == "application/json"
    stored = system.stored(st["resultRef"]["key"])
    assert json.loads(stored.read_bytes()) == {"echo": value}
    assert sha256_of(stored) == st["resultRef"]["sha256"]


def test_a_1_gib_request_and_result_stream_through_a_worker_whose_memory_stays_flat(
    system: PayloadSystem, tmp_path: Path
) -> None:
    size = 1024 * MIB
    started = time.monotonic()
    ref = system.upload(write_data(tmp_path / "request", size), "application/x-big")
    (tmp_path / "request").unlink()  # the store has it: the disk is shared
    uploaded = time.monotonic()
    pid = system.worker.proc.pid
    Path(f"/proc/{pid}/clear_refs").write_text("5")  # VmHWM := VmRSS, from here on
    before = vm_kib(pid, "VmRSS")
    uid = system.submit("echo-1g", "echo", ref)
    try:
        st = tasks.wait_phase(system.cp, system.ns, "echo-1g", "Succeeded", timeout=240)
        ran = time.monotonic()
        growth = (vm_kib(pid, "VmHWM") - before) * 1024
        stored = system.stored(result_key(PREFIX, system.ns, uid))
        assert st["resultRef"]["size"] == size
        assert st["resultRef"]["sha256"] == ref.sha256 == sha256_of(stored)
        print(
            f"\n1 GiB: upload {uploaded - started:.1f}s, task {ran - uploaded:.1f}s; "
            f"worker RSS {before // 1024} MiB before, peak growth {growth / MIB:.1f} MiB; "
            f"task object {object_bytes(system, 'echo-1g')} bytes"
        )
        assert growth < RSS_GROWTH_LIMIT
        assert object_bytes(system, "echo-1g") < 4096
    finally:
        system.forget("echo-1g", ref.key, result_key(PREFIX, system.ns, uid))


def test_a_request_whose_sha256_is_wrong_ends_the_task_in_a_clear_error(
    system: PayloadSystem, tmp_path: Path
) -> None:
    (tmp_path / "request").write_bytes(b"the bytes that were stored")
    ref = system.upload(tmp_path / "request", "text/plain")
    wrong = ref.model_copy(update={"sha256": hashlib.sha256(b"other bytes").hexdigest()})
    system.submit("wrong-sha", "shift", wrong)
    st = tasks.wait_phase(system.cp, system.ns, "wrong-sha", "Error", timeout=120)
    assert st["error"]["reason"] == "RequestChecksumMismatch", st["error"]
    assert wrong.sha256 in st["error"]["message"] and ref.sha256 in st["error"]["message"]
    assert "resultRef" not in st


def test_the_store_down_when_a_result_is_due_is_retried_then_ends_in_a_clear_error(
    system: PayloadSystem,
) -> None:
    system.submit("held-down", "held", request={"size": 300_000})
    started = system.markers / f"{system.ns}.held-down.started"
    wait_until("the handler to start", started.exists, 60)
    system.s3.stop_server()
    try:
        (system.markers / f"{system.ns}.held-down.go").touch()
        # the bound (6 s) plus the last delay and the status write: well within 60 s
        st = tasks.wait_phase(system.cp, system.ns, "held-down", "Error", timeout=60)
    finally:
        system.s3.start_server()
    error = st["error"]
    assert error["reason"] == "ResultUploadFailed", error
    assert "ConnectionRefusedError" in error["message"], error
    tries = int(error["message"].split("failed ")[1].split(" tries")[0])
    assert tries >= 2, error  # retried before giving up
    assert f"over {RETRY_SECONDS}s" in error["message"], error


def test_a_worker_killed_mid_upload_leaves_one_result_object_written_by_the_next_attempt(
    system: PayloadSystem,
) -> None:
    size = 16 * MIB
    uid = system.submit("killed-upload", "generated", request={"size": size}, retries=0)
    half = system.markers / f"{system.ns}.killed-upload.half"
    wait_until("the first attempt's upload to pass half way", half.exists, 90)
    system.worker.proc.kill()
    system.worker.proc.wait(10)
    system.worker.restart()
    system.worker.wait_ready(60)
    st = tasks.wait_phase(system.cp, system.ns, "killed-upload", "Succeeded", timeout=120)
    expected = hashlib.sha256(generated_block(0, size)).hexdigest()
    assert st["resultRef"]["sha256"] == expected
    assert st["attempts"] >= 2, st  # the redelivery ran as a new attempt
    listed = system.s3.client().list_objects_v2(
        Bucket=system.bucket, Prefix=f"{PREFIX}{system.ns}/{uid}/"
    )
    assert [o["Key"] for o in listed.get("Contents", [])] == [result_key(PREFIX, system.ns, uid)]
    assert sha256_of(system.stored(result_key(PREFIX, system.ns, uid))) == expected
