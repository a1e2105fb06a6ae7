#!/usr/bin/env bash
# Builds the Kubernetes binaries of the one-node e2e cluster into bin/k8s (or $1), next to the
# kube-apiserver and etcd that hack/envtest.sh builds there: kubelet, kube-controller-manager,
# kube-scheduler and kube-proxy from the wrapper module hack/k8s (its go.mod pins
# k8s.io/kubernetes), kubectl from the same pins plus the few modules only kubectl imports
# (hack/cluster/kubectl.mod, used with -modfile so that hack/k8s/go.mod and with it the envtest
# stamp stay untouched), and crictl. A build is skipped while the binary is present and the stamp
# beside it (bin/k8s/.<name>.stamp, the hash of the go.mod/go.sum it was built from) matches.
set -euo pipefail
cd "$(dirname "$0")/../.."

out=${1:-bin/k8s}
mkdir -p "$out"
out=$(cd "$out" && pwd)
log() { echo "hack/cluster/build.sh: $*" >&2; }

k8s_version=$(awk '$1 == "k8s.io/kubernetes" { print $2; exit }' hack/k8s/go.mod)
if [[ ! $k8s_version =~ ^v([0-9]+)\.([0-9]+)\.[0-9]+$ ]]; then
	log "cannot read the k8s.io/kubernetes version from hack/k8s/go.mod"
	exit 1
fi
ldflags="-s -w -X k8s.io/component-base/version.gitVersion=${k8s_version}"
ldflags+=" -X k8s.io/component-base/version.gitMajor=${BASH_REMATCH[1]}"
ldflags+=" -X k8s.io/component-base/version.gitMinor=${BASH_REMATCH[2]}"
ldflags+=" -X k8s.io/client-go/pkg/version.gitVersion=${k8s_version}"

fresh() { # fresh NAME STAMP: the binary exists and was built from STAMP
	[[ -x $out/$1 && -f $out/.$1.stamp && $(<"$out/.$1.stamp") == "$2" ]]
}

# One modfile for all five: hack/k8s/go.mod's pins plus the modules only the node daemons and
# kubectl import (hack/k8s/go.sum covers kube-apiserver only). After a Kubernetes bump, copy
# hack/k8s/go.mod and go.sum to hack/cluster/k8s.mod and k8s.sum and run this script with
# K8S_MODFILE_UPDATE=1, which lets go build add the missing requirements and sums.
modfile=$PWD/hack/cluster/k8s.mod
mod=readonly
[[ -n ${K8S_MODFILE_UPDATE:-} ]] && mod=mod
stamp() { cat "$modfile" "${modfile%.mod}.sum" | sha256sum | cut -d' ' -f1; }

pkgs=() names=()
for name in kubelet kube-controller-manager kube-scheduler kube-proxy kubectl; do
	if fresh "$name" "$(stamp)"; then
		log "$out/$name is up to date"
	else
		names+=("$name") pkgs+=("k8s.io/kubernetes/cmd/$name")
	fi
done
if ((${#pkgs[@]})); then
	log "building ${names[*]} into $out (minutes: kubelet about 2 on 2 cores)"
	start=$SECONDS
	tmp=$(mktemp -d "$out/.build.XXXXXX")
	(cd hack/k8s && go build -mod=$mod -modfile="$modfile" -trimpath -ldflags "$ldflags" -o "$tmp/" "${pkgs[@]}")
	for name in "${names[@]}"; do
		mv "$tmp/$name" "$out/$name"
		stamp >"$out/.$name.stamp"
	done
	rmdir "$tmp"
	log "built ${names[*]} in $((SECONDS - start))s"
fi
