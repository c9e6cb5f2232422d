#!/usr/bin/env bash
# Renders every Envoy configuration of the platform into DIR, for
# `envoy --mode validate` (.github/workflows/envoy-validate.yml):
#   - the edge router and the two gateways from policies/mesh, with their
#     listeners and clusters (bulkhead translate -o bootstrap);
#   - the bootstrap templates of each role (bulkhead bootstrap).
set -euo pipefail
out=${1:?usage: scripts/envoy-configs.sh DIR}
mkdir -p "$out"
bulkhead() { go run ./cmd/bulkhead "$@"; }
for node in router/default/edge gateway/default/identity gateway/default/ai; do
  name=${node//\//-}
  echo "translate $node"
  bulkhead translate -f policies/mesh --node "$node" -o bootstrap > "$out/translated-$name.yaml"
done
for spec in "--role router --name edge" "--role gateway --name identity" "--role gateway --name ai"; do
  # shellcheck disable=SC2086
  name=$(echo $spec | awk '{print $2"-"$4}')
  echo "bootstrap $name"
  # shellcheck disable=SC2086
  bulkhead bootstrap $spec > "$out/bootstrap-$name.yaml"
done
ls -l "$out"
