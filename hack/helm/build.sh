#!/usr/bin/env bash
# Builds the pinned helm binary from its Go module (helm.sh/helm/v3, pinned in go.mod here)
# and caches it, keyed by the module pins, this script and the Go toolchain, so later runs
# reuse it in a second. Used by the chart's tests (helm lint, template, install).
#
# Prints the cache's bin directory on stdout as its last line; progress goes to stderr.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
cache_root=${ASYNCTASK_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/asynctask}
key=$( (cat "$here/go.mod" "$here/go.sum" "$here/build.sh"; go env GOVERSION GOOS GOARCH) | sha256sum | cut -c1-16)
helm_version=$(awk '$1=="require" && $2=="helm.sh/helm/v3" {print $3; exit} $1=="helm.sh/helm/v3" {print $2; exit}' "$here/go.mod")
out="$cache_root/helm/$helm_version-$key"
pkg=helm.sh/helm/v3/cmd/helm

log() { printf '[helm] %s\n' "$*" >&2; }

if [ -f "$out/.complete" ]; then
  log "cached: helm $helm_version in $out/bin"
  echo "$out/bin"; exit 0
fi

command -v go >/dev/null || { log "go is not installed; it is needed to build helm"; exit 1; }
mkdir -p "$out/bin"
exec 9>"$out/.lock"
flock 9
if [ -f "$out/.complete" ]; then echo "$out/bin"; exit 0; fi

cd "$here"
start=$SECONDS
start_epoch=$(date +%s)
log "building helm $helm_version with $(go env GOVERSION) (first run only; ~3-6 min on 2 cores)"
log "step 1/2: downloading Go modules"
GOFLAGS=-mod=readonly go mod download -x 2>&1 | awk '/^# get .*200 OK/ {n++; if (n % 50 == 0) printf "[helm]   %d module files fetched\n", n > "/dev/stderr"}' || true
GOFLAGS=-mod=readonly go mod download
total=$(GOFLAGS=-mod=readonly go list -deps "$pkg" | wc -l)
log "step 2/2: compiling $total packages"
# The same version stamps as helm's own release Makefile: `helm version` reports the pin,
# and lint/template assume the Kubernetes version helm's client-go modules target.
k8s_modules=$(GOFLAGS=-mod=readonly go list -m -f '{{.Version}}' k8s.io/client-go)  # v0.MINOR.PATCH
k8s_minor=$(echo "$k8s_modules" | cut -d. -f2)
ldflags="-s -w -X helm.sh/helm/v3/internal/version.version=$helm_version"
ldflags+=" -X helm.sh/helm/v3/internal/version.gitTreeState=clean"
for p in helm.sh/helm/v3/pkg/lint/rules helm.sh/helm/v3/pkg/chartutil; do
  ldflags+=" -X $p.k8sVersionMajor=1 -X $p.k8sVersionMinor=$k8s_minor"
done
# `go build -v` names each package as it is compiled; count them for a progress line.
CGO_ENABLED=0 GOFLAGS=-mod=readonly go build -v -trimpath -ldflags="$ldflags" -o "$out/bin/helm" "$pkg" 2>&1 \
  | awk -v total="$total" -v start="$start_epoch" '
      { n++; if (n % 100 == 0) printf "[helm]   %d packages compiled (of ~%d), %ds elapsed\n", n, total, systime() - start > "/dev/stderr" }
      /^(#|.*\.go:[0-9]+)/ { print > "/dev/stderr" }'
test -x "$out/bin/helm"
"$out/bin/helm" version --short >&2
printf 'helm %s\n%s\n' "$helm_version" "$(go env GOVERSION)" > "$out/VERSIONS"
touch "$out/.complete"
log "built in $((SECONDS - start))s: $out/bin"
echo "$out/bin"
