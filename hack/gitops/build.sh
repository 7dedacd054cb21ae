#!/usr/bin/env bash
# Builds gitops-health (main.go here: kstatus from sigs.k8s.io/cli-utils, Argo CD's Lua in
# github.com/yuin/gopher-lua, both pinned in go.mod) and caches it, keyed by the sources,
# the module pins, this script and the Go toolchain, so later runs reuse it in a second.
# Used by the GitOps health tests (tests/unit/chart/test_chart_argocd_health.py,
# tests/e2e/test_gitops.py).
#
# Prints the cache's bin directory on stdout as its last line; progress goes to stderr.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
log_prefix=gitops-health
source "$here/../lib/cache.sh"
key=$(cache_key "$here/go.mod" "$here/go.sum" "$here"/*.go "$here/build.sh" \
  <(go env GOVERSION GOOS GOARCH))
out="$cache_root/gitops-health/$key"

reuse_or_lock "$out" "$out/bin"
mkdir -p "$out/bin"
cd "$here"
log "building gitops-health with $(go env GOVERSION) (first run only; ~1-2 min on 2 cores)"
download_modules
total=$(GOFLAGS=-mod=readonly go list -deps . | wc -l)
log "step 2/2: compiling $total packages"
CGO_ENABLED=0 GOFLAGS=-mod=readonly go build -v -trimpath -ldflags="-s -w" \
    -o "$out/bin/gitops-health" . 2>&1 | compile_progress "$total"
test -x "$out/bin/gitops-health"
GOFLAGS=-mod=readonly go list -m -f '{{.Path}} {{.Version}}' \
  sigs.k8s.io/cli-utils github.com/yuin/gopher-lua > "$out/VERSIONS"
go env GOVERSION >> "$out/VERSIONS"
finish "$out" "$out/bin"
