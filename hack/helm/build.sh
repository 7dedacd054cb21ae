#!/usr/bin/env bash
# Builds the pinned helm binary from its Go module (helm.sh/helm/v3, pinned in go.mod here)
# and caches it, keyed by the module pins, the build scripts and the Go toolchain, so later
# runs reuse it in a second. Used by the chart's tests (helm lint, template, install).
#
# Prints the cache's bin directory on stdout as its last line; progress goes to stderr.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
log_prefix=helm
source "$here/../lib/cache.sh"
key=$(cache_key "$here/go.mod" "$here/go.sum" "$here/build.sh" <(go env GOVERSION GOOS GOARCH))
helm_version=$(awk '$1=="require" && $2=="helm.sh/helm/v3" {print $3; exit} $1=="helm.sh/helm/v3" {print $2; exit}' "$here/go.mod")
out="$cache_root/helm/$helm_version-$key"
pkg=helm.sh/helm/v3/cmd/helm

reuse_or_lock "$out" "$out/bin"
mkdir -p "$out/bin"
cd "$here"
log "building helm $helm_version with $(go env GOVERSION) (first run only; ~3-6 min on 2 cores)"
download_modules
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
CGO_ENABLED=0 GOFLAGS=-mod=readonly go build -v -trimpath -ldflags="$ldflags" \
    -o "$out/bin/helm" "$pkg" 2>&1 | compile_progress "$total"
test -x "$out/bin/helm"
"$out/bin/helm" version --short >&2
printf 'helm %s\n%s\n' "$helm_version" "$(go env GOVERSION)" > "$out/VERSIONS"
finish "$out" "$out/bin"
