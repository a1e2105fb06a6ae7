#!/usr/bin/env bash
# Builds the kube-apiserver and etcd binaries that envtest runs, from the Go module proxy, into
# bin/k8s (or $1), and prints KUBEBUILDER_ASSETS=<dir>. The versions are pinned by the wrapper
# modules hack/k8s/go.mod (k8s.io/kubernetes) and hack/k8s/etcd/go.mod (go.etcd.io/etcd/server);
# see hack/k8s/README.md. A build is skipped while the binaries are present and were built from
# the same go.mod/go.sum (a stamp of their hashes sits beside them), so the ~5 minute compile of
# kube-apiserver happens once per machine and again only when a pin changes.
set -euo pipefail
cd "$(dirname "$0")/.."

out=${1:-bin/k8s}
mkdir -p "$out"
out=$(cd "$out" && pwd)

# The version kube-apiserver reports; envtest and clients read it from /version.
k8s_version=$(awk '$1 == "k8s.io/kubernetes" { print $2; exit }' hack/k8s/go.mod)
if [[ ! $k8s_version =~ ^v([0-9]+)\.([0-9]+)\.[0-9]+$ ]]; then
	echo "hack/envtest.sh: cannot read the k8s.io/kubernetes version from hack/k8s/go.mod" >&2
	exit 1
fi
ldflags="-s -w -X k8s.io/component-base/version.gitVersion=${k8s_version}"
ldflags+=" -X k8s.io/component-base/version.gitMajor=${BASH_REMATCH[1]}"
ldflags+=" -X k8s.io/component-base/version.gitMinor=${BASH_REMATCH[2]}"

# build NAME MODULE_DIR PACKAGE [LDFLAGS]: go build PACKAGE inside MODULE_DIR into $out/NAME.
build() {
	local name=$1 dir=$2 pkg=$3 flags=${4:-}
	local stamp
	stamp=$(cat "$dir/go.mod" "$dir/go.sum" | sha256sum | cut -d' ' -f1)
	if [[ -x $out/$name && -f $out/.$name.stamp && $(<"$out/.$name.stamp") == "$stamp" ]]; then
		echo "hack/envtest.sh: $out/$name is up to date" >&2
		return
	fi
	echo "hack/envtest.sh: building $pkg into $out/$name (takes minutes)" >&2
	local start=$SECONDS
	(cd "$dir" && go build -trimpath -ldflags "$flags" -o "$out/$name.tmp" "$pkg")
	mv "$out/$name.tmp" "$out/$name"
	echo "$stamp" >"$out/.$name.stamp"
	echo "hack/envtest.sh: built $out/$name in $((SECONDS - start))s" >&2
}

build etcd hack/k8s/etcd go.etcd.io/etcd/server/v3 "-s -w"
build kube-apiserver hack/k8s k8s.io/kubernetes/cmd/kube-apiserver "$ldflags"

echo "KUBEBUILDER_ASSETS=$out"
