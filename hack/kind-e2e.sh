#!/usr/bin/env bash
# The e2e suite against a kind cluster, for machines with a Docker engine (`make kind-e2e`).
#
#   1. installs what is missing (hack/install-deps.sh: .venv, pinned kubectl and helm)
#   2. builds the pinned kind from its Go module and creates a one-node cluster from the
#      pinned node image (Kubernetes v1.35, the minor of the local control plane), with the
#      apiserver's audit log in a folder of this machine
#   3. builds the project's image from the Dockerfile and loads it into the cluster
#   4. runs RabbitMQ in the cluster (hack/kind/rabbitmq.yaml)
#   5. runs the same e2e and in-cluster suites as `make test` (pytest tests/e2e tests/incluster)
#      against that cluster: the fixtures use ASYNCTASK_E2E_* and ASYNCTASK_INCLUSTER_*
#      instead of starting local services; the in-cluster tests install the Helm chart with
#      that image into a namespace that enforces the "restricted" Pod Security Standard
#
# Arguments go to pytest (e.g. `make kind-e2e ARGS="-k helm -x"`). The cluster is deleted at
# the end; ASYNCTASK_KIND_KEEP=1 keeps it (its kubeconfig is printed). Machines without a
# Docker engine, such as the project's CI, cannot run this: `make test` runs the same suite
# against a local control plane built from source.
set -euo pipefail
cd "$(dirname "$0")/.."
say() { printf '\n==> %s\n' "$*" >&2; }
die() { printf '\nkind-e2e: %s\n' "$*" >&2; exit 1; }

# kind v0.31.0 and the Kubernetes v1.35 node image it was released with (pinned by digest).
KIND_VERSION=v0.31.0
NODE_IMAGE=kindest/node:v1.35.0@sha256:452d707d4862f52530247495d180205e029056831160e22870e37e3f6c1ac31f
CLUSTER=${ASYNCTASK_KIND_CLUSTER:-asynctask-e2e}
IMAGE_REPOSITORY=asynctask
IMAGE_TAG="kind-e2e"
BROKER_NAMESPACE=asynctask-e2e

# Fail early, before anything is installed or built, when there is no Docker engine.
command -v docker >/dev/null 2>&1 \
  || die "docker is not installed. The kind path needs a Docker engine; without one, run \`make test\` (the same e2e suite against a local control plane)."
if ! docker_error=$(docker info 2>&1 >/dev/null); then
  die "\`docker info\` failed, so there is no Docker engine to run kind on:
  $(printf '%s' "$docker_error" | tail -n 3)
