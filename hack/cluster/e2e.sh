#!/usr/bin/env bash
# The end-to-end test on a real one-node Kubernetes (make e2e): installs what is missing,
# builds what is not cached, starts the cluster, runs test/cluster, and tears the cluster down
# whatever happens (EXIT, INT, TERM). Prints the time of each phase. Needs root.
# Uses HELM (bin/helm, built by hack/operator.mk) and GO (go).
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$REPO"

GO=${GO:-go}
HELM=${HELM:-$REPO/bin/helm}
E2E_CLUSTER_TIMEOUT=${E2E_CLUSTER_TIMEOUT:-15m}
total=$SECONDS
phases=()
# phase NAME COMMAND...: run a step, record its duration.
phase() {
	local name=$1 start=$SECONDS
	shift
	log "phase $name started"
	"$@"
	phases+=("$(printf '%-28s %4ds' "$name" $((SECONDS - start)))")
	log "phase $name took $((SECONDS - start))s"
}
report() {
	local rc=$?
	trap - EXIT INT TERM
	if [[ -n ${cluster_started:-} ]]; then
		phase cluster-down "$REPO/hack/cluster/down.sh" || rc=1
		host_snapshot >"$snapshot.after"
		if ! diff -u "$snapshot.before" "$snapshot.after" >&2; then
			log "the host differs from before the cluster (diff above): the teardown left something behind"
			rc=1
		fi
		rm -rf "$(dirname "$snapshot")"
	fi
	echo "--- e2e phases" >&2
	printf '  %s\n' "${phases[@]}" >&2
	printf '  %-28s %4ds  (exit %d)\n' total $((SECONDS - total)) "$rc" >&2
	exit "$rc"
}
trap report EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

phase deps hack/cluster/install-deps.sh
phase k8s-binaries bash -c 'hack/envtest.sh >/dev/null && hack/cluster/build.sh'
phase provisioner "$GO" build -o bin/cluster-provisioner ./hack/cluster/provisioner
phase images hack/images/build.sh
[[ -x $HELM ]] || die "$HELM is missing (make $HELM)"
snapshot=$(mktemp -d -t kubemail-host.XXXXXX)/host
hack/cluster/down.sh # a cluster left running by `make cluster-up` or a killed run
host_snapshot >"$snapshot.before"
cluster_started=1
phase cluster-up hack/cluster/up.sh
phase test env KUBECONFIG="$KUBECONFIG" KUBECTL="$KBIN/kubectl" HELM="$HELM" \
	"$GO" test -tags cluster -count=1 -v -timeout "$E2E_CLUSTER_TIMEOUT" ./test/cluster/
