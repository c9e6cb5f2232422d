#!/usr/bin/env bash
# A real single-node Kubernetes cluster on this machine, the way Kubernetes'
# own hack/local-up-cluster.sh runs one, for machines where kind cannot run:
#
#   deploy/cluster/cluster.sh up      start it (idempotent: a running cluster is kept)
#   deploy/cluster/cluster.sh down    stop it and undo everything it changed
#   deploy/cluster/cluster.sh status  what runs
#
# The control-plane components (etcd, kube-apiserver, kube-controller-manager,
# kube-scheduler) are the pinned builds in bin/. The node is its own network
# namespace, joined to the machine by a veth pair: containerd, runc and the CNI
# plugins (Debian's packages), the kubelet, kube-proxy (iptables mode) and
# every pod live inside it. Every address is in the benchmarking range
# 198.18.0.0/15 and the node namespace has no default route, so no cluster
# traffic can leave the machine:
#
#   198.18.255.1/30  the machine's end of the veth: kube-apiserver listens here
#   198.18.255.2/30  the node's end: the kubelet, the node's InternalIP
#   198.18.0.0/24    pods (bridge bh-cni0 in the node namespace, host-local IPAM)
#   198.19.0.0/24    Services (198.19.0.1 kubernetes, 198.19.0.10 cluster DNS)
#
# State (certificates, etcd, containerd, kubelet, logs) lives in
# .bulkhead/cluster/; the kubeconfig is .bulkhead/cluster/admin.kubeconfig.
set -euo pipefail

root=$(cd "$(dirname "$0")/../.." && pwd)
bin="$root/bin"
S="$root/.bulkhead/cluster"
NETNS=bulkhead-node
NODE=bulkhead-node
HOST_IF=bh-host
NODE_IF=bh-node
HOST_IP=198.18.255.1
NODE_IP=198.18.255.2
POD_CIDR=198.18.0.0/24
SERVICE_CIDR=198.19.0.0/24
DNS_IP=198.19.0.10
API_PORT=6443
ETCD_PORT=12379
ETCD_PEER_PORT=12380
K8S_VERSION=$(cd "$root/tools/kube" && go list -m -f '{{.Version}}' k8s.io/kubernetes)
PAUSE_IMAGE=registry.k8s.io/pause:3.10.2-bulkhead
KUBECONFIG_ADMIN="$S/admin.kubeconfig"

say() { echo "cluster: $*"; }
die() { echo "cluster: $*" >&2; exit 1; }

need_root() {
	[ "$(id -u)" -eq 0 ] || die "must run as root: it creates a network namespace, runs containerd and a kubelet (run: sudo $0 $*)"
}

in_node() { nsenter --net="/run/netns/$NETNS" -- "$@"; }

# --- processes -------------------------------------------------------------

# start NAME [--node] CMD...: runs CMD in the background, detached from this
# shell (it outlives `make cluster-up`), logging to $S/logs/NAME.log.
start() {
	local name=$1; shift
	local wrap=()
	if [ "$1" = --node ]; then wrap=(nsenter --net="/run/netns/$NETNS" --); shift; fi
	if running "$name"; then say "$name already running (pid $(cat "$S/pids/$name"))"; return 0; fi
	mkdir -p "$S/logs" "$S/pids"
	setsid "${wrap[@]}" "$@" >>"$S/logs/$name.log" 2>&1 < /dev/null &
	echo $! >"$S/pids/$name"
	say "started $name (pid $!, log .bulkhead/cluster/logs/$name.log)"
}

running() { [ -f "$S/pids/$1" ] && kill -0 "$(cat "$S/pids/$1")" 2>/dev/null; }

stop() {
	local name=$1 pid i
	[ -f "$S/pids/$name" ] || return 0
	pid=$(cat "$S/pids/$name")
	if kill -0 "$pid" 2>/dev/null; then
		kill "$pid" 2>/dev/null || true
		for i in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
		kill -9 "$pid" 2>/dev/null || true
		say "stopped $name"
	fi
	rm -f "$S/pids/$name"
}

# wait_for WHAT SECONDS CMD...: retries CMD until it succeeds.
wait_for() {
	local what=$1 secs=$2 i; shift 2
	for i in $(seq 1 $((secs * 2))); do
		if "$@" >/dev/null 2>&1; then return 0; fi
		sleep 0.5
	done
	die "$what not ready after ${secs}s (logs in .bulkhead/cluster/logs/)"
}

