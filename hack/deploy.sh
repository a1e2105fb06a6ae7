#!/usr/bin/env bash
# `make deploy` and `make undeploy` (hack/deploy.mk): the operator from the kustomize bases in
# config/ into the cluster of the current kubectl context, without Helm.
#
#   hack/deploy.sh deploy IMG    CRDs, RBAC, namespace kubemail-system and the operator running
#                                IMG (the mail server pods run IMG too: config/default's
#                                replacement keeps KUBEMAIL_IMAGE equal to the image)
#   hack/deploy.sh undeploy      the operator, its RBAC and namespace; the CRDs stay, and with
#                                them every MailDomain, Mailbox and RelayPolicy, the mail server
#                                StatefulSets and the mail (as `helm uninstall` keeps the CRDs)
#   hack/deploy.sh render IMG    print what deploy applies
#
# KUSTOMIZE (default bin/kustomize, built by hack/deploy.mk) sets the image in a copy of config/,
# so the tree is not edited; KUBECTL (default kubectl on PATH, else bin/k8s/kubectl) applies
# with server-side apply. To remove the CRDs as well, and so every kubemail object (the mail
# server StatefulSets go with their MailDomains; PersistentVolumeClaims follow each MailDomain's
# spec.storage.whenDeleted), run `kubectl delete -k config/crd` while the operator still runs,
# so that it can let Mailboxes with reclaimPolicy Delete go.
set -euo pipefail
cd "$(dirname "$0")/.."

action=${1:-}
img=${2:-}
kustomize=${KUSTOMIZE:-$PWD/bin/kustomize}
kubectl=${KUBECTL:-}
if [[ -z $kubectl ]]; then
	if command -v kubectl >/dev/null; then
		kubectl=kubectl
	elif [[ -x bin/k8s/kubectl ]]; then
		kubectl=$PWD/bin/k8s/kubectl
	fi
fi

need_kubectl() {
	if [[ -z $kubectl ]]; then
		echo "hack/deploy.sh: no kubectl on PATH or in bin/k8s (make cluster-up builds one); set KUBECTL" >&2
		exit 1
	fi
}

render() {
	if [[ -z $img ]]; then
		echo "hack/deploy.sh: give the image, e.g. make deploy IMG=registry.example/kubemail:v0.1.0" >&2
		exit 2
	fi
	tmp=$(mktemp -d)
	trap 'rm -rf "$tmp"' EXIT
	cp -r config "$tmp/"
	(cd "$tmp/config/default" && "$kustomize" edit set image "kubemail=$img")
	"$kustomize" build "$tmp/config/default"
}

case $action in
render)
	render
	;;
deploy)
	need_kubectl
	render | "$kubectl" apply --server-side --field-manager=kubemail-deploy -f -
	echo "hack/deploy.sh: deployed $img; next: kubectl apply -f config/samples/"
	;;
undeploy)
	need_kubectl
	{ "$kustomize" build config/manager; echo "---"; "$kustomize" build config/rbac; } |
		"$kubectl" delete --ignore-not-found -f -
	echo "hack/deploy.sh: removed the operator; the CRDs, the kubemail objects and the mail are kept"
	;;
*)
	echo "usage: hack/deploy.sh deploy IMG | undeploy | render IMG" >&2
	exit 2
	;;
esac
