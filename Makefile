# kubemail developer entry points. `make run` and `make test` are the two commands a newcomer
# needs; see hack/README.md for the scripts behind them.

SHELL := /usr/bin/env bash
.SHELLFLAGS := -eu -o pipefail -c

GO        ?= go
BIN       := $(CURDIR)/bin
KUBEMAIL  := $(BIN)/kubemail

# Go tools from the module proxy, pinned and cached under bin/.
CONTROLLER_GEN_VERSION ?= v0.23.0
CONTROLLER_GEN         := $(BIN)/controller-gen

# Unit tests run with the race detector; e2e tests start the real binary with real clients.
GOTESTFLAGS  ?= -race
TEST_TIMEOUT ?= 20m
E2E_TIMEOUT  ?= 20m

# Loopback ports of `make run` (the server's defaults, spelled out).
RUN_DATA_DIR  ?= data
RUN_MANIFESTS ?= config/samples
RUN_FLAGS     ?= --smtp-addr 127.0.0.1:2525 --submission-addr 127.0.0.1:2587 \
                 --submissions-addr 127.0.0.1:2465 --imap-addr 127.0.0.1:2143 \
                 --imaps-addr 127.0.0.1:2993

# Benchmark size and sessions (see the doc comment of bench/main.go; BENCH_TIMEOUT limits each run).
BENCH_MESSAGES ?= 20000
BENCH_SESSIONS ?= 1,10,50
BENCH_OUT_MESSAGES ?= 5000

.PHONY: all
all: build

.PHONY: build
build: ## Build bin/kubemail.
	$(GO) build -o $(KUBEMAIL) ./cmd/kubemail

.PHONY: run
run: build ## Serve config/samples on the loopback ports, mail under ./data.
	@if [[ -f hack/first-mail.txt ]]; then echo; cat hack/first-mail.txt; echo; fi
	$(KUBEMAIL) server --manifests $(RUN_MANIFESTS) --data-dir $(RUN_DATA_DIR) $(RUN_FLAGS)

.PHONY: test-deps
test-deps: ## Install what the tests need (Debian packages) where it is missing.
	hack/install-test-deps.sh

.PHONY: test
test: test-deps vet unit test-operator test-e2e relay ## Vet, unit tests, operator tests on envtest, then end-to-end tests with real clients and peers.

.PHONY: unit
unit: ## Unit and package tests (everything but test/e2e and test/relay).
	$(GO) test $(GOTESTFLAGS) -timeout $(TEST_TIMEOUT) $$($(GO) list ./... | grep -v -e '/test/e2e' -e '/test/relay')

# The e2e tests run a race-detector build of the binary, so a data race under real clients
# fails them (E2E_RACE= runs bin/kubemail's plain build instead).
E2E_RACE ?= -race
E2E_BIN  := $(BIN)/kubemail-e2e

.PHONY: test-e2e
test-e2e: ## End-to-end tests against the real binary (swaks, smtplib, imaplib, mbsync).
	$(GO) build $(E2E_RACE) -o $(E2E_BIN) ./cmd/kubemail
	KUBEMAIL_BIN=$(E2E_BIN) $(GO) test -count=1 -timeout $(E2E_TIMEOUT) ./test/e2e/...

RELAY_TIMEOUT ?= 15m

.PHONY: relay
relay: ## Sending-path tests: kubemail binaries on loopback port 25, a test DNS server, Postfix as smarthost and MX, crash under load (root).
	$(GO) build $(E2E_RACE) -o $(E2E_BIN) ./cmd/kubemail
	KUBEMAIL_BIN=$(E2E_BIN) $(GO) test -count=1 -v -timeout $(RELAY_TIMEOUT) ./test/relay/...

.PHONY: bench
bench: build test-deps ## smtp-source load into kubemail and a throwaway Postfix; prints a table.
	$(GO) run ./bench -kubemail $(KUBEMAIL) -manifests config/samples \
		-messages $(BENCH_MESSAGES) -sessions $(BENCH_SESSIONS)
	$(GO) run ./bench/outbound -kubemail $(KUBEMAIL) -messages $(BENCH_OUT_MESSAGES)

IMG ?= kubemail:dev

.PHONY: docker-build
docker-build: ## Build the container image $(IMG) (needs a Docker engine; none runs on the CI machines).
	docker build -t $(IMG) --build-arg VERSION=$(shell git describe --always --dirty 2>/dev/null || echo dev) .

.PHONY: generate
generate: $(CONTROLLER_GEN) ## Regenerate deepcopy code from api/, then CRDs, RBAC and the chart's copies (manifests).
	$(CONTROLLER_GEN) object:headerFile=hack/boilerplate.go.txt paths=./api/...
	$(MAKE) manifests

$(CONTROLLER_GEN):
	GOBIN=$(BIN) $(GO) install sigs.k8s.io/controller-tools/cmd/controller-gen@$(CONTROLLER_GEN_VERSION)

.PHONY: fmt
fmt: ## gofmt every Go file.
	@files=$$(git ls-files -co --exclude-standard '*.go'); [[ -z "$$files" ]] || gofmt -s -w $$files

.PHONY: fmt-check
fmt-check: ## Fail if a Go file is not gofmt'ed.
	@files=$$(git ls-files -co --exclude-standard '*.go'); \
	out=$$([[ -z "$$files" ]] || gofmt -l $$files); \
	if [[ -n "$$out" ]]; then echo "gofmt needed on:"; echo "$$out"; exit 1; fi

.PHONY: vet
vet: ## go vet every package.
	$(GO) vet ./...

.PHONY: clean
clean: ## Remove build outputs (keeps cached tools in bin/ and mail under ./data).
	rm -f $(KUBEMAIL) $(E2E_BIN)
	$(GO) clean -testcache

.PHONY: help
help:
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed -E 's/:.*## /\t/'

include hack/operator.mk
include hack/cluster.mk
include hack/deploy.mk
