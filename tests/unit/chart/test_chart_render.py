"""What the Helm chart renders, for every ci/*-values.yaml scenario: labels, pod security,
the autoscaling contract with the operator, KEDA objects, least-privilege RBAC, no secrets.

Uses the pinned helm binary (hack/helm/build.sh builds it once and caches it); no cluster.
The e2e tests (tests/e2e/test_helm.py) apply the same renderings to a real apiserver.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.unit.chart.chart import (
    ADMISSION,
    AUTOSCALE_ANNOTATIONS,
    CHART,
    CI_VALUES,
    CLUSTER_SCOPED,
    NAMESPACE,
    RELEASE,
    STANDARD_LABELS,
    by_kind,
    env_of,
    pod_specs,
    render,
    rules_of,
    run_helm,
    values_of,
    worker_deployments,
)


@pytest.fixture(params=CI_VALUES, ids=lambda p: p.name.removesuffix("-values.yaml"))
def scenario(request: pytest.FixtureRequest) -> tuple[Path, list[dict[str, Any]]]:
    path: Path = request.param
    return path, render("-f", str(path))


def test_there_are_ci_scenarios() -> None:
    names = {p.name for p in CI_VALUES}
    assert {
        "default-values.yaml",
        "minimal-values.yaml",
        "keda-values.yaml",
        "multiple-pools-values.yaml",
        "gateway-values.yaml",
    } <= names


def test_every_object_has_the_standard_labels_and_namespace(
    scenario: tuple[Path, list[dict[str, Any]]],
) -> None:
    _, objects = scenario
    assert objects
    for obj in objects:
        meta = obj["metadata"]
        labels = meta.get("labels", {})
        assert all(k in labels for k in STANDARD_LABELS), (obj["kind"], meta["name"], labels)
        assert labels["app.kubernetes.io/instance"] == RELEASE
        assert labels["app.kubernetes.io/managed-by"] == "Helm"
        if obj["kind"] not in CLUSTER_SCOPED and obj["kind"] != "RoleBinding":
            assert meta.get("namespace") == NAMESPACE, (obj["kind"], meta["name"])


def test_pods_meet_the_restricted_pod_security_standard(
    scenario: tuple[Path, list[dict[str, Any]]],
) -> None:
    _, objects = scenario
    for name, spec in pod_specs(objects).items():
        pod_sc = spec["securityContext"]
        assert pod_sc["runAsNonRoot"] is True, name
        assert pod_sc["runAsUser"] != 0, name
        assert pod_sc["seccompProfile"] == {"type": "RuntimeDefault"}, name
        assert not spec.get("hostNetwork") and not spec.get("hostPID"), name
        for container in spec["containers"] + spec.get("initContainers", []):
            sc = container["securityContext"]
            assert sc["allowPrivilegeEscalation"] is False, name
            assert sc["readOnlyRootFilesystem"] is True, name
            assert sc["capabilities"] == {"drop": ["ALL"]}, name
            assert not sc.get("privileged"), name
            assert ":latest" not in container["image"] and ":" in container["image"], name
            assert container.get("resources", {}).get("requests"), name
        # A read-only root needs a writable scratch dir.
        assert any(v["name"] == "tmp" and "emptyDir" in v for v in spec["volumes"]), name


def test_operator_deployment(scenario: tuple[Path, list[dict[str, Any]]]) -> None:
    path, objects = scenario
    values = values_of(path)
    operator = by_kind(objects, "Deployment")[f"{RELEASE}-asynctask-operator"]
    spec = operator["spec"]
    assert spec["strategy"] == {"type": "Recreate"}  # never two operators at once
    pod = spec["template"]["spec"]
    assert pod["serviceAccountName"] == f"{RELEASE}-asynctask-operator"
    (container,) = pod["containers"]
    assert container["command"] == ["asynctask-operator"]
    args = container["args"]
    assert "--liveness=http://0.0.0.0:8080/healthz" in args
    peering = values.get("operator", {}).get("peering", {})
    assert ("--standalone" in args) is not peering.get("enabled", False)
    assert [a for a in args if a.startswith("--peering")] == (
        [f"--peering={peering.get('name', 'asynctask')}"] if peering.get("enabled") else []
    )
    assert spec["replicas"] == (values.get("operator", {}).get("replicas", 1))
    namespaces = values.get("operator", {}).get("watchNamespaces", [])
    assert [a for a in args if a.startswith("--namespace=")] == [
        f"--namespace={n}" for n in namespaces
    ]
    for probe in ("livenessProbe", "startupProbe"):
        assert container[probe]["httpGet"] == {"path": "/healthz", "port": "health"}
    assert {"name": "health", "containerPort": 8080, "protocol": "TCP"} in container["ports"]
    env = env_of(container)
    assert env["ASYNCTASK_AMQP_URL"] == {"secretKeyRef": {"name": "asynctask-amqp", "key": "url"}}
    assert env["ASYNCTASK_MANAGEMENT_URL"]["secretKeyRef"]["optional"] is True
    # The leader election's candidate (POD_NAME) and the Lease's namespace (POD_NAMESPACE).
    assert env["POD_NAME"] == {"fieldRef": {"fieldPath": "metadata.name"}}
    assert env["POD_NAMESPACE"] == {"fieldRef": {"fieldPath": "metadata.namespace"}}


def test_the_broker_url_is_never_in_clear_text(scenario: tuple[Path, list[dict[str, Any]]]) -> None:
    _, objects = scenario
    assert not by_kind(objects, "Secret")
    text = yaml.safe_dump_all(objects)
    assert "amqp://" not in text and "guest" not in text


def test_workers_have_no_api_access(scenario: tuple[Path, list[dict[str, Any]]]) -> None:
    _, objects = scenario
    worker_sa = f"{RELEASE}-asynctask-worker"
    assert by_kind(objects, "ServiceAccount")[worker_sa]["automountServiceAccountToken"] is False
    for name, deployment in worker_deployments(objects).items():
        pod = deployment["spec"]["template"]["spec"]
        assert pod["serviceAccountName"] == worker_sa, name
        assert pod["automountServiceAccountToken"] is False, name
        assert not any(
            c.get("volumeMounts", [])
            and any("serviceaccount" in m["mountPath"] for m in c["volumeMounts"])
            for c in pod["containers"]
        )
    for kind in ("RoleBinding", "ClusterRoleBinding"):
        for binding in by_kind(objects, kind).values():
            assert all(s["name"] != worker_sa for s in binding["subjects"]), binding


def check_pool_container(
    deployment: dict[str, Any], pool: dict[str, Any], merged_defaults: dict[str, Any]
) -> None:
    """A pool's container: its queues, broker Secret, concurrency, grace, command, args,
    extra environment and image, as the values say."""
    spec = deployment["spec"]
    (container,) = spec["template"]["spec"]["containers"]
    env = env_of(container)
    assert env["ASYNCTASK_WORKER_QUEUES"] == ",".join(pool["queues"])
    assert env["ASYNCTASK_WORKER_AMQP_URL"] == {
        "secretKeyRef": {"name": "asynctask-amqp", "key": "url"}
    }
    assert env["ASYNCTASK_WORKER_CONCURRENCY"] == str(
        pool.get("concurrency", merged_defaults["concurrency"])
    )
    grace = pool.get("gracePeriodSeconds", merged_defaults["gracePeriodSeconds"])
    assert spec["template"]["spec"]["terminationGracePeriodSeconds"] == grace + 15
    assert container["command"] == pool.get("command", ["asynctask-worker"])
    assert container["args"] == pool.get("args", [pool.get("app")])
    for extra in pool.get("env", []):
        assert env[extra["name"]] == extra["value"]
    if "image" in pool:
        assert container["image"] == f"{pool['image']['repository']}:{pool['image']['tag']}"
    else:
        assert container["image"] == "asynctask:0.1.0"


def check_builtin_autoscaling(
    meta: dict[str, Any], pool: dict[str, Any], autoscaling: dict[str, Any]
) -> None:
    """An autoscaled pool of the built-in autoscaler: its label and annotations."""
    assert meta["labels"]["asynctask.dev/autoscale"] == "true"
    assert meta.get("annotations", {}) == {
        "asynctask.dev/queues": ",".join(pool["queues"]),
        "asynctask.dev/min-replicas": str(autoscaling["minReplicas"]),
        "asynctask.dev/max-replicas": str(autoscaling["maxReplicas"]),
        "asynctask.dev/target-messages-per-replica": str(autoscaling["targetMessagesPerReplica"]),
    }


def check_keda_autoscaling(
    name: str, meta: dict[str, Any], pool: dict[str, Any], autoscaling: dict[str, Any], so: Any
) -> None:
    """An autoscaled pool under KEDA: no built-in label or annotation, and a ScaledObject
    ``so`` (its spec) with a RabbitMQ trigger per queue."""
    assert "asynctask.dev/autoscale" not in meta["labels"]
    assert not any(a in meta.get("annotations", {}) for a in AUTOSCALE_ANNOTATIONS)
    assert so["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": name}
    assert so["minReplicaCount"] == autoscaling["minReplicas"]
    assert so["maxReplicaCount"] == autoscaling["maxReplicas"]
    assert [t["metadata"]["queueName"] for t in so["triggers"]] == [
        f"asynctask.tasks.{q}" for q in pool["queues"]
    ]
    for trigger in so["triggers"]:
        assert trigger["type"] == "rabbitmq"
        assert trigger["metadata"]["mode"] == "QueueLength"
        assert trigger["metadata"]["value"] == str(autoscaling["targetMessagesPerReplica"])
        assert trigger["authenticationRef"] == {"name": f"{RELEASE}-asynctask-rabbitmq"}


def test_worker_pools_follow_the_values(scenario: tuple[Path, list[dict[str, Any]]]) -> None:
    path, objects = scenario
    values = values_of(path)
    defaults = yaml.safe_load((CHART / "values.yaml").read_text())
    pools = values.get("workers", {}).get("pools", defaults["workers"]["pools"])
    merged_defaults = {
        **defaults["workers"]["defaults"],
        **values.get("workers", {}).get("defaults", {}),
    }
    engine = values.get("autoscaling", {}).get("engine", "builtin")
    deployments = worker_deployments(objects)
    assert set(deployments) == {f"{RELEASE}-asynctask-worker-{p['name']}" for p in pools}
    scaled = by_kind(objects, "ScaledObject")
    for pool in pools:
        name = f"{RELEASE}-asynctask-worker-{pool['name']}"
        deployment = deployments[name]
        meta, spec = deployment["metadata"], deployment["spec"]
        autoscaling = {
            **defaults["workers"]["defaults"]["autoscaling"],
            **values.get("workers", {}).get("defaults", {}).get("autoscaling", {}),
            **pool.get("autoscaling", {}),
        }
        check_pool_container(deployment, pool, merged_defaults)
        assert meta["labels"]["asynctask.dev/pool"] == pool["name"]
        if not autoscaling["enabled"]:
            assert spec["replicas"] == pool.get("replicas", merged_defaults["replicas"])
            assert "asynctask.dev/autoscale" not in meta["labels"]
            assert name not in scaled
            continue
        # Autoscaled: the chart never sets replicas, so upgrades and syncs never reset it.
        assert "replicas" not in spec, name
        if engine == "builtin":
            check_builtin_autoscaling(meta, pool, autoscaling)
            assert name not in scaled
        else:
            check_keda_autoscaling(name, meta, pool, autoscaling, scaled[name]["spec"])
    if engine == "keda":
        (auth,) = by_kind(objects, "TriggerAuthentication").values()
        protocol = values["autoscaling"].get("keda", {}).get("protocol", "amqp")
        key = "management-url" if protocol == "http" else "url"
        assert auth["spec"]["secretTargetRef"] == [
            {"parameter": "host", "name": "asynctask-amqp", "key": key}
        ]
    else:
        assert not scaled and not by_kind(objects, "TriggerAuthentication")


OPERATOR_TASK_RULES = [
    {
        "apiGroups": ["asynctask.dev"],
        "resources": ["asynctasks"],
        "verbs": ["get", "list", "watch", "delete", "create", "patch"],
    },
    {
        "apiGroups": ["asynctask.dev"],
        "resources": ["asynctasks/status"],
        "verbs": ["get", "patch", "update"],
    },
    {
        "apiGroups": ["asynctask.dev"],
        "resources": ["asynctaskschedules"],
        "verbs": ["get", "list", "watch"],
    },
    {
        "apiGroups": ["asynctask.dev"],
        "resources": ["asynctaskschedules/status"],
        "verbs": ["get", "patch", "update"],
    },
    {"apiGroups": [""], "resources": ["events"], "verbs": ["create", "patch"]},
    {"apiGroups": ["events.k8s.io"], "resources": ["events"], "verbs": ["create", "patch"]},
]
QUEUE_RULES = [
    {
        "apiGroups": ["asynctask.dev"],
        "resources": ["asyncqueues"],
        "verbs": ["get", "list", "watch"],
    },
    {
        "apiGroups": ["asynctask.dev"],
        "resources": ["asyncqueues/status"],
        "verbs": ["get", "patch"],
    },
]
AUTOSCALER_RULES = [
    {"apiGroups": ["apps"], "resources": ["deployments"], "verbs": ["get", "list", "watch"]},
    {
        "apiGroups": ["apps"],
        "resources": ["deployments/scale"],
        "verbs": ["get", "patch", "update"],
    },
]


def test_default_rbac_is_exactly_least_privilege() -> None:
    objects = render()
    op = f"{RELEASE}-asynctask-operator"
    assert rules_of(objects, "ClusterRole", op) == OPERATOR_TASK_RULES
    assert rules_of(objects, "Role", f"{op}-autoscaler") == AUTOSCALER_RULES
    assert rules_of(objects, "ClusterRole", f"{op}-queues") == QUEUE_RULES
    # kopf watches nothing (the operator lists and watches AsyncTasks itself): no rights on
    # CustomResourceDefinitions or Namespaces.
    assert set(by_kind(objects, "ClusterRole")) == {op, f"{op}-queues"}
    assert set(by_kind(objects, "Role")) == {f"{op}-autoscaler"}
    assert set(by_kind(objects, "ClusterRoleBinding")) == {op, f"{op}-queues"}
    assert set(by_kind(objects, "RoleBinding")) == {f"{op}-autoscaler"}
    for kind in ("ClusterRoleBinding", "RoleBinding"):
        for binding in by_kind(objects, kind).values():
            assert binding["subjects"] == [
                {"kind": "ServiceAccount", "name": op, "namespace": NAMESPACE}
            ]
    rbac = [o for o in objects if o["kind"] in ("Role", "ClusterRole")]
    text = yaml.safe_dump_all(rbac)
    assert "secrets" not in text and "'*'" not in text and '"*"' not in text


def test_namespaced_rbac_binds_task_rights_per_namespace() -> None:
    objects = render("-f", str(CHART / "ci" / "namespaced-values.yaml"))
    op = f"{RELEASE}-asynctask-operator"
    # Nothing cluster-wide but the AsyncQueues (cluster-scoped: read, and their status).
    assert set(by_kind(objects, "ClusterRoleBinding")) == {f"{op}-queues"}
    bindings = [b for b in objects if b["kind"] == "RoleBinding" and b["metadata"]["name"] == op]
    assert sorted(b["metadata"]["namespace"] for b in bindings) == ["team-a", "team-b"]
    assert all(
        b["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": op}
        for b in bindings
    )
    # The task rights are bound in those namespaces only.
    assert set(by_kind(objects, "ClusterRole")) == {op, f"{op}-queues"}
    # Secrets (webhook signing keys live beside the tasks): get, by name, through the same
    # ClusterRole, so only in the namespaces bound above; no Role of its own.
    assert {
        "apiGroups": [""],
        "resources": ["secrets"],
        "resourceNames": ["asynctask-webhook-signing"],
        "verbs": ["get"],
    } in rules_of(objects, "ClusterRole", op)
    assert f"{op}-secrets" not in by_kind(objects, "Role")


def test_keda_engine_grants_no_deployment_rights() -> None:
    objects = render("-f", str(CHART / "ci" / "keda-values.yaml"))
    granted = [
        res
        for kind in ("Role", "ClusterRole")
        for role in by_kind(objects, kind).values()
        for r in role["rules"]
        for res in r["resources"]
    ]
    assert "asynctasks" in granted  # the operator's rules are there
    assert not [res for res in granted if res.split("/")[0] == "deployments"], granted


def test_cluster_autoscaler_scope_and_peering() -> None:
    objects = render("-f", str(CHART / "ci" / "multiple-pools-values.yaml"))
    op = f"{RELEASE}-asynctask-operator"
    assert rules_of(objects, "ClusterRole", f"{op}-autoscaler") == AUTOSCALER_RULES
    assert f"{op}-autoscaler" in by_kind(objects, "ClusterRoleBinding")
    assert f"{op}-secrets" not in by_kind(objects, "Role")
    assert f"{op}-leader" not in by_kind(objects, "Role")  # no peering, no Lease rights
    assert_lease_rbac(render("-f", str(CHART / "ci" / "metrics-values.yaml")))


LEASE_RULES = [
    {
        "apiGroups": ["coordination.k8s.io"],
        "resources": ["leases"],
        "verbs": ["get", "create", "update"],
    }
]


def assert_lease_rbac(objects: list[dict[str, Any]]) -> None:
    """Peering: a Role on Leases in the release's namespace, bound to the operator alone;
    nothing of kopf's peering (its KopfPeering CRDs are not used)."""
    op = f"{RELEASE}-asynctask-operator"
    role = by_kind(objects, "Role")[f"{op}-leader"]
    assert role["metadata"]["namespace"] == NAMESPACE
    assert role["rules"] == LEASE_RULES
    bindings = [
        b for b in objects if b["kind"] == "RoleBinding" and b["metadata"]["name"] == f"{op}-leader"
    ]
    assert [(b["metadata"]["namespace"], b["roleRef"], b["subjects"]) for b in bindings] == [
        (
            NAMESPACE,
            {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": f"{op}-leader"},
            [{"kind": "ServiceAccount", "name": op, "namespace": NAMESPACE}],
        )
    ]
    rbac = [o for o in objects if o["kind"] in ("Role", "ClusterRole")]
    granted = [res for o in rbac for r in o["rules"] for res in r["resources"]]
    assert granted.count("leases") == 1
    assert "kopf.dev" not in yaml.safe_dump_all(rbac) and "peering" not in str(granted)


def test_namespaced_peering_keeps_the_lease_in_the_release_namespace() -> None:
    objects = render(
        "-f",
        str(CHART / "ci" / "namespaced-values.yaml"),
        "--set",
        "operator.peering.enabled=true",
        "--set",
        "operator.replicas=2",
    )
    assert_lease_rbac(objects)
    op = f"{RELEASE}-asynctask-operator"
    (container,) = by_kind(objects, "Deployment")[op]["spec"]["template"]["spec"]["containers"]
    assert "--peering=asynctask" in container["args"] and "--standalone" not in container["args"]


def test_metrics_service_and_service_monitor() -> None:
    objects = render("-f", str(CHART / "ci" / "metrics-values.yaml"))
    services = by_kind(objects, "Service")
    assert {s["spec"]["selector"]["app.kubernetes.io/component"] for s in services.values()} == {
        "worker",
        "operator",
    }
    (monitor,) = by_kind(objects, "ServiceMonitor").values()
    assert monitor["spec"]["endpoints"][0]["port"] == "metrics"
    # One ServiceMonitor selects both Services by their component label.
    (expr,) = monitor["spec"]["selector"]["matchExpressions"]
    assert sorted(expr["values"]) == sorted(
        s["metadata"]["labels"]["app.kubernetes.io/component"] for s in services.values()
    )
    (operator,) = [
        d
        for d in by_kind(objects, "Deployment").values()
        if d["metadata"]["labels"]["app.kubernetes.io/component"] == "operator"
    ]
    (container,) = operator["spec"]["template"]["spec"]["containers"]
    assert env_of(container)["ASYNCTASK_METRICS_PORT"] == "9090"
    assert {"name": "metrics", "containerPort": 9090, "protocol": "TCP"} in container["ports"]
    assert monitor["metadata"]["labels"]["release"] == "prometheus"
    for deployment in worker_deployments(objects).values():
        (container,) = deployment["spec"]["template"]["spec"]["containers"]
        assert env_of(container)["ASYNCTASK_WORKER_METRICS_PORT"] == "9090"
        assert container["ports"] == [{"name": "metrics", "containerPort": 9090, "protocol": "TCP"}]
    assert not by_kind(render(), "Service") and not by_kind(render(), "ServiceMonitor")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--set", "unknownKey=1"], "additional properties 'unknownKey' not allowed"),
        (["--set", "workers.defaults.autoscalling.enabled=true"], "autoscalling"),
        (["--set", "autoscaling.engine=hpa"], "engine"),
        (["--set", "operator.replicas=2"], "peering"),
        (
            [
                "--set",
                "workers.pools[0].name=a",
                "--set",
                "workers.pools[0].queues={q}",
                "--set",
                "workers.pools[0].app=m:app",
                "--set",
                "workers.pools[1].name=a",
                "--set",
                "workers.pools[1].queues={q}",
                "--set",
                "workers.pools[1].app=m:app",
            ],
            "used twice",
        ),
        (
            [
                "--set",
                "workers.pools[0].name=a",
                "--set",
                "workers.pools[0].queues={q}",
                "--set",
                "workers.pools[0].app=m:app",
                "--set",
                "workers.pools[0].autoscaling.minReplicas=9",
            ],
            "greater than maxReplicas",
        ),
        (
            [
                "--set",
                "workers.pools[0].name=a",
                "--set",
                "workers.pools[0].queues={Bad_Queue}",
                "--set",
                "workers.pools[0].app=m:app",
            ],
            "queues",
        ),
        (["--set", "workers.pools[0].name=a", "--set", "workers.pools[0].queues={q}"], "set app"),
        (["--set", "metrics.serviceMonitor.enabled=true"], "needs metrics.enabled"),
    ],
    ids=[
        "unknown-key",
        "typo-in-defaults",
        "engine",
        "replicas-without-peering",
        "duplicate-pool",
        "min-over-max",
        "queue-name",
        "no-app",
        "servicemonitor-alone",
    ],
)
def test_invalid_values_are_refused(args: list[str], message: str) -> None:
    proc = run_helm("template", RELEASE, str(CHART), *args, check=False)
    assert proc.returncode != 0, proc.stdout[:2000]
    assert message in proc.stderr, proc.stderr


