"""What the chart renders for the HTTP gateway (gateway.enabled): its Deployment and the
environment the contract with asynctask-gateway names, probes and pod security, the
Service, PodDisruptionBudget, optional Ingress and ServiceMonitor, RBAC exactly as the
gateway needs it (cluster-wide or per served namespace), and the values the schema refuses.

No cluster: ``helm template`` only. tests/e2e/test_helm.py installs the same objects on a
real apiserver and checks the rights of the gateway's ServiceAccount there.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.unit.chart.chart import (
    CHART,
    NAMESPACE,
    RELEASE,
    by_kind,
    env_of,
    render,
    rules_of,
    run_helm,
)

GW = f"{RELEASE}-asynctask-gateway"
ON = ("--set", "gateway.enabled=true")
GATEWAY_REVIEW_RULES = [
    {"apiGroups": ["authentication.k8s.io"], "resources": ["tokenreviews"], "verbs": ["create"]},
    {
        "apiGroups": ["authorization.k8s.io"],
        "resources": ["subjectaccessreviews"],
        "verbs": ["create"],
    },
]
GATEWAY_TASK_RULES = [
    {
        "apiGroups": ["asynctask.dev"],
        "resources": ["asynctasks"],
        "verbs": ["get", "list", "watch", "create", "patch", "delete"],
    },
    {
        "apiGroups": ["asynctask.dev"],
        "resources": ["asynctaskschedules"],
        "verbs": ["get", "list", "create", "patch", "delete"],
    },
]
#: AsyncQueues are cluster-scoped: read and pause/resume them, bound cluster-wide always.
GATEWAY_QUEUE_RULES = [
    {
        "apiGroups": ["asynctask.dev"],
        "resources": ["asyncqueues"],
        "verbs": ["get", "list", "patch"],
    }
]


def gateway_objects(objects: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [
        o
        for o in objects
        if o["metadata"]["labels"].get("app.kubernetes.io/component") == "gateway"
    ]


def test_gateway_rbac_is_exactly_the_contract_cluster_wide() -> None:
    gw = GW
    objects = render(*ON)
    assert rules_of(objects, "ClusterRole", f"{gw}-review") == GATEWAY_REVIEW_RULES
    assert rules_of(objects, "ClusterRole", gw) == GATEWAY_TASK_RULES
    assert rules_of(objects, "ClusterRole", f"{gw}-queues") == GATEWAY_QUEUE_RULES
    mine = gateway_objects(objects)
    roles = {(o["kind"], o["metadata"]["name"]) for o in mine if "rules" in o}
    assert roles == {
        ("ClusterRole", f"{gw}-review"),
        ("ClusterRole", gw),
        ("ClusterRole", f"{gw}-queues"),
    }
    bindings = {
        (o["kind"], o["metadata"]["name"], o["roleRef"]["name"]) for o in mine if "roleRef" in o
    }
    assert bindings == {
        ("ClusterRoleBinding", f"{gw}-review", f"{gw}-review"),
        ("ClusterRoleBinding", gw, gw),
        ("ClusterRoleBinding", f"{gw}-queues", f"{gw}-queues"),
    }
    for o in mine:
        if "roleRef" in o:
            assert o["subjects"] == [{"kind": "ServiceAccount", "name": gw, "namespace": NAMESPACE}]
    # No other role names the gateway.
    for kind in ("RoleBinding", "ClusterRoleBinding"):
        for binding in by_kind(objects, kind).values():
            if binding not in mine:
                assert all(s["name"] != gw for s in binding["subjects"]), binding


def test_gateway_rbac_follows_the_operator_namespaces() -> None:
    gw = GW
    objects = render(
        "--set", "gateway.enabled=true", "-f", str(CHART / "ci" / "namespaced-values.yaml")
    )
    mine = gateway_objects(objects)
    assert rules_of(objects, "ClusterRole", gw) == GATEWAY_TASK_RULES  # no Secret names
    assert rules_of(objects, "ClusterRole", f"{gw}-queues") == GATEWAY_QUEUE_RULES
    assert {o["metadata"]["name"] for o in mine if o["kind"] == "ClusterRoleBinding"} == {
        f"{gw}-review",
        f"{gw}-queues",  # cluster-scoped AsyncQueues: bound cluster-wide in any case
    }
    task_bindings = [o for o in mine if o["kind"] == "RoleBinding"]
    assert sorted(b["metadata"]["namespace"] for b in task_bindings) == ["team-a", "team-b"]
    for binding in task_bindings:
        assert binding["metadata"]["name"] == gw
        assert binding["roleRef"] == {
            "apiGroup": "rbac.authorization.k8s.io",
            "kind": "ClusterRole",
            "name": gw,
        }


def test_gateway_is_off_by_default() -> None:
    assert not gateway_objects(render())
    no_rbac = gateway_objects(render("--set", "gateway.enabled=true", "--set", "rbac.create=false"))
    assert not [o for o in no_rbac if o["kind"].endswith(("Role", "RoleBinding"))]
    assert no_rbac and {o["kind"] for o in no_rbac} >= {"Deployment", "ServiceAccount"}


def gateway_deployment(objects: list[dict[str, Any]]) -> tuple[dict[str, Any], dict[str, Any]]:
    """The gateway's Deployment and its one container."""
    deployment = by_kind(objects, "Deployment")[GW]
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    return deployment, container


