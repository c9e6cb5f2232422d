#!/usr/bin/env bash
# tools/npm-ci.sh DIR WHAT: installs the npm packages DIR's package-lock.json
# pins into DIR/node_modules, saying WHAT they are for. Idempotent: npm
# runs only when the lockfile changed since the last install.
set -euo pipefail
dir=$1 what=$2
stamp="$dir/node_modules/.bulkhead-lock.sha256"
want=$(sha256sum "$dir/package-lock.json" | cut -d' ' -f1)
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
	exit 0
fi
if ! command -v npm >/dev/null; then
	echo "$(basename "$dir"): npm is not installed; install Node.js and npm (Debian: apt-get install nodejs npm)" >&2
	exit 1
fi
echo "==> npm ci: $what ($(basename "$(dirname "$dir")")/$(basename "$dir"), pinned by package-lock.json)"
(cd "$dir" && npm ci --no-audit --no-fund --loglevel=error)
echo "$want" >"$stamp"
