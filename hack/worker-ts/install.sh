#!/usr/bin/env bash
# worker-ts/'s node_modules (the TypeScript worker SDK's build and lint tools, amqplib):
# `npm ci` from the committed package-lock.json, run only when the lockfile (or
# package.json) changed since the last install: their hash is kept in
# node_modules/.asynctask-lock. npm's download cache lives in the project's cache folder
# ($cache_root/npm), so a clean clone installs from it without the network once it is warm.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
log_prefix=worker-ts
source "$here/../lib/cache.sh"
dir="$here/../../worker-ts"
want=$(cat "$dir/package-lock.json" "$dir/package.json" | sha256sum | cut -c1-16)
stamp="$dir/node_modules/.asynctask-lock"
if [ "$(cat "$stamp" 2>/dev/null)" = "$want" ]; then
  log "node_modules up to date (lockfile $want)"
  exit 0
fi
command -v npm >/dev/null || { log "npm is not installed; worker-ts/ needs Node.js 20 or later"; exit 1; }
start=$SECONDS
(cd "$dir" && npm ci --cache "$cache_root/npm" --prefer-offline --no-audit --no-fund --loglevel=error)
echo "$want" > "$stamp"
log "npm ci in $((SECONDS - start))s (lockfile $want)"