def test_pool_values_false_and_zero_override_defaults() -> None:
    """A pool's false/0 wins over a default's true/1 (sprig's merge would drop them)."""
    objects = render(
        "--set",
        "workers.pools[0].name=a",
        "--set",
        "workers.pools[0].queues={q}",
        "--set",
        "workers.pools[0].app=m:app",
        "--set",
        "workers.pools[0].autoscaling.minReplicas=0",
        "--set",
        "workers.pools[1].name=b",
        "--set",
        "workers.pools[1].queues={r}",
        "--set",
        "workers.pools[1].app=m:app",
        "--set",
        "workers.pools[1].autoscaling.enabled=false",
        "--set",
        "workers.pools[1].replicas=0",
    )
    deployments = worker_deployments(objects)
    a = deployments[f"{RELEASE}-asynctask-worker-a"]
    assert a["metadata"]["annotations"]["asynctask.dev/min-replicas"] == "0"
    b = deployments[f"{RELEASE}-asynctask-worker-b"]
    assert b["spec"]["replicas"] == 0 and "annotations" not in b["metadata"]


def test_image_digest_and_tag_overrides() -> None:
    digest = "sha256:" + "a" * 64
    objects = render("--set", f"image.digest={digest}", "--set", "image.repository=reg/at")
    for spec in pod_specs(objects).values():
        assert spec["containers"][0]["image"] == f"reg/at@{digest}"
    objects = render("--set", "image.tag=1.2.3")
    for spec in pod_specs(objects).values():
        assert spec["containers"][0]["image"] == "asynctask:1.2.3"


def test_the_admission_policy_is_the_one_of_deploy_admission() -> None:
    """The chart renders the policy of deploy/admission/ (named after the release), and
    leaves it out when disabled."""
    policy, binding = yaml.safe_load_all(ADMISSION.read_text())
    objects = render()
    [(name, rendered)] = by_kind(objects, "ValidatingAdmissionPolicy").items()
    assert name == "rel-asynctask-request-immutable"
    assert rendered["spec"] == policy["spec"]
    [rendered_binding] = by_kind(objects, "ValidatingAdmissionPolicyBinding").values()
    assert rendered_binding["spec"] == dict(binding["spec"], policyName=name)
    off = render("--set", "admissionPolicy.enabled=false")
    assert not by_kind(off, "ValidatingAdmissionPolicy")
    assert not by_kind(off, "ValidatingAdmissionPolicyBinding")
