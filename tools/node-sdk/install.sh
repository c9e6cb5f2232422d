#!/usr/bin/env bash
# Installs the official OpenAI Node SDK pinned by package-lock.json into
# tools/node-sdk/node_modules, for the tests that drive the platform with it
# (services/e2e TestOpenAINodeSDK, make sdk-check). Idempotent: npm runs
# only when the lockfile changed since the last install.
#
# Pinned at openai 6.49.0, the newest release that runs on the machine's
# Node 20: 7.x declares node >= 22.
set -euo pipefail
dir=$(cd "$(dirname "$0")" && pwd)
stamp="$dir/node_modules/.bulkhead-lock.sha256"
want=$(sha256sum "$dir/package-lock.json" | cut -d' ' -f1)
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
	exit 0
fi
if ! command -v npm >/dev/null; then
	echo "node-sdk: npm is not installed; install Node.js and npm (Debian: apt-get install nodejs npm)" >&2
	exit 1
fi
echo "==> npm ci: the OpenAI Node SDK for the SDK tests (tools/node-sdk, pinned by package-lock.json)"
(cd "$dir" && npm ci --no-audit --no-fund --loglevel=error)
echo "$want" >"$stamp"
