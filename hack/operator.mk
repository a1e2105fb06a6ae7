# Operator targets (issue 4), included at the end of the Makefile: envtest assets, code and
# manifest generation, and the envtest suite. Uses GO, BIN and CONTROLLER_GEN from the Makefile.

# kube-apiserver and etcd for envtest, built from the Go module proxy by hack/envtest.sh; the
# versions are pinned in hack/k8s/go.mod and hack/k8s/etcd/go.mod (see hack/k8s/README.md).
ENVTEST_ASSETS ?= $(BIN)/k8s
ENVTEST_TIMEOUT ?= 15m

.PHONY: envtest-assets
envtest-assets: ## Build kube-apiserver and etcd into bin/k8s once; prints KUBEBUILDER_ASSETS.
	hack/envtest.sh $(ENVTEST_ASSETS)

.PHONY: manifests
manifests: $(CONTROLLER_GEN) ## Regenerate CRDs (config/crd/bases) and RBAC (config/rbac) from markers.
	$(CONTROLLER_GEN) crd paths=./api/... output:crd:artifacts:config=config/crd/bases
	$(CONTROLLER_GEN) rbac:roleName=kubemail-manager paths=./controllers/... \
		output:rbac:artifacts:config=config/rbac

# The envtest suite runs a real kube-apiserver and etcd; its files carry the `envtest` build tag
# so that `make unit` (go test ./...) does not need the assets. Its pod contract test runs
# bin/kubemail with the container args the operator rendered.
.PHONY: test-envtest
test-envtest: envtest-assets build ## Controller tests against a real kube-apiserver and etcd (envtest).
	$(GO) vet -tags envtest ./controllers/... ./test/envtest/...
	KUBEBUILDER_ASSETS=$(ENVTEST_ASSETS) KUBEMAIL_BIN=$(KUBEMAIL) $(GO) test -tags envtest -count=1 \
		-timeout $(ENVTEST_TIMEOUT) ./controllers/... ./test/envtest/...

# 1,000 Mailboxes across 10 MailDomains on envtest: time to Ready, writes per object, and a
# steady minute that must make no writes.
.PHONY: bench-operator
bench-operator: envtest-assets ## Operator benchmark on envtest (1,000 Mailboxes, 10 MailDomains).
	KUBEBUILDER_ASSETS=$(ENVTEST_ASSETS) $(GO) test -tags envtest -count=1 -run '^$$' \
		-bench BenchmarkThousandMailboxes -benchtime 1x -timeout 20m ./test/envtest/