DEFAULT_ENV = {
    "ASYNCTASK_GATEWAY_PORT": "8080",
    "ASYNCTASK_GATEWAY_NAMESPACES": "",
    "ASYNCTASK_GATEWAY_AUDIENCES": "",
    "ASYNCTASK_GATEWAY_ALLOW_ANONYMOUS": "false",
    "ASYNCTASK_GATEWAY_AUTH_CACHE_SECONDS": "10",
    "ASYNCTASK_GATEWAY_MAX_STREAMS_PER_USER": "100",
    "ASYNCTASK_GATEWAY_MAX_WAITS_PER_USER": "100",
    "ASYNCTASK_GATEWAY_LOG_FORMAT": "json",
}


def test_gateway_deployment_defaults() -> None:
    objects = render(*ON)
    deployment, container = gateway_deployment(objects)
    spec = deployment["spec"]
    assert spec["replicas"] == 2
    assert spec["strategy"] == {
        "type": "RollingUpdate",
        "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0},
    }
    pod = spec["template"]["spec"]
    assert pod["serviceAccountName"] == GW
    assert pod["automountServiceAccountToken"] is True  # its token reviews callers
    labels = spec["template"]["metadata"]["labels"]
    assert spec["selector"]["matchLabels"].items() <= labels.items()
    assert labels["app.kubernetes.io/component"] == "gateway"
    # The operator's image and a command of the same image.
    op_image = by_kind(objects, "Deployment")[f"{RELEASE}-asynctask-operator"]["spec"]["template"][
        "spec"
    ]["containers"][0]["image"]
    assert container["image"] == op_image == "asynctask:0.1.0"
    assert container["command"] == ["asynctask-gateway"] and "args" not in container
    assert env_of(container) == DEFAULT_ENV
    assert container["ports"] == [{"name": "http", "containerPort": 8080, "protocol": "TCP"}]
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    assert container["resources"]["requests"] == {"cpu": "50m", "memory": "128Mi"}
    assert container["resources"]["limits"] == {"memory": "512Mi"}


def test_gateway_pod_security_is_restricted() -> None:
    deployment, container = gateway_deployment(render(*ON))
    pod = deployment["spec"]["template"]["spec"]
    assert pod["securityContext"] == {
        "runAsNonRoot": True,
        "runAsUser": 10001,
        "runAsGroup": 10001,
        "seccompProfile": {"type": "RuntimeDefault"},
    }
    assert container["securityContext"] == {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "runAsNonRoot": True,
        "capabilities": {"drop": ["ALL"]},
    }
    assert container["volumeMounts"] == [{"name": "tmp", "mountPath": "/tmp"}]
    assert pod["volumes"] == [{"name": "tmp", "emptyDir": {"sizeLimit": "64Mi"}}]
    assert not pod.get("hostNetwork") and not pod.get("hostPID")


