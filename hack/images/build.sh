#!/usr/bin/env bash
# Builds the e2e cluster's images without Docker into bin/cluster-images (or $1), as image
# tarballs for `ctr images import`:
#   kubemail.tar  the static kubemail binary (CGO_ENABLED=0, as the Dockerfile builds it) at
#                 /kubemail, user 65532:65532, tagged as the chart's default image
#                 (ghcr.io/kubemail/kubemail:<appVersion of charts/kubemail>), so that
#                 `helm install kubemail charts/kubemail` runs it as is (pullPolicy IfNotPresent
#                 and a tag that is not latest: nothing is pulled)
#   kubemail-next.tar  the same image under a second name (ghcr.io/kubemail/kubemail:e2e-next),
#                 so the e2e can change a MailDomain's spec.image and watch the rollout
#   pause.tar     the pod sandbox (hack/images/pause), containerd's sandbox_image
#   coredns.tar   CoreDNS with the cluster's plugins (hack/cluster/coredns), user 65532
# go build's cache makes a rebuild of unchanged sources take a second.
set -euo pipefail
cd "$(dirname "$0")/../.."

out=${1:-bin/cluster-images}
mkdir -p "$out" bin/cluster-images/bin
out=$(cd "$out" && pwd)
work=$PWD/bin/cluster-images/bin
log() { echo "hack/images/build.sh: $*" >&2; }

app_version=$(awk '$1 == "appVersion:" { gsub(/"/, "", $2); print $2 }' charts/kubemail/Chart.yaml)
[[ -n $app_version ]] || { log "no appVersion in charts/kubemail/Chart.yaml"; exit 1; }
version=$(git describe --always --dirty 2>/dev/null || echo dev)
kubemail_image=${KUBEMAIL_IMAGE:-ghcr.io/kubemail/kubemail:$app_version}

start=$SECONDS
CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X main.version=$version" -o "$work/kubemail" ./cmd/kubemail
(cd hack/images && CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o "$work/pause" ./pause &&
	go build -o "$work/images" .)
(cd hack/cluster/coredns && CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o "$work/coredns" .)
"$work/images" -binary "$work/kubemail" -entrypoint /kubemail -user 65532:65532 -tag "$kubemail_image" -out "$out/kubemail.tar"
"$work/images" -binary "$work/kubemail" -entrypoint /kubemail -user 65532:65532 -tag "${kubemail_image%:*}:e2e-next" -out "$out/kubemail-next.tar"
"$work/images" -binary "$work/pause" -entrypoint /pause -user 65535:65535 -tag kubemail.local/pause:e2e -out "$out/pause.tar"
"$work/images" -binary "$work/coredns" -entrypoint /coredns -user 65532:65532 -tag kubemail.local/coredns:e2e -out "$out/coredns.tar"
echo "$kubemail_image" >"$out/kubemail.image"
echo "${kubemail_image%:*}:e2e-next" >"$out/kubemail-next.image"
log "built $kubemail_image ($version) kubemail.local/pause:e2e and kubemail.local/coredns:e2e into $out in $((SECONDS - start))s"
