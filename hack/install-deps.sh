#!/usr/bin/env bash
# Installs everything the dev stack and the tests need, on a fresh machine or a used one:
#   - Debian packages: rabbitmq-server (the broker), postgresql-15 (the history archive's
#     server: the test bed runs private clusters of it; ~17 MB to download, about 13 s to
#     install), openssl (test-bed certificates), lua5.4, tmux (the CLI's terminal tests);
#     for the tests (not with --dev): chromium and chromium-driver, the real browser of the
#     dashboard's test (about 130 MB to download, 440 MB installed, ~25 s on a fresh machine)
#   - a Python virtualenv in .venv with the project (editable) and its dev tools
#   - the pinned control plane (etcd, kube-apiserver, kube-controller-manager, kubectl),
#     built from Go modules and cached in ~/.cache/asynctask
#   - for the TypeScript worker SDK's tests (not with --dev): worker-ts/node_modules, by
#     `npm ci` from its lockfile when the lockfile changed (hack/worker-ts/install.sh)
#   - for the chart's tests (not with --dev, which the dev stack passes): the pinned helm,
#     and the KEDA and ServiceMonitor CRDs, from their Go modules, cached the same way
# Each step says what it does; a step that has nothing to do says so and takes a second.
set -euo pipefail
cd "$(dirname "$0")/.."
say() { printf '\n==> %s\n' "$*" >&2; }

packages=(rabbitmq-server postgresql-15 openssl lua5.4 tmux)
if [ "${1:-}" != "--dev" ]; then
  packages+=(chromium chromium-driver)
fi
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  say "installing Debian packages: ${missing[*]}"
  sudo_=""; [ "$(id -u)" -eq 0 ] || sudo_="sudo"
  $sudo_ apt-get update -q
  # Do not start the distribution's own RabbitMQ or PostgreSQL service: the project runs
  # private nodes and clusters.
  DEBIAN_FRONTEND=noninteractive RUNLEVEL=1 $sudo_ apt-get install -y -q --no-install-recommends "${missing[@]}"
else
  say "Debian packages present: ${packages[*]}"
fi

python=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  say "creating the virtualenv .venv ($($python --version))"
  $python -m venv .venv
fi
stamp=.venv/.asynctask-deps
want=$(sha256sum pyproject.toml | cut -c1-16)
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  say "installing Python dependencies into .venv (pip)"
  .venv/bin/pip install -q --disable-pip-version-check --upgrade pip
  # The distribution was called asynctask before 0.1.0 (a name the package index gives to
  # another project): an editable install under that name would shadow the new one's.
  .venv/bin/pip uninstall -q -y asynctask 2>/dev/null || true
  # The SDK alone is the base distribution; the operator and the gateway are extras.
  .venv/bin/pip install -q --disable-pip-version-check -e '.[operator,gateway,dev]'
  echo "$want" > "$stamp"
else
  say "Python dependencies up to date in .venv"
fi

say "control plane binaries (built once from pinned Go modules, then cached)"
bash hack/controlplane/build.sh >/dev/null
say "the S3-compatible server for large payloads (versitygw; pinned Go module, cached)"
bash hack/s3/build.sh >/dev/null
if [ "${1:-}" = "--dev" ]; then
  exit 0  # the dev stack needs no helm; the tests do
fi
say "worker-ts: npm ci when its package-lock.json changed (npm's cache in ~/.cache/asynctask)"
bash hack/worker-ts/install.sh
say "helm (built once from its pinned Go module, then cached)"
bash hack/helm/build.sh >/dev/null
say "third-party CRDs for the chart's tests (KEDA, ServiceMonitor; pinned modules, cached)"
bash hack/helm/crds/fetch.sh >/dev/null
say "gitops-health: kstatus (Flux) and Argo CD's Lua, for the GitOps tests (pinned modules, cached)"
bash hack/gitops/build.sh >/dev/null
say "the test bed's node (kubelet, kube-scheduler, kube-proxy; pinned module, cached) and its Debian packages"
node_packages=(containerd runc containernetworking-plugins iptables conntrack iproute2 buildah mmdebstrap)
node_missing=()
for p in "${node_packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || node_missing+=("$p")
done
if [ ${#node_missing[@]} -gt 0 ]; then
  sudo_=""; [ "$(id -u)" -eq 0 ] || sudo_="sudo"
  $sudo_ apt-get update -q
  # containerd is started by the test bed on its own config; the distribution's service is not used.
  DEBIAN_FRONTEND=noninteractive RUNLEVEL=1 $sudo_ apt-get install -y -q --no-install-recommends "${node_missing[@]}"
fi
bash hack/node/build.sh >/dev/null
say "the test bed's images (pause, Debian base, the project's Dockerfile; cached by the hash of their inputs)"
PYTHONPATH=hack .venv/bin/python -m testbed.images >/dev/null
say "the TypeScript example worker's image (worker-ts/examples/Dockerfile FROM a Debian-made Node base)"
PYTHONPATH=hack .venv/bin/python -m testbed.ts_image >/dev/null
