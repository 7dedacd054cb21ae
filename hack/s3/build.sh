#!/usr/bin/env bash
# Builds the pinned S3-compatible server (versitygw, github.com/versity/versitygw, Apache-2.0,
# pinned in go.mod here) from its Go module and caches it, keyed by the module pins, this
# script and the Go toolchain, so later runs reuse it in a second. Used by the test bed and
# the dev stack for large payloads (hack/testbed/s3.py, docs/payloads.md).
#
# Prints the cache's bin directory on stdout as its last line; progress goes to stderr.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
log_prefix=s3
source "$here/../lib/cache.sh"
key=$(cache_key "$here/go.mod" "$here/go.sum" "$here/build.sh" <(go env GOVERSION GOOS GOARCH))
version=$(awk '$1=="require" && $2=="github.com/versity/versitygw" {print $3; exit}' "$here/go.mod")
out="$cache_root/s3/$version-$key"
pkg=github.com/versity/versitygw/cmd/versitygw

reuse_or_lock "$out" "$out/bin"
mkdir -p "$out/bin"
cd "$here"
log "building versitygw $version with $(go env GOVERSION) (first run only; ~2 min on 2 cores)"
download_modules
total=$(GOFLAGS=-mod=readonly go list -deps "$pkg" | wc -l)
log "step 2/2: compiling $total packages"
CGO_ENABLED=0 GOFLAGS=-mod=readonly go build -v -trimpath -ldflags="-s -w" \
    -o "$out/bin/versitygw" "$pkg" 2>&1 | compile_progress "$total"
test -x "$out/bin/versitygw"
printf 'versitygw %s\n%s\n' "$version" "$(go env GOVERSION)" > "$out/VERSIONS"
finish "$out" "$out/bin"
