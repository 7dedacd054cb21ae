# Shared by the scripts that build or fetch pinned tools into the project's cache
# (hack/controlplane/build.sh and hack/node/build.sh through gobuild.sh, hack/helm/build.sh,
# hack/helm/crds/fetch.sh, hack/gitops/build.sh). Sourced, not run.
#
# Each such script sets `log_prefix`, computes its cache folder with `cache_key`, calls
# `reuse_or_lock` (which ends the script when a complete copy is cached), builds into the
# folder, writes VERSIONS there (one "name version" line each) and calls `finish`.

# Where cached builds live: ASYNCTASK_CACHE_DIR, else the user's cache folder.
cache_root=${ASYNCTASK_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/asynctask}
log_prefix=${log_prefix:-cache}

log() { printf '[%s] %s\n' "$log_prefix" "$*" >&2; }

# cache_key FILE...: 16 hex digits over the files and this library; a change to any of
# them (a new pin, a changed build step) makes a new cache folder.
cache_key() {
  cat "$@" "${BASH_SOURCE[0]}" | sha256sum | cut -c1-16
}

# reuse_or_lock DIR RESULT: when DIR holds a complete build, print RESULT (the path the
# caller hands out) and end the script. Otherwise create DIR and hold its lock until the
# script ends, so that concurrent runs build once; the second one finds the build done.
# The clock of the build (for `compile_progress` and `finish`) starts then.
reuse_or_lock() {
  local dir=$1 result=$2
  if [ -f "$dir/.complete" ]; then
    log "cached: $(tr '\n' ' ' < "$dir/VERSIONS")in $result"
    echo "$result"; exit 0
  fi
  command -v go >/dev/null || { log "go is not installed; it is needed here (first run only)"; exit 1; }
  mkdir -p "$dir"
  exec 9>"$dir/.lock"
  flock 9
  if [ -f "$dir/.complete" ]; then echo "$result"; exit 0; fi
  build_start=$SECONDS
  build_start_epoch=$(date +%s)
}

# download_modules: `go mod download` of the module in the current folder (verified against
# its go.sum), with a progress line every 50 module files fetched.
download_modules() {
  log "step 1/2: downloading Go modules"
  GOFLAGS=-mod=readonly go mod download -x 2>&1 \
    | awk -v p="$log_prefix" '/^# get .*200 OK/ { n++; if (n % 50 == 0)
        printf "[%s]   %d module files fetched\n", p, n > "/dev/stderr" }' || true
  GOFLAGS=-mod=readonly go mod download  # fails loudly if anything is missing
}

# compile_progress TOTAL: reads `go build -v` output (one package name per line as each is
# compiled; cached packages are not named) and prints a progress line every 100 packages;
# compiler errors pass through.
compile_progress() {
  awk -v p="$log_prefix" -v total="$1" -v start="$build_start_epoch" '
    { n++; if (n % 100 == 0) printf "[%s]   %d of at most %d packages compiled, %ds elapsed\n",
        p, n, total, systime() - start > "/dev/stderr" }
    /^(#|.*\.go:[0-9]+)/ { print > "/dev/stderr" }'
}

# finish DIR RESULT [VERB]: mark DIR complete, say how long it took, print RESULT.
finish() {
  touch "$1/.complete"
  log "${3:-built} in $((SECONDS - build_start))s: $2"
  echo "$2"
}
