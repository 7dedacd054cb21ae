#!/usr/bin/env bash
# Builds the pinned local control plane (etcd, kube-apiserver, kube-controller-manager,
# kubectl) from the Go modules in this folder and caches the binaries, keyed by the
# module pins, the build scripts and the Go toolchain, so later runs reuse them in a second.
#
# Prints the cache's bin directory on stdout as its last line; progress goes to stderr.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
log_prefix=controlplane
source "$here/../lib/gobuild.sh"
key=$(gobuild_key "$here/go.mod" "$here/go.sum" "$here/build.sh")
k8s_version=$(awk '$1=="k8s.io/kubernetes" {print $2; exit}' "$here/go.mod")
etcd_version=$(awk '$1=="go.etcd.io/etcd/server/v3" {print $2; exit}' "$here/go.mod")
out="$cache_root/controlplane/$k8s_version-etcd$etcd_version-$key"
bins=(etcd kube-apiserver kube-controller-manager kubectl)
pkgs=(go.etcd.io/etcd/server/v3 k8s.io/kubernetes/cmd/kube-apiserver
      k8s.io/kubernetes/cmd/kube-controller-manager k8s.io/kubernetes/cmd/kubectl)

reuse_or_lock "$out" "$out/bin"
mkdir -p "$out/bin"
cd "$here"
log "building kubernetes $k8s_version and etcd $etcd_version with $(go env GOVERSION) (first run only; ~10-20 min on 2 cores)"
staging="$out/staging"
build_kubernetes "$k8s_version" "$staging" "etcd, kube-apiserver, kube-controller-manager, kubectl" \
    "${pkgs[@]}"
# Binaries are named after their import paths; etcd's is go.etcd.io/etcd/server/v3.
for i in "${!bins[@]}"; do
  built="$staging/$(basename "${pkgs[$i]}")"
  [ -x "$built" ] || built="$staging/server"
  mv "$built" "$out/bin/${bins[$i]}"
done
rm -rf "$staging"
printf 'kubernetes %s\netcd %s\n%s\n' "$k8s_version" "$etcd_version" "$(go env GOVERSION)" > "$out/VERSIONS"
finish "$out" "$out/bin"