Start Docker (or run this where it runs). Without Docker, \`make test\` runs the same e2e suite against a local control plane."
fi

say "installing what is missing (hack/install-deps.sh)"
bash hack/install-deps.sh
kubectl="$(bash hack/controlplane/build.sh 2>/dev/null | tail -n 1)/kubectl"
helm="$(bash hack/helm/build.sh 2>/dev/null | tail -n 1)/helm"

cache_root=${ASYNCTASK_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/asynctask}
kind_dir="$cache_root/kind/$KIND_VERSION"
kind="$kind_dir/bin/kind"
if [ ! -x "$kind" ]; then
  say "building kind $KIND_VERSION from its Go module (first run only)"
  mkdir -p "$kind_dir/bin"
  GOBIN="$kind_dir/bin" CGO_ENABLED=0 go install "sigs.k8s.io/kind@$KIND_VERSION"
fi
say "kind: $("$kind" version)"

work="$cache_root/kind-e2e/$CLUSTER"
audit="$work/audit"
kubeconfig="$work/kubeconfig"
mkdir -p "$audit"
# The same audit policy as the local control plane (writes only). The log file exists
# before the apiserver opens it, so it keeps this machine's owner and mode and the tests
# can read it.
PYTHONPATH=hack .venv/bin/python -c 'from testbed.controlplane import AUDIT_POLICY; print(AUDIT_POLICY, end="")' > "$audit/policy.yaml"
: > "$audit/audit.log"
chmod 0644 "$audit/policy.yaml" "$audit/audit.log"
sed "s|ASYNCTASK_KIND_AUDIT_DIR|$audit|" hack/kind/cluster.yaml > "$work/cluster.yaml"

if "$kind" get clusters 2>/dev/null | grep -qx "$CLUSTER"; then
  say "deleting the kind cluster $CLUSTER left by an earlier run"
  "$kind" delete cluster --name "$CLUSTER"
fi
port_forward=""
cleanup() {
  if [ -n "$port_forward" ]; then kill "$port_forward" 2>/dev/null || true; fi
  if [ "${ASYNCTASK_KIND_KEEP:-}" = 1 ]; then
    say "keeping the cluster $CLUSTER: KUBECONFIG=$kubeconfig ($kind delete cluster --name $CLUSTER removes it)"
  else
    say "deleting the kind cluster $CLUSTER"
    "$kind" delete cluster --name "$CLUSTER" || true
  fi
}
trap cleanup EXIT

say "creating the kind cluster $CLUSTER ($NODE_IMAGE)"
"$kind" create cluster --name "$CLUSTER" --image "$NODE_IMAGE" --config "$work/cluster.yaml" \
  --kubeconfig "$kubeconfig" --wait 180s
export KUBECONFIG="$kubeconfig"
"$kubectl" version

say "building the image $IMAGE_REPOSITORY:$IMAGE_TAG (Dockerfile) and loading it into the cluster"
docker build -t "$IMAGE_REPOSITORY:$IMAGE_TAG" .
"$kind" load docker-image "$IMAGE_REPOSITORY:$IMAGE_TAG" --name "$CLUSTER"
say "building the TypeScript example worker (worker-ts/examples/Dockerfile, its default base)"
docker build -f worker-ts/examples/Dockerfile -t "$IMAGE_REPOSITORY-ts-worker:$IMAGE_TAG" worker-ts
"$kind" load docker-image "$IMAGE_REPOSITORY-ts-worker:$IMAGE_TAG" --name "$CLUSTER"

say "RabbitMQ in the cluster (hack/kind/rabbitmq.yaml)"
"$kubectl" create namespace "$BROKER_NAMESPACE"
"$kubectl" apply -f hack/kind/rabbitmq.yaml
"$kubectl" -n "$BROKER_NAMESPACE" rollout status deployment/rabbitmq --timeout=300s
# The chart's release gets a virtual host of its own: its operator and workers never
# see the queues of the e2e suite's local operator and workers.
"$kubectl" -n "$BROKER_NAMESPACE" exec deploy/rabbitmq -- rabbitmqctl add_vhost kind-chart
"$kubectl" -n "$BROKER_NAMESPACE" exec deploy/rabbitmq -- \
  rabbitmqctl set_permissions -p kind-chart guest '.*' '.*' '.*'

# The in-cluster tests (tests/incluster) install the chart themselves, with this image and
# this broker as pods see it, exactly as on the test bed's own node.
broker="rabbitmq.$BROKER_NAMESPACE.svc"

say "forwarding RabbitMQ to this machine for the e2e suite"
read -r amqp_port management_port < <(.venv/bin/python - <<'PY'
import socket
socks = [socket.socket() for _ in range(2)]
for s in socks:
    s.bind(("127.0.0.1", 0))
print(*(s.getsockname()[1] for s in socks))
PY
)
"$kubectl" -n "$BROKER_NAMESPACE" port-forward svc/rabbitmq \
  "$amqp_port:5672" "$management_port:15672" > "$work/port-forward.log" 2>&1 &
port_forward=$!
for _ in $(seq 1 60); do
  if (exec 3<>"/dev/tcp/127.0.0.1/$amqp_port") 2>/dev/null; then break; fi
  kill -0 "$port_forward" 2>/dev/null || die "kubectl port-forward ended: $(cat "$work/port-forward.log")"
  sleep 0.5
done

say "pytest tests/e2e tests/incluster against the kind cluster"
ASYNCTASK_E2E_KUBECONFIG="$kubeconfig" \
ASYNCTASK_INCLUSTER_KUBECONFIG="$kubeconfig" \
ASYNCTASK_INCLUSTER_IMAGE="$IMAGE_REPOSITORY:$IMAGE_TAG" \
ASYNCTASK_INCLUSTER_TS_IMAGE="$IMAGE_REPOSITORY-ts-worker:$IMAGE_TAG" \
ASYNCTASK_INCLUSTER_AMQP_URL="amqp://guest:guest@$broker:5672/kind-chart" \
ASYNCTASK_INCLUSTER_MANAGEMENT_URL="http://guest:guest@$broker:15672" \
ASYNCTASK_E2E_AMQP_URL="amqp://guest:guest@127.0.0.1:$amqp_port/%2F" \
ASYNCTASK_E2E_MANAGEMENT_URL="http://guest:guest@127.0.0.1:$management_port" \
ASYNCTASK_E2E_AUDIT_LOG="$audit/audit.log" \
  .venv/bin/pytest tests/e2e tests/incluster "$@"
