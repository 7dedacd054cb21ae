"""The chart's history archive values (docs/history.md): off by default; on, the operator
and the gateway (only they) get their URLs from the Secret, the TLS mode and CA, the pool."""

from __future__ import annotations

import pytest

from tests.unit.chart.chart import CHART, RELEASE, by_kind, env_of, pod_specs, render, run_helm

ON = [
    "--set",
    "archive.enabled=true",
    "--set",
    "gateway.enabled=true",
    "--set",
    "archive.tls.caSecret=pg-ca",
    "--set",
    "archive.poolSize=7",
    "--set",
    "workers.pools[0].name=a",
    "--set",
    "workers.pools[0].queues={q}",
    "--set",
    "workers.pools[0].app=m:app",
]


def test_the_archive_is_off_by_default() -> None:
    for name, pod in pod_specs(render("--set", "gateway.enabled=true")).items():
        for container in pod["containers"]:
            env = env_of(container)
            assert not [k for k in env if "ARCHIVE" in k or k.startswith("PG")], name


def test_on_only_the_operator_and_the_gateway_get_the_database() -> None:
    objects = render(*ON)
    pods = pod_specs(objects)
    operator = pods[f"{RELEASE}-asynctask-operator"]
    gateway = pods[f"{RELEASE}-asynctask-gateway"]
    op_env, gw_env = env_of(operator["containers"][0]), env_of(gateway["containers"][0])
    secret = {"name": "asynctask-archive", "key": "operator-url"}
    assert op_env["ASYNCTASK_ARCHIVE_URL"] == {"secretKeyRef": secret}  # never in clear text
    assert gw_env["ASYNCTASK_GATEWAY_ARCHIVE_URL"] == {
        "secretKeyRef": {"name": "asynctask-archive", "key": "gateway-url"}
    }
    assert op_env["ASYNCTASK_ARCHIVE_POOL_SIZE"] == "7"
    assert op_env["ASYNCTASK_ARCHIVE_RETENTION_DAYS"] == "30"
    assert gw_env["ASYNCTASK_GATEWAY_ARCHIVE_POOL_SIZE"] == "2"
    for env, pod in ((op_env, operator), (gw_env, gateway)):
        assert env["PGSSLMODE"] == "verify-full"
        assert env["PGSSLROOTCERT"] == "/etc/asynctask/archive-ca/ca.crt"
        volumes = {v["name"]: v for v in pod["volumes"]}
        assert volumes["archive-ca"]["secret"]["secretName"] == "pg-ca"
        mounts = {m["name"]: m for m in pod["containers"][0]["volumeMounts"]}
        assert mounts["archive-ca"]["mountPath"] == "/etc/asynctask/archive-ca"
    workers = [
        d for d in by_kind(objects, "Deployment") if "operator" not in d and "gateway" not in d
    ]
    assert workers
    for name in workers:
        for container in pods[name]["containers"]:
            assert not [k for k in env_of(container) if "ARCHIVE" in k or k.startswith("PG")], name


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--set", "archive.tls.mode=sometimes"], "mode"),
        (["--set", "archive.poolSize=0"], "poolSize"),
        (["--set", "archive.url=postgresql://x"], "url"),
    ],
    ids=["tls-mode", "pool-size", "url-in-values"],
)
def test_invalid_archive_values_are_refused(args: list[str], message: str) -> None:
    proc = run_helm("template", RELEASE, str(CHART), *args, check=False)
    assert proc.returncode != 0, proc.stdout[:2000]
    assert message in proc.stderr, proc.stderr
