# The end-to-end test on a real one-node Kubernetes built here (issue 5), included at the end of
# the Makefile; see hack/cluster/README.md. Needs root (containerd, kubelet, a bridge).
# `make test-e2e` (part of `make test`) is the end-to-end test of the binary alone.

.PHONY: e2e
e2e: $(HELM) ## Real one-node cluster: helm install, samples, mail through the Service; torn down after.
	GO=$(GO) HELM=$(HELM) hack/cluster/e2e.sh

.PHONY: cluster-up
cluster-up: $(HELM) ## Start the one-node cluster (kept running; KUBECONFIG=/tmp/kubemail-cluster/pki/admin.kubeconfig).
	hack/cluster/install-deps.sh
	hack/envtest.sh >/dev/null
	hack/cluster/build.sh
	$(GO) build -o $(BIN)/cluster-provisioner ./hack/cluster/provisioner
	hack/images/build.sh
	hack/cluster/up.sh

.PHONY: cluster-down
cluster-down: ## Stop the one-node cluster and restore the host.
	hack/cluster/down.sh
