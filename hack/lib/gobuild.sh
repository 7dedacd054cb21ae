# Shared by the scripts that compile pinned Kubernetes binaries from Go modules
# (hack/controlplane/build.sh, hack/node/build.sh). Sourced, not run; it sources cache.sh,
# so a script that sources this one has the cache's functions too.
source "$(dirname "${BASH_SOURCE[0]}")/cache.sh"

# gobuild_key FILE...: the cache key over FILE..., this library, cache.sh and the Go
# toolchain; a change to any of them makes a new cache folder.
gobuild_key() {
  cache_key "$@" "${BASH_SOURCE[0]}" <(go env GOVERSION GOOS GOARCH)
}

# build_kubernetes VERSION STAGING LABEL PKG...: downloads the Go modules of the module in
# the current folder, then compiles PKG... into the folder STAGING (emptied first), with
# progress lines. LABEL (may be empty) names the binaries in the progress line.
# Release builds stamp their version; without it /version says v0.0.0 and tools that
# check the server version (helm's kubeVersion, kubectl's skew warning) are misled, so the
# binaries are stamped with VERSION (a Kubernetes tag, vMAJOR.MINOR.PATCH).
# One `go build` for all packages: shared packages are compiled once, and the progress
# count is cumulative. Binaries are named after the last part of their import paths.
build_kubernetes() {
  local version=$1 staging=$2 label=$3
  shift 3
  local total minor pkg ldflags=""
  download_modules
  total=$(GOFLAGS=-mod=readonly go list -deps "$@" | wc -l)
  log "step 2/2: compiling $total packages${label:+: $label}"
  minor=$(echo "$version" | cut -d. -f2)
  for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    ldflags+=" -X $pkg.gitVersion=$version -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor"
    ldflags+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=1970-01-01T00:00:00Z"
  done
  rm -rf "$staging"; mkdir -p "$staging"
  CGO_ENABLED=0 GOFLAGS=-mod=readonly go build -v -trimpath -ldflags="-s -w $ldflags" \
      -o "$staging/" "$@" 2>&1 | compile_progress "$total"
}
