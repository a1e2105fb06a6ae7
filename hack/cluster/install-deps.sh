#!/usr/bin/env bash
# Installs the Debian packages the one-node e2e cluster runs on, where missing: containerd (1.6,
# run by hack/cluster with its own config and state, never as the system service), runc, the CNI
# plugins (bridge, host-local, loopback in /usr/lib/cni), iptables (the kubelet's and
# kube-proxy's chains), conntrack (kube-proxy) and nftables (nft, with which the teardown removes
# the nf_tables tables iptables-nft created). Needs root, as the cluster does.
set -euo pipefail

pkgs=(containerd runc containernetworking-plugins iptables conntrack nftables)
missing=()
for p in "${pkgs[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
((${#missing[@]})) || exit 0

echo "hack/cluster/install-deps.sh: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt=(apt-get -o DPkg::Lock::Timeout=600 -q)
"${apt[@]}" update
# --no-install-recommends keeps it to these packages. No system containerd is started: the cluster
# runs its own with its own config (hack/cluster/up.sh).
"${apt[@]}" install -y --no-install-recommends "${missing[@]}"
