# Shared settings of hack/cluster/up.sh and down.sh (sourced, not run). See README.md.

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
# Every file of the cluster lives under DIR: PKI, configs, etcd, containerd's root and state,
# the kubelet's root, pod volumes, logs and pid files.
DIR=${KUBEMAIL_CLUSTER_DIR:-/tmp/kubemail-cluster}
KBIN=${KUBEMAIL_K8S_BIN:-$REPO/bin/k8s}
IMAGES=${KUBEMAIL_CLUSTER_IMAGES:-$REPO/bin/cluster-images}

# The node lives on its own bridge: the kubelet and the apiserver refuse loopback addresses.
BRIDGE=rn0
NODE_IP=10.244.0.1
POD_CIDR=10.244.0.0/24
SERVICE_CIDR=10.96.0.0/16
API_SERVICE_IP=10.96.0.1
DNS_SERVICE_IP=10.96.0.10
NODE_NAME=kubemail-node
API_PORT=6443
ETCD_PORT=23790 ETCD_PEER_PORT=23800 # not etcd's defaults, so a stray etcd cannot collide
PAUSE_IMAGE=kubemail.local/pause:e2e
COREDNS_IMAGE=kubemail.local/coredns:e2e
STORAGE_CLASS=kubemail-local

SOCK=$DIR/containerd/containerd.sock
export KUBECONFIG=$DIR/pki/admin.kubeconfig

# The sysctls the kubelet, the CNI bridge plugin and kube-proxy change; down.sh puts back the
# values up.sh saved in $DIR/host/sysctls.
SYSCTLS=(vm.overcommit_memory kernel.panic kernel.panic_on_oops net.ipv4.ip_forward
	net.ipv4.conf.all.route_localnet net.bridge.bridge-nf-call-iptables
	net.bridge.bridge-nf-call-ip6tables)
# Paths outside DIR that the kubelet, containerd, runc and the CNI plugins write and that cannot
# be configured away; down.sh removes those that did not exist before up.sh (listed in
# $DIR/host/paths) and cleans what the cluster left in the others.
HOST_PATHS=(/var/lib/kubelet /var/lib/cni /run/containerd /run/netns /var/log/pods
	/var/log/containers /opt/containerd)

ts() { date -u +%H:%M:%S; }
log() { echo "$(ts) ${0##*/}: $*" >&2; }
die() { log "$*"; exit 1; }

# wait_for DESCRIPTION SECONDS COMMAND...: poll COMMAND every 0.2 s until it succeeds or the
# deadline passes.
wait_for() {
	local what=$1 secs=$2 deadline
	shift 2
	deadline=$((SECONDS + secs))
	until "$@" >/dev/null 2>&1; do
		((SECONDS < deadline)) || die "timed out after ${secs}s waiting for $what"
		sleep 0.2
	done
}

kubectl() { "$KBIN/kubectl" "$@"; }
ctr() { command ctr -a "$SOCK" -n k8s.io "$@"; }

# host_snapshot: the host state the cluster touches, as text; e2e.sh takes one before up.sh and
# one after down.sh and fails if they differ, so a teardown that leaves anything behind is a
# failed run, not a surprise for the next one.
host_snapshot() {
	local s p
	for s in "${SYSCTLS[@]}"; do echo "sysctl $s=$(sysctl -n "$s" 2>/dev/null)"; done
	for p in "${HOST_PATHS[@]}"; do [[ ! -e $p ]] || echo "path $p"; done
	{ ls -d /sys/fs/cgroup/*/kubepods 2>/dev/null | sed 's/^/cgroup /'; } || true
	{ iptables-save 2>/dev/null | grep -v '^#' | sed -E 's/\[[0-9]+:[0-9]+\]//; s/^/iptables /'; } || true
	{ ip6tables-save 2>/dev/null | grep -v '^#' | sed -E 's/\[[0-9]+:[0-9]+\]//; s/^/ip6tables /'; } || true
	{ nft list tables 2>/dev/null | sed 's/^/nft /'; } || true
	{ ip -o link show 2>/dev/null | awk '{ sub(/@.*/, "", $2); print "link", $2 }' | grep -E "$BRIDGE|veth"; } || true
	{ ip route show 2>/dev/null | grep -E "$BRIDGE|10\.96\." | sed 's/^/route /'; } || true
	{ findmnt -rn -o TARGET | grep -E "^($DIR|/run/containerd|/run/netns|/var/lib/kubelet)" | sed 's/^/mount /'; } || true
}
