#!/usr/bin/env bash
# Builds the pinned real components and developer tools into bin/.
#
#   tools/build.sh            build everything that is missing or out of date
#   tools/build.sh vault etcd build only the named tools
#
# Idempotent: a tool is rebuilt only when its binary is missing or when the
# module that pins it (go.mod, go.sum), the package or the Go version changed.
# The stamp that records this lives next to the binary in bin/.stamps/.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
bin="$root/bin"
mkdir -p "$bin/.stamps"

# name | module dir (relative to the repo) | package | module whose version is
# reported | "optional" when built only on request (tools/build.sh NAME): the
# local cluster's node components, CoreDNS and the image writer are built by
# `make cluster-up`, not by `make test`.
tools=(
	"kube-apiserver|tools/kube|k8s.io/kubernetes/cmd/kube-apiserver|k8s.io/kubernetes"
	"kube-controller-manager|tools/kube|k8s.io/kubernetes/cmd/kube-controller-manager|k8s.io/kubernetes"
	"kubectl|tools/kube|k8s.io/kubernetes/cmd/kubectl|k8s.io/kubernetes"
	"kube-scheduler|tools/kube|k8s.io/kubernetes/cmd/kube-scheduler|k8s.io/kubernetes|optional"
	"kubelet|tools/kube|k8s.io/kubernetes/cmd/kubelet|k8s.io/kubernetes|optional"
	"kube-proxy|tools/kube|k8s.io/kubernetes/cmd/kube-proxy|k8s.io/kubernetes|optional"
	"etcd|tools/kube|go.etcd.io/etcd/server/v3|go.etcd.io/etcd/server/v3"
	"vault|tools/vault|github.com/hashicorp/vault|github.com/hashicorp/vault"
	"ratelimit|tools/ratelimit|github.com/envoyproxy/ratelimit/src/service_cmd|github.com/envoyproxy/ratelimit"
	"coredns|tools/coredns|github.com/bulkhead-mesh/bulkhead/tools/coredns|github.com/coredns/coredns|optional"
	"images|tools/images|github.com/bulkhead-mesh/bulkhead/tools/images|github.com/google/go-containerregistry|optional"
	"buf|tools/dev|github.com/bufbuild/buf/cmd/buf|github.com/bufbuild/buf"
	"protoc-gen-go|.|google.golang.org/protobuf/cmd/protoc-gen-go|google.golang.org/protobuf"
	"protoc-gen-go-grpc|tools/dev|google.golang.org/grpc/cmd/protoc-gen-go-grpc|google.golang.org/grpc/cmd/protoc-gen-go-grpc"
	"controller-gen|tools/dev|sigs.k8s.io/controller-tools/cmd/controller-gen|sigs.k8s.io/controller-tools"
	"staticcheck|tools/dev|honnef.co/go/tools/cmd/staticcheck|honnef.co/go/tools"
	"benchstat|tools/dev|golang.org/x/perf/cmd/benchstat|golang.org/x/perf"
	"kind|tools/kind|sigs.k8s.io/kind|sigs.k8s.io/kind|optional"
	"egctl|tools/egctl|github.com/envoyproxy/gateway/cmd/egctl|github.com/envoyproxy/gateway|optional"
)

wanted=("$@")
want() {
	[ ${#wanted[@]} -eq 0 ] && [ "$2" != optional ] && return 0
	local w
	for w in "${wanted[@]}"; do [ "$w" = "$1" ] && return 0; done
	return 1
}

known=" "
for t in "${tools[@]}"; do known+="${t%%|*} "; done
for w in "${wanted[@]}"; do
	case "$known" in
	*" $w "*) ;;
	*) echo "tools: unknown tool '$w'; known tools:$known" >&2; exit 2 ;;
	esac
done

# Kubernetes' binaries report the version their build stamps in
# component-base (a Node's kubeletVersion, `kubectl version`); a plain
# `go build` leaves v0.0.0-master.
ldflags_for() {
	local mod=$1 version=$2
	[ "$mod" = k8s.io/kubernetes ] || return 0
	local major=${version#v}; major=${major%%.*}
	local minor=${version#v"$major".}; minor=${minor%%.*}
	local v=k8s.io/component-base/version
	echo "-X $v.gitVersion=$version -X $v.gitMajor=$major -X $v.gitMinor=$minor -X $v.gitTreeState=clean"
}

goversion=$(go env GOVERSION)
total_start=$(date +%s)
built=0

for t in "${tools[@]}"; do
	IFS='|' read -r name dir pkg mod opt <<<"$t"
	want "$name" "$opt" || continue
	moddir="$root/$dir"
	version=$(cd "$moddir" && go list -m -f '{{.Version}}' "$mod")
	ldflags=$(ldflags_for "$mod" "$version")
	stamp=$( { echo "$goversion $pkg $ldflags"; cat "$moddir/go.mod" "$moddir/go.sum"; } | sha256sum | cut -d' ' -f1)
	if [ -x "$bin/$name" ] && [ "$(cat "$bin/.stamps/$name" 2>/dev/null)" = "$stamp" ]; then
		echo "tools: $name $version up to date"
		continue
	fi
	echo "tools: building $name $version (from $dir) ..."
	start=$(date +%s)
	# A cold build of the large components takes minutes: show that it moves.
	( while sleep 30; do echo "tools:   ... still building $name ($(( $(date +%s) - start ))s)"; done ) &
	ticker=$!
	status=0
	log=$(mktemp)
	(cd "$moddir" && go build -trimpath -ldflags "$ldflags" -o "$bin/$name.tmp" "$pkg") >"$log" 2>&1 || status=$?
	kill "$ticker" 2>/dev/null; wait "$ticker" 2>/dev/null || true
	downloads=$(grep -c '^go: downloading' "$log" || true)
	if [ "$downloads" -gt 0 ]; then echo "tools:   downloaded $downloads modules for $name"; fi
	if [ $status -ne 0 ]; then
		grep -v '^go: downloading' "$log" >&2 || true
		rm -f "$bin/$name.tmp" "$log"
		echo "tools: building $name failed (go build output above)" >&2
		exit $status
	fi
	grep -v '^go: downloading' "$log" || true
	rm -f "$log"
	mv "$bin/$name.tmp" "$bin/$name"
	echo "$stamp" >"$bin/.stamps/$name"
	echo "tools: built $name $version in $(( $(date +%s) - start ))s"
	built=$((built + 1))
done

if [ $built -gt 0 ]; then
	echo "tools: built $built tool(s) in $(( $(date +%s) - total_start ))s into bin/"
fi
