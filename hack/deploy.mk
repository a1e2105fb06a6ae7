# `make deploy` / `make undeploy` (issue 4, Install): the operator from the kustomize bases in
# config/, without Helm, into the cluster of the current kubectl context (hack/deploy.sh).
# Included at the end of the Makefile; uses GO, BIN and IMG from it.

# kustomize, built from the Go module proxy, pinned (the version kubectl v1.37 embeds) and cached
# under bin/.
KUSTOMIZE_VERSION ?= v5.8.1
KUSTOMIZE         := $(BIN)/kustomize

$(KUSTOMIZE):
	GOBIN=$(BIN) $(GO) install sigs.k8s.io/kustomize/kustomize/v5@$(KUSTOMIZE_VERSION)

.PHONY: deploy
deploy: $(KUSTOMIZE) ## Install the CRDs, RBAC and the operator running $(IMG) with kustomize (config/default).
	KUSTOMIZE=$(KUSTOMIZE) hack/deploy.sh deploy $(IMG)

.PHONY: undeploy
undeploy: $(KUSTOMIZE) ## Remove the operator and its RBAC; the CRDs, kubemail objects and mail stay.
	KUSTOMIZE=$(KUSTOMIZE) hack/deploy.sh undeploy
