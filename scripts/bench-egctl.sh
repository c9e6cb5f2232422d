#!/usr/bin/env bash
# Compares Bulkhead's offline translation with Envoy Gateway's on the same
# Gateway API input: N HTTPRoutes on one Gateway, N Services with one
# EndpointSlice each. Both are timed end to end as processes (read YAML,
# translate, print the xDS as YAML), RUNS times each; the medians and their
# ratio are printed.
#
#   scripts/bench-egctl.sh            N=1000 RUNS=5
#   N=200 RUNS=9 scripts/bench-egctl.sh
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
N=${N:-1000}
RUNS=${RUNS:-5}

./tools/build.sh egctl
go build -o bin/bulkhead ./cmd/bulkhead

dir=$(mktemp -d)
trap '[ -n "${KEEP:-}" ] || rm -rf "$dir"' EXIT
in="$dir/input.yaml"
{
	cat <<'YAML'
apiVersion: gateway.networking.k8s.io/v1
kind: GatewayClass
metadata: {name: eg}
spec: {controllerName: gateway.envoyproxy.io/gatewayclass-controller}
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: ai, namespace: default}
spec:
  gatewayClassName: eg
  listeners: [{name: http, protocol: HTTP, port: 8080}]
YAML
	for ((i = 0; i < N; i++)); do
		cat <<YAML
---
apiVersion: v1
kind: Service
metadata: {name: svc-$i, namespace: default}
spec:
  clusterIP: 10.96.$((i / 250)).$((i % 250 + 1))
  ports: [{name: http, port: 8080, protocol: TCP}]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: svc-$i-1
  namespace: default
  labels: {kubernetes.io/service-name: svc-$i}
addressType: IPv4
ports: [{name: http, port: 8080, protocol: TCP}]
endpoints: [{addresses: [10.1.$((i / 250)).$((i % 250 + 1))], conditions: {ready: true}}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: route-$i, namespace: default}
spec:
  parentRefs: [{name: ai}]
  hostnames: [api.bulkhead.local]
  rules:
  - matches: [{path: {type: PathPrefix, value: /svc-$i/}, headers: [{name: x-tenant, value: t$i}]}]
    backendRefs: [{name: svc-$i, port: 8080}]
YAML
	done
} >"$in"

median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
timeit() {
	local out=$1
	shift
	for ((r = 0; r < RUNS; r++)); do
		local s e
		s=$(date +%s%N)
		"$@" >"$out" 2>"$out.err"
		e=$(date +%s%N)
		echo $(((e - s) / 1000000))
	done | median
}

ours=$(timeit "$dir/ours.yaml" bin/bulkhead translate -f "$dir" --node gateway/default/ai -o yaml)
theirs=$(timeit "$dir/theirs.yaml" bin/egctl x translate -f "$in" --from gateway-api --to xds -t all -o yaml)

# Sanity: both produced a route per HTTPRoute.
ours_routes=$(grep -c 'name: default/route-' "$dir/ours.yaml" || true)
theirs_routes=$(grep -c 'name: httproute/default/route-' "$dir/theirs.yaml" || true)
echo "input: $N HTTPRoutes, $N Services, $N EndpointSlices on one Gateway; $RUNS runs each, median"
printf '%-34s %8s ms   (%s routes in the output)\n' "bulkhead translate" "$ours" "$ours_routes"
printf '%-34s %8s ms   (%s routes in the output)\n' "egctl x translate (v1.9.1)" "$theirs" "$theirs_routes"
awk -v a="$ours" -v b="$theirs" 'BEGIN {printf "ratio bulkhead/egctl: %.2f\n", a / b}'