def test_gateway_environment_follows_the_values() -> None:
    objects = render(
        *ON,
        "--set",
        "operator.watchNamespaces={team-a,team-b}",
        "--set",
        "gateway.audiences={asynctask-gateway,other}",
        "--set",
        "gateway.allowAnonymous=true",
        "--set",
        "gateway.authCacheSeconds=3",
        "--set",
        "gateway.maxStreamsPerUser=7",
        "--set",
        "gateway.maxWaitsPerUser=9",
        "--set",
        "gateway.logFormat=text",
        "--set",
        "gateway.port=9000",
        "--set",
        "gateway.replicas=4",
        "--set",
        "gateway.env[0].name=EXTRA",
        "--set-string",
        "gateway.env[0].value=1",
    )
    deployment, container = gateway_deployment(objects)
    assert deployment["spec"]["replicas"] == 4
    assert env_of(container) == {
        "ASYNCTASK_GATEWAY_PORT": "9000",
        "ASYNCTASK_GATEWAY_NAMESPACES": "team-a,team-b",
        "ASYNCTASK_GATEWAY_AUDIENCES": "asynctask-gateway,other",
        "ASYNCTASK_GATEWAY_ALLOW_ANONYMOUS": "true",
        "ASYNCTASK_GATEWAY_AUTH_CACHE_SECONDS": "3",
        "ASYNCTASK_GATEWAY_MAX_STREAMS_PER_USER": "7",
        "ASYNCTASK_GATEWAY_MAX_WAITS_PER_USER": "9",
        "ASYNCTASK_GATEWAY_LOG_FORMAT": "text",
        "EXTRA": "1",
    }
    assert container["ports"] == [{"name": "http", "containerPort": 9000, "protocol": "TCP"}]
    # The probes and the Service follow the port by its name.
    assert container["readinessProbe"]["httpGet"]["port"] == "http"
    assert by_kind(objects, "Service")[GW]["spec"]["ports"][0]["targetPort"] == "http"


