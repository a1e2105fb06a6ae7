#!/usr/bin/env bash
# Stops the one-node e2e cluster that hack/cluster/up.sh started under $DIR and undoes every
# change it made to the host: kills the daemons and the pods' processes (by the pid files and
# the cgroups of this cluster, never by name), unmounts what the kubelet and containerd mounted,
# removes the kubepods cgroups, the iptables chains and nf_tables tables the kubelet and
# kube-proxy created, the bridge, the paths outside $DIR that did not exist before, restores the
# saved sysctls, and removes $DIR (its logs are kept in $DIR-logs). Safe to run twice, and on a
# half-started cluster.
set -uo pipefail
source "$(dirname "$0")/lib.sh"

[[ -d $DIR ]] || { log "no cluster at $DIR"; exit 0; }
start_time=$SECONDS

# running PID: the process exists and is not a zombie (the daemons' parent, up.sh, is gone, and
# whoever inherited them may reap them late).
running() {
	local stat
	stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
	[[ ${stat##*) } != Z* ]]
}

# stop NAME SECONDS: SIGTERM the daemon of run/NAME.pid, SIGKILL it after SECONDS.
stop() {
	local name=$1 secs=$2 pid deadline
	[[ -f $DIR/run/$name.pid ]] || return 0
	pid=$(<"$DIR/run/$name.pid")
	rm -f "$DIR/run/$name.pid"
	kill -TERM "$pid" 2>/dev/null || return 0
	deadline=$((SECONDS + secs))
	while running "$pid" && ((SECONDS < deadline)); do sleep 0.1; done
	running "$pid" && kill -KILL "$pid" 2>/dev/null && log "killed $name (pid $pid) after ${secs}s"
	while running "$pid"; do sleep 0.1; done
	((SECONDS - deadline + secs < 2)) || log "stopped $name in $((SECONDS - deadline + secs))s"
}

# kill_cgroup_procs: SIGKILL every process in this cluster's kubepods cgroups (the pods).
kill_cgroup_procs() {
	local pids
	pids=$(cat /sys/fs/cgroup/pids/kubepods/cgroup.procs /sys/fs/cgroup/pids/kubepods/**/cgroup.procs 2>/dev/null | sort -u)
	[[ -n $pids ]] && kill -KILL $pids 2>/dev/null
	return 0
}
shopt -s globstar nullglob

stop provisioner 5
stop kube-proxy 5
stop kubelet 10
kill_cgroup_procs
stop kube-controller-manager 5
stop kube-scheduler 5
stop kube-apiserver 10
stop etcd 10

# The containerd shims are daemons of their own; they name this cluster's socket in their
# command line.
for p in /proc/[0-9]*; do
	if tr '\0' ' ' 2>/dev/null <"$p/cmdline" | grep -q -- "-address $SOCK "; then
		kill -KILL "${p#/proc/}" 2>/dev/null
	fi
done
kill_cgroup_procs
stop containerd 10

# kube-proxy removes its own rules (iptables, ipvs, nftables modes).
[[ -x $KBIN/kube-proxy ]] && "$KBIN/kube-proxy" --cleanup >"$DIR/logs/kube-proxy-cleanup.log" 2>&1

# Mounts: pod volumes, the kubelet's bind mount of its root dir, containerd's rootfs and shm
# mounts, the netns pins. Deepest first; a busy one is detached lazily.
for i in 1 2 3; do
	mapfile -t mounts < <(findmnt -rn -o TARGET | grep -E "^($DIR/|/run/containerd/|/run/netns/cni-|/var/lib/kubelet/)" | sort -r)
	((${#mounts[@]})) || break
	for m in "${mounts[@]}"; do umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null; done
done
rm -f /run/netns/cni-*

# cgroups of the pods and the QoS classes, leaves first.
for c in /sys/fs/cgroup/*/kubepods; do
	grep -qx "$c" "$DIR/host/cgroups" 2>/dev/null && continue
	find "$c" -depth -type d -exec rmdir {} + 2>/dev/null
done

# iptables: the KUBE-* chains and the rules that jump to them, in both families and every
# table; then the nf_tables tables that did not exist before up.sh (iptables-nft made them).
for ipt in iptables ip6tables; do
	for table in filter nat mangle raw; do
		$ipt -t "$table" -S 2>/dev/null | grep -E '^-A [A-Z]+ .*-j KUBE-' | grep -vE '^-A KUBE-' |
			while read -r rule; do eval "$ipt -t $table ${rule/-A/-D}" 2>/dev/null; done
		for chain in $($ipt -t "$table" -S 2>/dev/null | awk '$1 == "-N" && $2 ~ /^KUBE-/ { print $2 }'); do
			$ipt -t "$table" -F "$chain" 2>/dev/null
		done
		for chain in $($ipt -t "$table" -S 2>/dev/null | awk '$1 == "-N" && $2 ~ /^KUBE-/ { print $2 }'); do
			$ipt -t "$table" -X "$chain" 2>/dev/null
		done
	done
done
if [[ -f $DIR/host/nft-tables ]]; then
	nft list tables 2>/dev/null | while read -r _ family name; do
		grep -qx "table $family $name" "$DIR/host/nft-tables" || nft delete table "$family" "$name"
	done
fi

ip link del "$BRIDGE" 2>/dev/null

if [[ -f $DIR/host/sysctls ]]; then
	while IFS== read -r key value; do
		[[ $(sysctl -n "$key" 2>/dev/null) == "$value" ]] || sysctl -qw "$key=$value"
	done <"$DIR/host/sysctls"
fi

# Paths outside DIR: gone if they were not there before, else only this cluster's entries.
for p in "${HOST_PATHS[@]}"; do
	[[ -e $p ]] || continue
	if [[ -f $DIR/host/paths ]] && ! grep -qx "$p" "$DIR/host/paths"; then
		rm -rf "$p"
	fi
done
rm -f /var/lib/cni/results/kubemail-e2e-* 2>/dev/null

rm -rf "$DIR-logs"
mv "$DIR/logs" "$DIR-logs" 2>/dev/null
if ! rm -rf "$DIR" 2>/dev/null; then
	log "could not remove all of $DIR: $(findmnt -rn -o TARGET | grep "^$DIR" | head -3)"
	exit 1
fi
log "cluster stopped and host restored in $((SECONDS - start_time))s (logs in $DIR-logs)"
