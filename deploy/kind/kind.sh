#!/usr/bin/env bash
# The platform on kind, for machines with a Docker engine (the development
# machines have none: there, make cluster-up runs a real node instead).
#
#   deploy/kind/kind.sh up     create the cluster, build and load the images, deploy, wait, print the ingress and a key
#   deploy/kind/kind.sh e2e    the cluster e2e through the Envoy ingress, plus a gateway pod deleted under load
#   deploy/kind/kind.sh down   delete the cluster
set -euo pipefail

root=$(cd "$(dirname "$0")/../.." && pwd)
bin="$root/bin"
S="$root/.bulkhead/kind"
name=bulkhead

say() { echo "kind: $*"; }
die() { echo "kind: $*" >&2; exit 1; }

need_docker() {
	command -v docker >/dev/null 2>&1 || die "kind needs Docker: no docker command on this machine (without Docker: make cluster-up)"
	docker info >/dev/null 2>&1 || die "kind needs a running Docker engine: 'docker info' fails (without Docker: make cluster-up)"
}

up() {
	need_docker
	"$root/tools/build.sh" kind kubectl images vault ratelimit
	mkdir -p "$S"
	if ! "$bin/kind" get clusters 2>/dev/null | grep -qx "$name"; then
		say "creating cluster $name (deploy/kind/kind-config.yaml)"
		"$bin/kind" create cluster --config "$root/deploy/kind/kind-config.yaml" --kubeconfig "$S/admin.kubeconfig" --wait 120s
	else
		"$bin/kind" export kubeconfig --name "$name" --kubeconfig "$S/admin.kubeconfig"
	fi
	"$root/deploy/deploy.sh" kind
}

e2e() {
	[ -f "$S/admin.kubeconfig" ] || die "no kind cluster: make kind-up"
	cd "$root"
	BULKHEAD_KUBECONFIG="$S/admin.kubeconfig" BULKHEAD_API_URL="$(cat "$S/api-url")" BULKHEAD_API_KEY_FILE="$S/dev-api-key" \
		go test -tags clustere2e -count=1 -v -timeout 20m -run 'TestCluster|TestGatewayFailover' ./deploy/cluster/e2e/
}

down() {
	if [ -x "$bin/kind" ] && "$bin/kind" get clusters 2>/dev/null | grep -qx "$name"; then
		"$bin/kind" delete cluster --name "$name"
	fi
	rm -rf "$S"
	say "down"
}

case "${1:-}" in
up) up ;;
e2e) e2e ;;
down) down ;;
*) echo "usage: $0 up|e2e|down" >&2; exit 2 ;;
esac
