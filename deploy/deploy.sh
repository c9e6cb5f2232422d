#!/usr/bin/env bash
# Deploys the platform onto a cluster: builds the images (deploy/images/
# build.sh), loads them into the cluster's nodes, applies the CRDs and an
# overlay with the images tagged by the git revision, waits until every
# workload is ready, and keeps the development key.
#
#   deploy/deploy.sh local   the local cluster of deploy/cluster (make cluster-up)
#   deploy/deploy.sh kind    the kind cluster of deploy/kind (make kind-up)
#
# SKIP_IMAGES=1 reuses the images already in .bulkhead/images/.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
bin="$root/bin"
overlay=${1:-}
case "$overlay" in
local)
	S="$root/.bulkhead/cluster"
	sock="$S/containerd/containerd.sock"
	[ -S "$sock" ] || { echo "deploy: the local cluster is not running: make cluster-up starts it" >&2; exit 1; }
	load() { ctr --address "$sock" -n k8s.io images import "$1" >/dev/null; }
	extra=""
	;;
kind)
	S="$root/.bulkhead/kind"
	load() { "$bin/kind" load image-archive --name bulkhead "$1" >/dev/null; }
	extra="bulkhead/deploy/edge bulkhead/deploy/gateway-identity bulkhead/deploy/gateway-ai"
	;;
*) echo "usage: $0 local|kind" >&2; exit 2 ;;
esac
k=("$bin/kubectl" --kubeconfig="$S/admin.kubeconfig")
rel=${S#"$root"/}

say() { echo "deploy: $*"; }
die() { echo "deploy: $*" >&2; exit 1; }

[ "${SKIP_IMAGES:-}" = 1 ] || "$root/deploy/images/build.sh"
rev=$(cat "$root/.bulkhead/images/TAG")

start=$(date +%s)
images=()
for tar in "$root"/.bulkhead/images/*.tar; do
	images+=("$(basename "$tar" .tar)")
	load "$tar"
done
say "loaded ${#images[@]} images (tag $rev) into the cluster's nodes in $(( $(date +%s) - start ))s"

# The overlay, with every bulkhead/* image at this revision.
mkdir -p "$S/deploy"
{
	echo "# Written by deploy/deploy.sh: the $overlay overlay at revision $rev."
	echo "apiVersion: kustomize.config.k8s.io/v1beta1"
	echo "kind: Kustomization"
	echo "resources: [../../../deploy/kind/overlays/$overlay]"
	echo "images:"
	for n in "${images[@]}"; do echo "- {name: bulkhead/$n, newTag: \"$rev\"}"; done
} >"$S/deploy/kustomization.yaml"

"${k[@]}" apply --server-side -f "$root/policies/crds" -f "$root/policies/crds-gateway-api" >/dev/null
"${k[@]}" wait --for=condition=Established crd --all --timeout=60s >/dev/null
say "CRDs applied"

# A Job's pod template cannot change, and both Jobs are idempotent: they
# run again at every deploy.
"${k[@]}" -n bulkhead delete job bootstrap dev-key --ignore-not-found --wait=true >/dev/null 2>&1 || true
"${k[@]}" apply -k "$S/deploy" >/dev/null
say "applied deploy/kind/overlays/$overlay"

start=$(date +%s)
deadline=$(( start + 900 ))
say "waiting for the bootstrap Job (Vault init, provisioning)"
"${k[@]}" -n bulkhead wait --for=condition=Complete job/bootstrap --timeout=900s >/dev/null ||
	{ "${k[@]}" -n bulkhead logs job/bootstrap --tail=20 >&2 || true; die "the bootstrap Job did not complete"; }
for w in bulkhead-system/deploy/control-plane bulkhead/statefulset/postgres bulkhead/statefulset/redis bulkhead/statefulset/vault bulkhead/statefulset/kafka \
	bulkhead/deploy/ratelimit bulkhead/deploy/users bulkhead/deploy/models bulkhead/deploy/inference bulkhead/deploy/inference-fallback \
	bulkhead/deploy/auth bulkhead/deploy/auth-cache bulkhead/deploy/chat bulkhead/deploy/api $extra; do
	ns=${w%%/*} rest=${w#*/}
	left=$(( deadline - $(date +%s) ))
	[ $left -gt 0 ] || left=1
	"${k[@]}" -n "$ns" rollout status "$rest" --timeout="${left}s" >/dev/null ||
		{ "${k[@]}" -n "$ns" get pods >&2; die "$rest is not ready"; }
done
say "waiting for the dev-key Job"
"${k[@]}" -n bulkhead wait --for=condition=Complete job/dev-key --timeout=300s >/dev/null ||
	{ "${k[@]}" -n bulkhead logs job/dev-key -c dev-key --tail=20 >&2 || true; die "the dev-key Job did not complete"; }
say "every workload ready in $(( $(date +%s) - start ))s"

"${k[@]}" -n bulkhead get secret dev-api-key -o jsonpath='{.data.key}' | base64 -d >"$S/dev-api-key"
chmod 600 "$S/dev-api-key"
if [ "$overlay" = kind ]; then
	api="http://127.0.0.1:8080"
	how="the edge router's NodePort, published by kind on this machine's loopback"
else
	api="http://$("${k[@]}" -n bulkhead get service api -o jsonpath='{.spec.clusterIP}'):8080"
	how="the api Service: this machine routes the Service range to the node; there is no Envoy here"
fi
echo "$api" >"$S/api-url"
cat <<EOF

The platform runs on the $overlay cluster (revision $rev):
  API:      $api/v1  ($how)
  key:      $rel/dev-api-key
  kubectl:  export KUBECONFIG=$S/admin.kubeconfig; kubectl -n bulkhead get pods

  curl -s $api/v1/models -H "Authorization: Bearer \$(cat $rel/dev-api-key)"
EOF
