#!/usr/bin/env bash
# Installs Portkey's open-source AI gateway pinned by package-lock.json
# into tools/portkey/node_modules, the peer make bench-peers measures
# Bulkhead against (run with the machine's Node). Idempotent.
set -euo pipefail
dir=$(cd "$(dirname "$0")" && pwd)
exec "$dir/../npm-ci.sh" "$dir" "Portkey's gateway for make bench-peers"