def test_gateway_service_and_disruption_budget() -> None:
    objects = render(*ON)
    service = by_kind(objects, "Service")[GW]
    assert service["spec"]["type"] == "ClusterIP"
    assert service["spec"]["ports"] == [
        {"name": "http", "port": 80, "targetPort": "http", "protocol": "TCP"}
    ]
    pod_labels = gateway_deployment(objects)[0]["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= pod_labels.items()
    assert service["spec"]["selector"]["app.kubernetes.io/component"] == "gateway"
    pdb = by_kind(objects, "PodDisruptionBudget")[GW]
    assert pdb["spec"]["maxUnavailable"] == 1
    assert pdb["spec"]["selector"]["matchLabels"] == service["spec"]["selector"]
    # One pod: a budget would block every drain; disabled: none.
    assert not by_kind(render(*ON, "--set", "gateway.replicas=1"), "PodDisruptionBudget")
    assert not by_kind(
        render(*ON, "--set", "gateway.podDisruptionBudget.enabled=false"), "PodDisruptionBudget"
    )
    lb = by_kind(
        render(
            *ON, "--set", "gateway.service.type=LoadBalancer", "--set", "gateway.service.port=8443"
        ),
        "Service",
    )[GW]
    assert lb["spec"]["type"] == "LoadBalancer" and lb["spec"]["ports"][0]["port"] == 8443


def ingress_paths(rule: dict[str, Any]) -> list[str]:
    for path in rule["http"]["paths"]:
        assert path["pathType"] == "Prefix"
        assert path["backend"] == {"service": {"name": GW, "port": {"name": "http"}}}
    return [p["path"] for p in rule["http"]["paths"]]


def test_gateway_ingress_off_by_default_and_on_request() -> None:
    assert not by_kind(render(*ON), "Ingress")
    (ingress,) = by_kind(render(*ON, "--set", "gateway.ingress.enabled=true"), "Ingress").values()
    assert "ingressClassName" not in ingress["spec"] and "tls" not in ingress["spec"]
    (rule,) = ingress["spec"]["rules"]
    assert "host" not in rule  # any host
    assert ingress_paths(rule) == ["/v1", "/openapi.json", "/ui"]  # not /metrics


def test_gateway_ingress_of_the_ci_scenario() -> None:
    objects = render("-f", str(CHART / "ci" / "gateway-values.yaml"))
    ingress = by_kind(objects, "Ingress")[GW]
    assert ingress["spec"]["ingressClassName"] == "nginx"
    assert ingress["spec"]["tls"] == [
        {"secretName": "tasks-example-com-tls", "hosts": ["tasks.example.com"]}
    ]
    assert (
        ingress["metadata"]["annotations"]["nginx.ingress.kubernetes.io/proxy-buffering"] == "off"
    )
    (rule,) = ingress["spec"]["rules"]
    assert rule["host"] == "tasks.example.com"
    assert ingress_paths(rule) == ["/v1", "/openapi.json", "/ui"]
    two = by_kind(
        render(
            *ON,
            "--set",
            "gateway.ingress.enabled=true",
            "--set",
            "gateway.ingress.hosts={a.example.com,b.example.com}",
            "--set",
            "gateway.ingress.paths={/}",
        ),
        "Ingress",
    )[GW]
    assert [r["host"] for r in two["spec"]["rules"]] == ["a.example.com", "b.example.com"]
    assert all(ingress_paths(r) == ["/"] for r in two["spec"]["rules"])


def test_gateway_service_monitor_follows_the_operators() -> None:
    objects = render("-f", str(CHART / "ci" / "gateway-values.yaml"))
    monitors = by_kind(objects, "ServiceMonitor")
    assert set(monitors) == {f"{RELEASE}-asynctask-worker", GW}
    monitor = monitors[GW]
    assert monitor["spec"]["endpoints"] == [{"port": "http", "path": "/metrics", "interval": "30s"}]
    service = by_kind(objects, "Service")[GW]
    assert (
        monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    )
    assert monitor["spec"]["namespaceSelector"] == {"matchNames": [NAMESPACE]}
    assert not by_kind(render(*ON), "ServiceMonitor")


def test_gateway_with_an_existing_service_account() -> None:
    objects = render(
        *ON,
        "--set",
        "gateway.serviceAccount.create=false",
        "--set",
        "gateway.serviceAccount.name=my-gateway",
    )
    assert "my-gateway" not in by_kind(objects, "ServiceAccount")
    assert GW not in by_kind(objects, "ServiceAccount")
    pod = gateway_deployment(objects)[0]["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == "my-gateway"
    for name in (GW, f"{GW}-review"):
        assert by_kind(objects, "ClusterRoleBinding")[name]["subjects"] == [
            {"kind": "ServiceAccount", "name": "my-gateway", "namespace": NAMESPACE}
        ]


def test_gateway_image_follows_the_top_level_image() -> None:
    digest = "sha256:" + "b" * 64
    objects = render(
        *ON,
        "--set",
        f"image.digest={digest}",
        "--set",
        "image.repository=r/at",
        "--set",
        "imagePullSecrets[0].name=pull",
    )
    deployment, container = gateway_deployment(objects)
    assert container["image"] == f"r/at@{digest}"
    assert deployment["spec"]["template"]["spec"]["imagePullSecrets"] == [{"name": "pull"}]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--set", "gateway.replicaz=2"], "at '/gateway': additional properties 'replicaz'"),
        (["--set", "gateway.replicas=-1"], "at '/gateway/replicas': minimum"),
        (["--set", "gateway.port=80"], "at '/gateway/port': minimum"),
        (["--set", "gateway.logFormat=xml"], "at '/gateway/logFormat'"),
        (["--set", "gateway.allowAnonymous=yes"], "at '/gateway/allowAnonymous': got string"),
        (["--set", "gateway.authCacheSeconds=3600"], "at '/gateway/authCacheSeconds': maximum"),
        (["--set", "gateway.maxStreamsPerUser=0"], "at '/gateway/maxStreamsPerUser'"),
        (["--set", "gateway.audiences[0]=a\\,b"], "at '/gateway/audiences/0'"),
        (["--set", "gateway.service.type=ExternalName"], "at '/gateway/service/type'"),
        (["--set", "gateway.ingress.hosts={Bad_Host}"], "at '/gateway/ingress/hosts/0'"),
        (["--set", "gateway.ingress.paths={v1}"], "at '/gateway/ingress/paths/0'"),
        (
            ["--set", "gateway.ingress.tls[0].hosts={a.example.com}"],
            "missing property 'secretName'",
        ),
        (["--set", "gateway.ingress.clasName=nginx"], "additional properties 'clasName'"),
        (
            ["--set", "gateway.enabled=true", "--set", "gateway.serviceAccount.create=false"],
            "gateway.serviceAccount.name is required",
        ),
    ],
    ids=[
        "unknown-key",
        "negative-replicas",
        "privileged-port",
        "log-format",
        "anonymous-string",
        "cache-too-long",
        "no-streams",
        "audience-with-comma",
        "service-type",
        "host",
        "relative-path",
        "tls-without-secret",
        "typo-in-ingress",
        "no-service-account",
    ],
)
def test_invalid_gateway_values_are_refused(args: list[str], message: str) -> None:
    proc = run_helm("template", RELEASE, str(CHART), *args, check=False)
    assert proc.returncode != 0, proc.stdout[:2000]
    assert message in proc.stderr, proc.stderr
