#!/usr/bin/env bash
# Installs Portkey's open-source AI gateway pinned by package-lock.json
# into tools/portkey/node_modules, the peer make bench-peers measures
# Bulkhead against (run with the machine's Node). Idempotent: npm runs
# only when the lockfile changed since the last install.
set -euo pipefail
dir=$(cd "$(dirname "$0")" && pwd)
stamp="$dir/node_modules/.bulkhead-lock.sha256"
want=$(sha256sum "$dir/package-lock.json" | cut -d' ' -f1)
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
	exit 0
fi
if ! command -v npm >/dev/null; then
	echo "portkey: npm is not installed; install Node.js and npm (Debian: apt-get install nodejs npm)" >&2
	exit 1
fi
echo "==> npm ci: Portkey's gateway for make bench-peers (tools/portkey, pinned by package-lock.json)"
(cd "$dir" && npm ci --no-audit --no-fund --loglevel=error)
echo "$want" >"$stamp"
