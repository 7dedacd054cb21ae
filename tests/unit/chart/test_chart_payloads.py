"""The chart's large-payload values (docs/payloads.md): off while payloads.endpoint is empty;
on, the operator and the gateway (only they) get the store's settings and the credentials
from the Secret; workers never do (they get presigned URLs in their task messages)."""

from __future__ import annotations

from typing import Any

import pytest

from tests.unit.chart.chart import CHART, RELEASE, env_of, pod_specs, render, run_helm

OPERATOR, GATEWAY = f"{RELEASE}-asynctask-operator", f"{RELEASE}-asynctask-gateway"
ON = [
    "--set",
    "gateway.enabled=true",
    "--set",
    "payloads.endpoint=http://s3.storage.svc:7070",
    "--set",
    "payloads.bucket=asynctask-payloads",
]


def store_env(container: dict[str, Any]) -> list[str]:
    return sorted(
        k for k in env_of(container) if k.startswith(("ASYNCTASK_S3_", "AWS_")) or "UPLOAD" in k
    )


def containers(objects: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """The first container of every Deployment, by Deployment name."""
    return {name: pod["containers"][0] for name, pod in pod_specs(objects).items()}


def test_payloads_are_off_by_default() -> None:
    found = containers(render("--set", "gateway.enabled=true"))
    assert OPERATOR in found and GATEWAY in found
    for name, container in found.items():
        assert store_env(container) == [], name


def test_on_the_operator_and_the_gateway_get_the_store_and_the_secret() -> None:
    found = containers(render(*ON, "--set", "payloads.thresholdBytes=1024"))
    op, gw = env_of(found.pop(OPERATOR)), env_of(found.pop(GATEWAY))
    for env in (op, gw):
        assert env["ASYNCTASK_S3_ENDPOINT"] == "http://s3.storage.svc:7070"
        assert env["ASYNCTASK_S3_BUCKET"] == "asynctask-payloads"
        assert env["ASYNCTASK_S3_REGION"] == "us-east-1"
        assert env["ASYNCTASK_S3_PREFIX"] == "asynctask/"
        assert env["ASYNCTASK_S3_PATH_STYLE"] == "true"
        assert env["ASYNCTASK_S3_THRESHOLD_BYTES"] == "1024"
        # Never in clear text: both keys from the Secret.
        assert env["AWS_ACCESS_KEY_ID"] == {
            "secretKeyRef": {"name": "asynctask-s3", "key": "access-key-id"}
        }
        assert env["AWS_SECRET_ACCESS_KEY"] == {
            "secretKeyRef": {"name": "asynctask-s3", "key": "secret-access-key"}
        }
    # The operator presigns the workers' URLs and sweeps; the gateway takes uploads and
    # hands out URLs with the public endpoint (default: the endpoint).
    assert op["ASYNCTASK_S3_URL_SECONDS"] == "86400"
    assert op["ASYNCTASK_S3_SWEEP_SECONDS"] == "600"
    assert op["ASYNCTASK_S3_GRACE_SECONDS"] == "3600"
    assert "ASYNCTASK_S3_PUBLIC_ENDPOINT" not in op
    assert gw["ASYNCTASK_S3_PUBLIC_ENDPOINT"] == "http://s3.storage.svc:7070"
    assert gw["ASYNCTASK_GATEWAY_MAX_UPLOAD_BYTES"] == "5368709120"  # not 5.36870912e+09
    assert found, "the default values have a worker pool"
    for name, container in found.items():
        assert store_env(container) == [], f"worker {name} got storage settings"


def test_public_endpoint_and_credentials_from_the_pod_identity() -> None:
    """publicEndpoint reaches the gateway only; without a Secret, no AWS_* env at all, so
    boto3's default chain finds the pod's identity (e.g. IAM roles for service accounts)."""
    found = containers(
        render(
            *ON,
            "--set",
            "payloads.publicEndpoint=https://files.example.com",
            "--set",
            "payloads.existingSecret=",
            "--set",
            "payloads.sweepSeconds=30",
        )
    )
    op, gw = env_of(found[OPERATOR]), env_of(found[GATEWAY])
    assert gw["ASYNCTASK_S3_PUBLIC_ENDPOINT"] == "https://files.example.com"
    assert op["ASYNCTASK_S3_ENDPOINT"] == gw["ASYNCTASK_S3_ENDPOINT"] == ON[3].split("=", 1)[1]
    assert op["ASYNCTASK_S3_SWEEP_SECONDS"] == "30"
    assert not [k for k in (*op, *gw) if k.startswith("AWS_")]


def test_the_gateway_scenario_uses_aws_s3() -> None:
    found = containers(render("-f", str(CHART / "ci" / "gateway-values.yaml")))
    for name in (OPERATOR, GATEWAY):
        env = env_of(found[name])
        assert env["ASYNCTASK_S3_ENDPOINT"] == "https://s3.eu-west-1.amazonaws.com"
        assert env["ASYNCTASK_S3_REGION"] == "eu-west-1"
        assert env["ASYNCTASK_S3_PATH_STYLE"] == "false"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--set", "payloads.endpoint=http://s3:7070"], "payloads.bucket is required"),
        (["--set", "payloads.endpoint=s3.example.com"], "endpoint"),
        (["--set", "payloads.bucket=Payloads_1"], "bucket"),
        (["--set", "payloads.prefix=/asynctask/"], "prefix"),
        (["--set", "payloads.prefix=asynctask"], "prefix"),
        (["--set", "payloads.endpoint=https://s3.example.com/bucket"], "endpoint"),
        (["--set", "payloads.thresholdBytes=1048576"], "thresholdBytes"),
        (["--set", "payloads.urlSeconds=1209600"], "urlSeconds"),
        (["--set", "payloads.maxUploadBytes=0"], "maxUploadBytes"),
        (["--set", "payloads.secretKey=abc"], "secretKey"),
    ],
    ids=[
        "no-bucket",
        "no-scheme",
        "bucket-name",
        "leading-slash",
        "no-trailing-slash",
        "endpoint-with-path",
        "threshold-over-request-limit",
        "url-over-7-days",
        "upload-zero",
        "key-in-values",
    ],
)
def test_invalid_payload_values_are_refused(args: list[str], message: str) -> None:
    proc = run_helm("template", RELEASE, str(CHART), *args, check=False)
    assert proc.returncode != 0, proc.stdout[:2000]
    assert message in proc.stderr, proc.stderr
