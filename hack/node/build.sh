#!/usr/bin/env bash
# Builds the test bed's node binaries (kubelet, kube-scheduler, kube-proxy) from the same
# pinned Kubernetes module as hack/controlplane and caches them, keyed by the module pins,
# the build scripts and the Go toolchain, so later runs reuse them in a second. The control
# plane's build leaves most packages in Go's build cache, so this takes about a minute then.
#
# Prints the cache's bin directory on stdout as its last line; progress goes to stderr.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
log_prefix=node
source "$here/../lib/gobuild.sh"
key=$(gobuild_key "$here/go.mod" "$here/go.sum" "$here/build.sh")
k8s_version=$(awk '$1=="require" && $2=="k8s.io/kubernetes" {print $3; exit} $1=="k8s.io/kubernetes" {print $2; exit}' "$here/go.mod")
cp_version=$(awk '$1=="k8s.io/kubernetes" {print $2; exit}' "$here/../controlplane/go.mod")
if [ "$k8s_version" != "$cp_version" ]; then
  log "hack/node pins kubernetes $k8s_version but hack/controlplane pins $cp_version: keep them equal"
  exit 1
fi
out="$cache_root/node/$k8s_version-$key"
bins=(kubelet kube-scheduler kube-proxy)
pkgs=(k8s.io/kubernetes/cmd/kubelet k8s.io/kubernetes/cmd/kube-scheduler
      k8s.io/kubernetes/cmd/kube-proxy)

reuse_or_lock "$out" "$out/bin"
mkdir -p "$out/bin"
cd "$here"
log "building kubelet, kube-scheduler, kube-proxy $k8s_version with $(go env GOVERSION) (first run only)"
staging="$out/staging"
build_kubernetes "$k8s_version" "$staging" "" "${pkgs[@]}"
for b in "${bins[@]}"; do mv "$staging/$b" "$out/bin/$b"; done
rm -rf "$staging"
printf 'kubernetes %s\n%s\n' "$k8s_version" "$(go env GOVERSION)" > "$out/VERSIONS"
finish "$out" "$out/bin"
