#!/usr/bin/env bash
# make bench-peers: Bulkhead as `bulkhead up` runs it (one process per
# service, mTLS), Portkey's gateway and a zero-latency OpenAI-compatible
# upstream called directly, measured in one run on this machine with the
# same open-loop load (internal/benchpeers). Writes bench-peers.md.
#
#   scripts/bench-peers.sh                          the full ladder
#   RATES=100,300 DURATION=5s scripts/bench-peers.sh
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
./scripts/install-deps.sh
./tools/portkey/install.sh
./tools/build.sh vault
make --no-print-directory build
echo "==> go build: bin/bench-peers"
go build -o bin/bench-peers ./cmd/bench-peers
exec bin/bench-peers --rates "${RATES:-100,200,300,500,800,1200,1800}" --duration "${DURATION:-10s}" --out "${OUT:-bench-peers.md}"
