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
manifests: $(CONTROLLER_GEN) ## Regenerate CRDs and RBAC from markers into config/ and the Helm chart.
	$(CONTROLLER_GEN) crd paths=./api/... output:crd:artifacts:config=config/crd/bases
	$(CONTROLLER_GEN) rbac:roleName=kubemail-manager paths=./controllers/... \
		output:rbac:artifacts:config=config/rbac
	hack/helm-sync.sh

# The envtest suite runs a real kube-apiserver and etcd; its files carry the `envtest` build tag
# so that `make unit` (go test ./...) does not need the assets. Its pod contract test runs
# bin/kubemail with the container args the operator rendered.
.PHONY: test-envtest
test-envtest: envtest-assets build ## Controller tests against a real kube-apiserver and etcd (envtest).
	$(GO) vet -tags envtest ./controllers/... ./test/envtest/...
	KUBEBUILDER_ASSETS=$(ENVTEST_ASSETS) KUBEMAIL_BIN=$(KUBEMAIL) $(GO) test -tags envtest -count=1 \
		-timeout $(ENVTEST_TIMEOUT) ./controllers/... $$($(GO) list ./test/envtest/... | grep -v /chart)

# 1,000 Mailboxes across 10 MailDomains on envtest: time to Ready, writes per object, and a
# steady minute that must make no writes.
.PHONY: bench-operator
bench-operator: envtest-assets ## Operator benchmark on envtest (1,000 Mailboxes, 10 MailDomains).
	KUBEBUILDER_ASSETS=$(ENVTEST_ASSETS) $(GO) test -tags envtest -count=1 -run '^$$' \
		-bench BenchmarkThousandMailboxes -benchtime 1x -timeout 20m ./test/envtest/

# helm, built from the Go module proxy with `go install`, pinned and cached under bin/.
HELM_VERSION ?= v4.3.1
HELM         := $(BIN)/helm

$(HELM):
	GOBIN=$(BIN) $(GO) install helm.sh/helm/v4/cmd/helm@$(HELM_VERSION)

.PHONY: helm-lint
helm-lint: $(HELM) ## Lint and render the Helm chart (strict values schema).
	$(HELM) lint --strict charts/kubemail
	$(HELM) template kubemail charts/kubemail --namespace kubemail-system >/dev/null

# The chart against envtest: helm installs it, the operator runs with the chart's RBAC.
.PHONY: test-chart
test-chart: envtest-assets $(HELM) ## Install the Helm chart into envtest and run the samples through it.
	KUBEBUILDER_ASSETS=$(ENVTEST_ASSETS) HELM_BIN=$(HELM) $(GO) test -tags envtest -count=1 \
		-timeout $(ENVTEST_TIMEOUT) ./test/envtest/chart/

# Everything of the operator that `make test` should run (see hack/k8s/README.md for the cost:
# kube-apiserver and helm are built once per machine).
.PHONY: test-operator
test-operator: test-envtest test-chart ## Operator tests: envtest suite and Helm chart.
