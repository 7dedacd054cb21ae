#!/usr/bin/env bash
# Copies the third-party CRDs the chart's tests validate against out of their pinned Go
# modules (see go.mod here): `go mod download` fetches each module zip through the Go
# module proxy and verifies it against go.sum; the CRD files are copied from the module
# cache into a cache folder keyed by the pins, so later runs take a second.
#
# Prints that folder on stdout as its last line; progress goes to stderr.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
log_prefix=crds
source "$here/../../lib/cache.sh"
key=$(cache_key "$here/go.mod" "$here/go.sum" "$here/fetch.sh")
out="$cache_root/crds/$key"
# module path | file inside the module zip
files=(
  "github.com/kedacore/keda/v2|config/crd/bases/keda.sh_scaledobjects.yaml"
  "github.com/kedacore/keda/v2|config/crd/bases/keda.sh_triggerauthentications.yaml"
  "github.com/prometheus-operator/prometheus-operator|example/prometheus-operator-crd/monitoring.coreos.com_servicemonitors.yaml"
)

reuse_or_lock "$out" "$out"
cd "$here"
: > "$out/VERSIONS"
for module in $(printf '%s\n' "${files[@]}" | cut -d'|' -f1 | sort -u); do
  version=$(awk -v m="$module" '$1==m {print $2; exit}' go.mod)
  log "downloading $module $version (module zip, verified against go.sum)"
  dir=$(GOFLAGS=-mod=readonly go mod download -json "$module" \
        | python3 -c 'import json, sys; d = json.load(sys.stdin); sys.exit(d["Error"]) if "Error" in d else print(d["Dir"])')
  for entry in "${files[@]}"; do
    [ "${entry%%|*}" = "$module" ] || continue
    path=${entry#*|}
    install -m 0644 "$dir/$path" "$out/$(basename "$path")"
    log "  $(basename "$path")"
  done
  echo "$module $version" >> "$out/VERSIONS"
done
finish "$out" "$out" fetched