# write FILE: stdin into FILE, only if its content changes (kube-proxy exits
# when its configuration file is rewritten).
write() {
	local tmp
	tmp=$(mktemp "$1.XXXXXX")
	cat >"$tmp"
	if cmp -s "$tmp" "$1"; then rm -f "$tmp"; else mv "$tmp" "$1"; fi
}

# --- prerequisites -----------------------------------------------------------

packages() {
	local missing=() p
	for p in containerd runc containernetworking-plugins iptables conntrack openssl gcc libc6-dev; do
		dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
	done
	if [ ${#missing[@]} -eq 0 ]; then say "packages present (containerd, runc, CNI plugins, iptables, conntrack)"; return 0; fi
	say "installing ${missing[*]} from the distro archive"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq && apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
	# The Debian package may start a system containerd; the cluster runs its own.
	if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet containerd 2>/dev/null; then systemctl stop containerd || true; fi
}

tools() {
	"$root/tools/build.sh" etcd kube-apiserver kube-controller-manager kube-scheduler kubelet kube-proxy kubectl coredns images
}

# --- certificates --------------------------------------------------------------

# cert NAME CN O [SANs]: a key and a certificate signed by the cluster CA.
cert() {
	local name=$1 cn=$2 o=$3 sans=${4:-}
	[ -f "$S/pki/$name.crt" ] && return 0
	local ext="$S/pki/$name.ext"
	{
		echo "basicConstraints=CA:FALSE"
		echo "keyUsage=critical,digitalSignature,keyEncipherment"
		echo "extendedKeyUsage=serverAuth,clientAuth"
		[ -n "$sans" ] && echo "subjectAltName=$sans"
	} >"$ext"
	local subj="/CN=$cn"
	[ -n "$o" ] && subj="/O=$o/CN=$cn"
	openssl req -new -newkey rsa:2048 -nodes -keyout "$S/pki/$name.key" -subj "$subj" -out "$S/pki/$name.csr" 2>/dev/null
	openssl x509 -req -in "$S/pki/$name.csr" -CA "$S/pki/ca.crt" -CAkey "$S/pki/ca.key" -CAcreateserial \
		-days 365 -extfile "$ext" -out "$S/pki/$name.crt" 2>/dev/null
	rm -f "$S/pki/$name.csr" "$ext"
	chmod 600 "$S/pki/$name.key"
}

kubeconfig() {
	local name=$1
	cat >"$S/$name.kubeconfig" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: bulkhead-local
  cluster: {server: "https://$HOST_IP:$API_PORT", certificate-authority: "$S/pki/ca.crt"}
users:
- name: $name
  user: {client-certificate: "$S/pki/$name.crt", client-key: "$S/pki/$name.key"}
contexts:
- name: bulkhead-local
  context: {cluster: bulkhead-local, user: $name}
current-context: bulkhead-local
EOF
	chmod 600 "$S/$name.kubeconfig"
}

pki() {
	mkdir -p "$S/pki"
	chmod 700 "$S/pki"
	if [ ! -f "$S/pki/ca.crt" ]; then
		openssl req -x509 -new -newkey rsa:2048 -nodes -keyout "$S/pki/ca.key" -subj "/CN=bulkhead-local-ca" \
			-days 3650 -out "$S/pki/ca.crt" 2>/dev/null
		chmod 600 "$S/pki/ca.key"
		say "made the cluster CA"
	fi
	[ -f "$S/pki/sa.key" ] || { openssl genrsa -out "$S/pki/sa.key" 2048 2>/dev/null; openssl rsa -in "$S/pki/sa.key" -pubout -out "$S/pki/sa.pub" 2>/dev/null; }
	cert kube-apiserver kube-apiserver "" "IP:$HOST_IP,IP:198.19.0.1,IP:127.0.0.1,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local"
	cert apiserver-kubelet-client kube-apiserver-kubelet-client system:masters
	cert admin bulkhead-admin system:masters
	cert controller-manager system:kube-controller-manager ""
	cert scheduler system:kube-scheduler ""
	cert kube-proxy system:kube-proxy ""
	cert kubelet "system:node:$NODE" system:nodes
	# The kubelet's serving certificate names the node's address, or logs,
	# exec and port-forward through the API server fail.
	cert kubelet-serving "$NODE" "" "IP:$NODE_IP,DNS:$NODE"
	local k
	for k in admin controller-manager scheduler kube-proxy kubelet; do kubeconfig "$k"; done
}

# --- the network: the node's namespace ---------------------------------------------

network() {
	if [ ! -e "/run/netns/$NETNS" ]; then
		# Remember whether /run/netns was a mount before us (ip netns makes it one).
		mountpoint -q /run/netns 2>/dev/null && echo yes >"$S/run-netns-was-mounted" || echo no >"$S/run-netns-was-mounted"
		ip netns add "$NETNS"
		say "made network namespace $NETNS"
	fi
	if ! ip link show "$HOST_IF" >/dev/null 2>&1; then
		ip link add "$HOST_IF" type veth peer name "$NODE_IF"
		ip link set "$NODE_IF" netns "$NETNS"
		ip addr add "$HOST_IP/30" dev "$HOST_IF"
		ip link set "$HOST_IF" up
		in_node ip addr add "$NODE_IP/30" dev "$NODE_IF"
		in_node ip link set "$NODE_IF" up
		in_node ip link set lo up
		say "joined it to this machine: $HOST_IF $HOST_IP <-> $NODE_IF $NODE_IP"
	fi
	# The machine reaches pods and Services through the node (and nothing else
	# routes there); the node has no default route: nothing leaves.
	ip route replace "$POD_CIDR" via "$NODE_IP" dev "$HOST_IF"
	ip route replace "$SERVICE_CIDR" via "$NODE_IP" dev "$HOST_IF"
	in_node sysctl -qw net.ipv4.ip_forward=1
	in_node sysctl -qw net.bridge.bridge-nf-call-iptables=1 2>/dev/null || true
}

# --- the control plane ------------------------------------------------------------

control_plane() {
	mkdir -p "$S/etcd"
	chmod 700 "$S/etcd"
	start etcd "$bin/etcd" --name=bulkhead-local --data-dir="$S/etcd" \
		--listen-client-urls="http://127.0.0.1:$ETCD_PORT" --advertise-client-urls="http://127.0.0.1:$ETCD_PORT" \
		--listen-peer-urls="http://127.0.0.1:$ETCD_PEER_PORT" --initial-advertise-peer-urls="http://127.0.0.1:$ETCD_PEER_PORT" \
		--initial-cluster="bulkhead-local=http://127.0.0.1:$ETCD_PEER_PORT" --log-level=warn
	wait_for etcd 30 curl -sf "http://127.0.0.1:$ETCD_PORT/health"
	start kube-apiserver "$bin/kube-apiserver" \
		--etcd-servers="http://127.0.0.1:$ETCD_PORT" \
		--bind-address="$HOST_IP" --advertise-address="$HOST_IP" --secure-port="$API_PORT" \
		--service-cluster-ip-range="$SERVICE_CIDR" \
		--client-ca-file="$S/pki/ca.crt" \
		--tls-cert-file="$S/pki/kube-apiserver.crt" --tls-private-key-file="$S/pki/kube-apiserver.key" \
		--kubelet-client-certificate="$S/pki/apiserver-kubelet-client.crt" --kubelet-client-key="$S/pki/apiserver-kubelet-client.key" \
		--kubelet-certificate-authority="$S/pki/ca.crt" --kubelet-preferred-address-types=InternalIP \
		--service-account-key-file="$S/pki/sa.pub" --service-account-signing-key-file="$S/pki/sa.key" \
		--service-account-issuer="https://kubernetes.default.svc.cluster.local" \
		--authorization-mode=Node,RBAC --enable-admission-plugins=NodeRestriction \
		--allow-privileged=false --v=1
	wait_for kube-apiserver 90 "$bin/kubectl" --kubeconfig="$KUBECONFIG_ADMIN" get --raw /readyz
	start kube-controller-manager "$bin/kube-controller-manager" \
		--kubeconfig="$S/controller-manager.kubeconfig" \
		--authentication-kubeconfig="$S/controller-manager.kubeconfig" --authorization-kubeconfig="$S/controller-manager.kubeconfig" \
		--controllers='*,-nodeipam' --use-service-account-credentials=true \
		--service-account-private-key-file="$S/pki/sa.key" --root-ca-file="$S/pki/ca.crt" \
		--flex-volume-plugin-dir="$S/kubelet-plugins" \
		--cluster-signing-cert-file="$S/pki/ca.crt" --cluster-signing-key-file="$S/pki/ca.key" \
		--service-cluster-ip-range="$SERVICE_CIDR" --cluster-cidr="$POD_CIDR" \
		--bind-address=127.0.0.1 --secure-port=10257 --cert-dir="$S/controller-manager" --leader-elect=false --v=1
	start kube-scheduler "$bin/kube-scheduler" \
		--kubeconfig="$S/scheduler.kubeconfig" \
		--authentication-kubeconfig="$S/scheduler.kubeconfig" --authorization-kubeconfig="$S/scheduler.kubeconfig" \
		--bind-address=127.0.0.1 --secure-port=10259 --leader-elect=false --v=1
}

# --- the node -----------------------------------------------------------------------

pause_image() {
	local tar="$S/images/pause.tar"
	[ -f "$tar" ] && return 0
	mkdir -p "$S/images" "$S/build"
	local src
	src=$(cd "$root/tools/kube" && go list -m -f '{{.Dir}}' k8s.io/kubernetes)/build/pause/linux/pause.c
	# As build/pause/Makefile does: a static binary, the version in its output.
	gcc -Os -Wall -Werror -static -DVERSION="v3.10.2-bulkhead-$K8S_VERSION" -o "$S/build/pause" "$src"
	"$bin/images" -ref "$PAUSE_IMAGE" -o "$tar" -file "$S/build/pause:/pause:0755" -entrypoint /pause
}

containerd_config() {
	mkdir -p "$S/containerd" "$S/cni/net.d" "$S/cni/ipam"
	write "$S/containerd/config.toml" <<EOF
# Written by deploy/cluster/cluster.sh.
version = 2
root = "$S/containerd/root"
state = "$S/containerd/state"
[grpc]
  address = "$S/containerd/containerd.sock"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "$PAUSE_IMAGE"
  # The sandbox cannot raise its own OOM score adjustment (no CAP_SYS_RESOURCE
  # here): without this every pod sandbox fails in runc create.
  restrict_oom_score_adj = true
  enable_selinux = false
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "$S/cni/net.d"
  [plugins."io.containerd.grpc.v1.cri".registry]
    config_path = ""
EOF
	write "$S/cni/net.d/10-bulkhead.conflist" <<EOF
{
  "cniVersion": "1.0.0",
  "name": "bulkhead",
  "plugins": [
    {
      "type": "bridge", "bridge": "bh-cni0", "isGateway": true, "isDefaultGateway": true,
      "ipMasq": false, "hairpinMode": true,
      "ipam": {"type": "host-local", "dataDir": "$S/cni/ipam", "ranges": [[{"subnet": "$POD_CIDR"}]]}
    },
    {"type": "portmap", "capabilities": {"portMappings": true}}
  ]
}
EOF
}

kubelet_config() {
	mkdir -p "$S/kubelet" "$S/pod-logs" "$S/kubelet-plugins"
	write "$S/kubelet/config.yaml" <<EOF
# Written by deploy/cluster/cluster.sh.
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: $NODE_IP
port: 10250
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: true}
  x509: {clientCAFile: "$S/pki/ca.crt"}
authorization: {mode: Webhook}
tlsCertFile: "$S/pki/kubelet-serving.crt"
tlsPrivateKeyFile: "$S/pki/kubelet-serving.key"
containerRuntimeEndpoint: "unix://$S/containerd/containerd.sock"
cgroupDriver: cgroupfs
failCgroupV1: false
failSwapOn: false
resolvConf: ""
clusterDNS: [$DNS_IP]
clusterDomain: cluster.local
podLogsDir: "$S/pod-logs"
volumePluginDir: "$S/kubelet-plugins"
serializeImagePulls: false
imageGCHighThresholdPercent: 100
evictionHard: {memory.available: "100Mi", nodefs.available: "1%", imagefs.available: "1%", nodefs.inodesFree: "1%"}
maxPods: 60
EOF
}

node() {
	# What the kubelet changes on the machine, to restore at down.
	if [ ! -f "$S/sysctls.saved" ]; then
		{ for k in kernel.panic kernel.panic_on_oops vm.overcommit_memory; do echo "$k=$(sysctl -n "$k")"; done; } >"$S/sysctls.saved"
	fi
	# Paths the kubelet and containerd use whatever they are told: removed at
	# down if they were not there before.
	local p
	for p in /var/lib/kubelet /var/lib/cni /var/log/pods /var/log/containers /usr/libexec/kubernetes; do
		[ -e "$p" ] || grep -qxF "$p" "$S/made-paths" 2>/dev/null || echo "$p" >>"$S/made-paths"
	done
	containerd_config
	start containerd --node containerd --config "$S/containerd/config.toml"
	wait_for containerd 30 ctr --address "$S/containerd/containerd.sock" version
	pause_image
	ctr --address "$S/containerd/containerd.sock" -n k8s.io images import --no-unpack=false "$S/images/pause.tar" >/dev/null
	kubelet_config
	start kubelet --node "$bin/kubelet" --config="$S/kubelet/config.yaml" --kubeconfig="$S/kubelet.kubeconfig" \
		--root-dir="$S/kubelet/root" --hostname-override="$NODE" --node-ip="$NODE_IP" --v=1
	write "$S/kube-proxy.yaml" <<EOF
apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
mode: iptables
clusterCIDR: $POD_CIDR
hostnameOverride: $NODE
bindAddress: $NODE_IP
healthzBindAddress: 127.0.0.1:10256
metricsBindAddress: 127.0.0.1:10249
clientConnection: {kubeconfig: "$S/kube-proxy.kubeconfig"}
# Leave the machine's conntrack sysctls alone.
conntrack: {maxPerCore: 0, min: 0, tcpEstablishedTimeout: 0s, tcpCloseWaitTimeout: 0s}
EOF
	start kube-proxy --node "$bin/kube-proxy" --config="$S/kube-proxy.yaml" --v=1
	wait_for "node $NODE" 90 sh -c "'$bin/kubectl' --kubeconfig='$KUBECONFIG_ADMIN' get node '$NODE' -o jsonpath='{.status.conditions[?(@.type==\"Ready\")].status}' | grep -q True"
	say "node $NODE Ready ($K8S_VERSION)"
}

# addons: cluster DNS and storage.
addons() {
	local k=("$bin/kubectl" --kubeconfig="$KUBECONFIG_ADMIN")
	if ! ctr --address "$S/containerd/containerd.sock" -n k8s.io images ls -q | grep -qx "docker.io/bulkhead/coredns:local"; then
		"$bin/images" -ref bulkhead/coredns:local -o "$S/images/coredns.tar" -file "$bin/coredns:/usr/bin/coredns:0755" -libs /usr/bin/coredns -entrypoint /usr/bin/coredns >/dev/null
		ctr --address "$S/containerd/containerd.sock" -n k8s.io images import "$S/images/coredns.tar" >/dev/null
	fi
	"${k[@]}" apply -f "$root/deploy/cluster/coredns.yaml" -f "$root/deploy/cluster/storage.yaml" >/dev/null
	# PersistentVolumes: directories owned by the user every image runs as.
	local i pvs=""
	for i in $(seq 0 7); do
		mkdir -p "$S/volumes/pv-$i"
		chown 65532:65532 "$S/volumes/pv-$i"
		chmod 0700 "$S/volumes/pv-$i"
		pvs+="---
apiVersion: v1
kind: PersistentVolume
metadata: {name: local-pv-$i, labels: {app.kubernetes.io/part-of: bulkhead-local-cluster}}
spec:
  capacity: {storage: 5Gi}
  accessModes: [ReadWriteOnce]
  storageClassName: local
  persistentVolumeReclaimPolicy: Retain
  hostPath: {path: \"$S/volumes/pv-$i\", type: Directory}
"
	done
	echo "$pvs" | "${k[@]}" apply -f - >/dev/null
	"${k[@]}" -n kube-system rollout status deploy/coredns --timeout=120s >/dev/null
	say "cluster DNS (CoreDNS at $DNS_IP) and storage (StorageClass local, 8 volumes) ready"
}

up() {
	need_root up
	mkdir -p "$S"
	packages
	tools
	pki
	network
	control_plane
	node
	addons
	say "up: export KUBECONFIG=$KUBECONFIG_ADMIN; kubectl get nodes"
}

# --- down: undo everything ------------------------------------------------------------

down() {
	need_root down
	[ -d "$S" ] || { say "nothing to stop"; return 0; }
	# Pods first, while the kubelet and the runtime still run: deleting the
	# node's pods lets the kubelet tear their sandboxes down (CNI DEL).
	local sock="$S/containerd/containerd.sock"
	stop kube-proxy
	stop kubelet
	if [ -S "$sock" ] && running containerd; then
		local t
		for t in $(ctr --address "$sock" -n k8s.io tasks ls -q 2>/dev/null); do
			ctr --address "$sock" -n k8s.io tasks kill -s KILL "$t" >/dev/null 2>&1 || true
		done
	fi
	stop containerd
	# Whatever a container left (shims, pause processes).
	pkill -9 -f "containerd-shim-runc-v2 -namespace k8s.io" 2>/dev/null || true
	stop kube-scheduler
	stop kube-controller-manager
	stop kube-apiserver
	stop etcd
	# Mounts under the state directory (overlay rootfs, volumes, netns binds).
	local m p
	for m in $(awk '{print $2}' /proc/mounts | grep -F "$S/" | sort -r); do umount -l "$m" 2>/dev/null || true; done
	for m in $(awk '{print $2}' /proc/mounts | grep '^/run/netns/cni-' | sort -r); do umount -l "$m" 2>/dev/null || true; rm -f "$m"; done
	rm -f /run/netns/cni-* 2>/dev/null || true
	# The network: deleting the namespace removes the veth, the bridge and the
	# iptables rules kube-proxy and the kubelet made there.
	ip route del "$POD_CIDR" 2>/dev/null || true
	ip route del "$SERVICE_CIDR" 2>/dev/null || true
	ip link del "$HOST_IF" 2>/dev/null || true
	if [ -e "/run/netns/$NETNS" ]; then ip netns del "$NETNS"; say "removed network namespace $NETNS"; fi
	if [ "$(cat "$S/run-netns-was-mounted" 2>/dev/null)" = no ] && mountpoint -q /run/netns && [ -z "$(ls -A /run/netns)" ]; then
		umount /run/netns 2>/dev/null || true
		umount /run/netns 2>/dev/null || true
	fi
	# cgroups the kubelet and containerd made, deepest first.
	local h
	for h in /sys/fs/cgroup/*/; do
		for m in kubepods k8s.io; do
			[ -d "$h$m" ] && find "$h$m" -depth -type d -exec rmdir {} \; 2>/dev/null || true
		done
	done
	# Sysctls the kubelet changed.
	if [ -f "$S/sysctls.saved" ]; then
		while IFS= read -r kv; do sysctl -qw "$kv" || true; done <"$S/sysctls.saved"
		rm -f "$S/sysctls.saved"
	fi
	if [ -f "$S/made-paths" ]; then
		while IFS= read -r p; do rm -rf "$p"; done <"$S/made-paths"
		rm -f "$S/made-paths"
	fi
	# Runtime state: the next up starts clean (certificates are kept).
	rm -rf "$S/containerd" "$S/kubelet" "$S/etcd" "$S/cni" "$S/pod-logs" "$S/kubelet-plugins" "$S/pids" "$S/controller-manager" "$S/volumes"
	# Check what is left, rather than assume.
	local left=()
	for n in etcd kube-apiserver kube-controller-manager kube-scheduler containerd kubelet kube-proxy; do
		pgrep -f "$bin/$n |^containerd --config $S" >/dev/null 2>&1 && left+=("process $n")
	done
	pgrep -f "containerd-shim-runc-v2 -namespace k8s.io" >/dev/null 2>&1 && left+=("containerd shims")
	ip link show "$HOST_IF" >/dev/null 2>&1 && left+=("link $HOST_IF")
	[ -e "/run/netns/$NETNS" ] && left+=("network namespace $NETNS")
	grep -qF "$S/" /proc/mounts && left+=("mounts under $S")
	for h in /sys/fs/cgroup/*/; do [ -d "${h}kubepods" ] && left+=("cgroup ${h}kubepods"); done
	if [ ${#left[@]} -gt 0 ]; then
		die "down: left behind: ${left[*]}"
	fi
	say "down: nothing of the cluster runs or is left on the machine; .bulkhead/cluster keeps certificates, images and logs"
}

# status: what runs; exit status 1 unless everything does.
status() {
	local n rc=0
	for n in etcd kube-apiserver kube-controller-manager kube-scheduler containerd kubelet kube-proxy; do
		if running "$n"; then echo "  $n running (pid $(cat "$S/pids/$n"))"; else echo "  $n not running"; rc=1; fi
	done
	return $rc
}

case "${1:-}" in
up) up ;;
down) down ;;
status) status ;;
*) echo "usage: $0 up|down|status" >&2; exit 2 ;;
esac
