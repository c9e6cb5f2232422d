#!/usr/bin/env bash
# Deploys the platform onto the local cluster (deploy/cluster/cluster.sh up):
# builds the images (deploy/images/build.sh), imports them into the node's
# containerd, applies the CRDs and the local overlay (deploy/kind/overlays/
# local) with the images tagged by the git revision, waits until every
# workload is ready, and prints how to reach the API.
set -euo pipefail

root=$(cd "$(dirname "$0")/../.." && pwd)
bin="$root/bin"
S="$root/.bulkhead/cluster"
sock="$S/containerd/containerd.sock"
k=("$bin/kubectl" --kubeconfig="$S/admin.kubeconfig")

say() { echo "deploy: $*"; }
die() { echo "deploy: $*" >&2; exit 1; }

[ -S "$sock" ] || die "the local cluster is not running: make cluster-up starts it"

[ "${SKIP_IMAGES:-}" = 1 ] || "$root/deploy/images/build.sh"
rev=$(cat "$root/.bulkhead/images/TAG")

start=$(date +%s)
images=()
for tar in "$root"/.bulkhead/images/*.tar; do
	name=$(basename "$tar" .tar)
	images+=("$name")
	ctr --address "$sock" -n k8s.io images import "$tar" >/dev/null
done
say "imported ${#images[@]} images (tag $rev) into the node's containerd in $(( $(date +%s) - start ))s"

# The overlay, with every bulkhead/* image at this revision.
mkdir -p "$S/deploy"
{
	echo "# Written by deploy/cluster/deploy.sh: the local overlay at revision $rev."
	echo "apiVersion: kustomize.config.k8s.io/v1beta1"
	echo "kind: Kustomization"
	echo "resources: [../../../deploy/kind/overlays/local]"
	echo "images:"
	for n in "${images[@]}"; do echo "- {name: bulkhead/$n, newTag: \"$rev\"}"; done
} >"$S/deploy/kustomization.yaml"

"${k[@]}" apply --server-side -f "$root/policies/crds" -f "$root/policies/crds-gateway-api" >/dev/null
"${k[@]}" wait --for=condition=Established crd --all --timeout=60s >/dev/null
say "CRDs applied"

# A Job's pod template cannot change, and both Jobs are idempotent: they
# run again at every deploy.
"${k[@]}" -n bulkhead delete job bootstrap dev-key --ignore-not-found --wait=true >/dev/null
"${k[@]}" apply -k "$S/deploy" >/dev/null
say "applied deploy/kind/overlays/local"

wait_all() {
	local deadline=$(( $(date +%s) + 600 ))
	say "waiting for the bootstrap Job (Vault init, provisioning)"
	"${k[@]}" -n bulkhead wait --for=condition=Complete job/bootstrap --timeout=600s >/dev/null ||
		{ "${k[@]}" -n bulkhead logs job/bootstrap --tail=20 >&2 || true; die "the bootstrap Job did not complete"; }
	local w
	for w in bulkhead-system/deploy/control-plane bulkhead/statefulset/postgres bulkhead/statefulset/redis bulkhead/statefulset/vault bulkhead/statefulset/kafka \
		bulkhead/deploy/ratelimit bulkhead/deploy/users bulkhead/deploy/models bulkhead/deploy/inference bulkhead/deploy/inference-fallback \
		bulkhead/deploy/auth bulkhead/deploy/auth-cache bulkhead/deploy/chat bulkhead/deploy/api; do
		local ns=${w%%/*} rest=${w#*/}
		local left=$(( deadline - $(date +%s) ))
		[ $left -gt 0 ] || left=1
		"${k[@]}" -n "$ns" rollout status "$rest" --timeout="${left}s" >/dev/null ||
			{ "${k[@]}" -n "$ns" get pods >&2; die "$rest is not ready"; }
	done
	say "waiting for the dev-key Job"
	"${k[@]}" -n bulkhead wait --for=condition=Complete job/dev-key --timeout=300s >/dev/null ||
		{ "${k[@]}" -n bulkhead logs job/dev-key -c dev-key --tail=20 >&2 || true; die "the dev-key Job did not complete"; }
}
start=$(date +%s)
wait_all
say "every workload ready in $(( $(date +%s) - start ))s"

"${k[@]}" -n bulkhead get secret dev-api-key -o jsonpath='{.data.key}' | base64 -d >"$S/dev-api-key"
chmod 600 "$S/dev-api-key"
api=$("${k[@]}" -n bulkhead get service api -o jsonpath='{.spec.clusterIP}')
echo "$api" >"$S/api-address"
cat <<EOF

The platform runs on the local cluster (revision $rev):
  API:      http://$api:8080/v1  (the api Service; this machine routes the Service range to the node)
  key:      .bulkhead/cluster/dev-api-key
  kubectl:  export KUBECONFIG=$S/admin.kubeconfig; kubectl -n bulkhead get pods

  curl -s http://$api:8080/v1/models -H "Authorization: Bearer \$(cat .bulkhead/cluster/dev-api-key)"
EOF
