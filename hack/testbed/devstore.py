"""The dev stack's object store (docs/payloads.md): a private S3 server (versitygw) with the
bucket the operator and the gateway are configured for, and the report example, whose
large result is stored there instead of in the task (examples/report.yaml).

The worker gets none of this: the operator hands it presigned URLs in its task messages.
"""

from __future__ import annotations

import json
from typing import Any

from testbed.controlplane import REPO, ControlPlane
from testbed.s3 import S3Server

#: The dev stack's one bucket.
BUCKET = "asynctask-dev"
REPORT = REPO / "examples" / "report.yaml"


def store_env(s3: S3Server, bucket: str = BUCKET) -> dict[str, str]:
    """Create the bucket; the settings (and keys) of the operator and the gateway."""
    s3.create_bucket(bucket)
    return s3.env(bucket)


def shell_lines(s3: S3Server) -> str:
    """What .devstack/env exports so that boto3 (or the aws CLI) in a shell reaches the
    store: the standard AWS variables, with the dev server's endpoint and keys."""
    return (
        f"export AWS_ENDPOINT_URL='{s3.endpoint}'\n"
        f"export AWS_ACCESS_KEY_ID='{s3.access_key}'\n"
        f"export AWS_SECRET_ACCESS_KEY='{s3.secret_key}'\n"
        f"export AWS_DEFAULT_REGION='{s3.region}'\n"
    )


def run_report(cp: ControlPlane) -> dict[str, Any]:
    """Submit examples/report.yaml and wait until it completed: its phase and resultRef
    (``{}`` when the result was not stored)."""
    print(cp.kubectl("apply", "-f", str(REPORT)).stdout, end="", flush=True)
    cp.kubectl(
        "wait", "--for=condition=Completed", "asynctask/report", "--timeout=120s", timeout=130
    )
    task = json.loads(cp.kubectl("get", "asynctask", "report", "-o", "json").stdout)
    status = task.get("status", {})
    return {
        "phase": status.get("phase", ""),
        "ref": status.get("resultRef") or {},
        "inline": "result" in status,
        "bytes": len(json.dumps(task, separators=(",", ":"))),
    }


def stored_size(s3: S3Server, ref: dict[str, Any]) -> int:
    """The size of the referenced object as the store reports it (HeadObject)."""
    head = s3.client().head_object(Bucket=ref["bucket"], Key=ref["key"])
    return int(head["ContentLength"])


def report_line(s3: S3Server, report: dict[str, Any]) -> tuple[bool, str]:
    """Whether the report's result is in the bucket (and not in the task), and a line
    that says where it is."""
    ref = report["ref"]
    if report["phase"] != "Succeeded" or not ref or report["inline"]:
        return False, f"report: {report['phase']}, result not stored: {report}"
    size = stored_size(s3, ref)
    ok = size == ref["size"]
    return ok, (
        f"report: {report['phase']}; its result is stored in the bucket, not in the task "
        f"(a {report['bytes']}-byte object): s3://{ref['bucket']}/{ref['key']} "
        f"{ref['size']} bytes {ref['contentType']} sha256 {ref['sha256'][:12]}... "
        f"(the store says {size} bytes)"
    )
