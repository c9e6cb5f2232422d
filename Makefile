# Bulkhead — the two commands:
#   make run    run the platform locally (state under .bulkhead/)
#   make test   run every check and test against real dependencies
# Both install what they need first (distro packages, pinned tools in bin/).

SHELL := /usr/bin/env bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

export PATH := $(CURDIR)/bin:$(PATH)

GO_TEST_FLAGS ?= -race -count=1 -timeout=20m
BENCH ?= .
BENCH_COUNT ?= 6

GO_FILES = $(shell find . -name '*.go' -not -path './bin/*' -not -path './.bulkhead/*' -not -path './.git/*')

.PHONY: help
help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

.PHONY: deps
deps: ## install the distro packages (redis-server, PostgreSQL) if missing
	@./scripts/install-deps.sh

.PHONY: tools
tools: ## build the pinned components and generators into bin/, install the pinned Node SDK (skips what is up to date)
	@./tools/build.sh
	@./tools/node-sdk/install.sh

.PHONY: generate
generate: ## regenerate the gRPC code (services/proto), the CRDs (policies/crds) and deepcopy functions
	@./tools/build.sh buf protoc-gen-go protoc-gen-go-grpc controller-gen
	@./scripts/generate.sh

.PHONY: golden
golden: ## rewrite the golden files (testdata/*) from the current output; review the diff
	@# -p 1: the xds goldens read the IR goldens that translate writes.
	BULKHEAD_UPDATE_GOLDEN=1 go test -p 1 -count=1 -run Golden ./...

.PHONY: lint
lint: ## gofmt, go vet, staticcheck, buf lint, generated code up to date
	@echo "==> gofmt"
	@out=$$(gofmt -l $(GO_FILES)); if [ -n "$$out" ]; then echo "gofmt: these files need 'gofmt -w':"; echo "$$out"; exit 1; fi
	@echo "==> go vet"
	@go vet ./...
	@echo "==> staticcheck"
	@staticcheck ./...
	@echo "==> go vet, staticcheck of the cluster e2e (build tag clustere2e)"
	@go vet -tags clustere2e ./deploy/... && staticcheck -tags clustere2e ./deploy/...
	@echo "==> buf lint"
	@cd services/proto && buf lint
	@echo "==> generated code"
	@./scripts/generate.sh --check

.PHONY: test
test: deps tools ## everything: lint, then unit and integration tests on real servers
	@start=$$(date +%s); \
	$(MAKE) --no-print-directory lint; \
	echo "==> go test -race ./... (real PostgreSQL, Redis, Vault, kube-apiserver+etcd, Kafka)"; \
	go test $(GO_TEST_FLAGS) ./...; \
	echo "==> make test passed in $$(( $$(date +%s) - start ))s (after deps and tools)"

.PHONY: bench
bench: deps tools ## run the benchmarks (BENCH=regexp, BENCH_COUNT=n); results in bench.txt for benchstat
	go test -run '^$$' -bench '$(BENCH)' -benchmem -count $(BENCH_COUNT) ./... | tee bench.txt
	@echo "==> summary (benchstat bench.txt)"
	@benchstat bench.txt

.PHONY: bench-kubernetes
bench-kubernetes: deps tools ## Kubernetes mode at scale: 1,000 Services, 5,000 Pods, 1,000 proxyless clients (about 6 min)
	go test -run '^$$' -bench KubernetesScale -benchtime 20x -timeout 30m ./control-plane/ | tee bench-kubernetes.txt

.PHONY: bench-egctl
bench-egctl: ## compare translation time with Envoy Gateway's egctl on the same input (builds egctl once, minutes)
	@./scripts/bench-egctl.sh

.PHONY: bench-peers
bench-peers: ## Bulkhead as bulkhead up runs it beside Portkey's gateway and a zero-latency upstream, one run, a ladder of rates (RATES=, DURATION=; about 10 min), table in bench-peers.md
	@./scripts/bench-peers.sh

SERVICES := auth users models chat inference training webhooks api

.PHONY: build
build: ## build the CLI, the control plane and the services (bin/bulkhead-NAME) into bin/
	@echo "==> go build: bin/bulkhead, bin/control-plane, $(foreach s,$(SERVICES),bin/bulkhead-$(s))"
	@go build -o bin/ ./cmd/bulkhead ./control-plane/cmd/control-plane $(foreach s,$(SERVICES),./services/$(s)/cmd/bulkhead-$(s))

.PHONY: images
images: ## build the platform's container images offline into .bulkhead/images/ (tag: the git revision)
	@./deploy/images/build.sh

.PHONY: cluster-up
cluster-up: deps ## a real single-node Kubernetes cluster here (deploy/cluster), the platform deployed on it (root; minutes)
	@./deploy/cluster/cluster.sh up
	@./deploy/deploy.sh local

.PHONY: cluster-e2e
cluster-e2e: ## on the cluster of cluster-up: dry runs of every overlay, the OpenAI SDK, mTLS, policy changes, pods deleted under load
	@./deploy/cluster/cluster.sh status >/dev/null || { echo "cluster-e2e: the local cluster is not running: make cluster-up" >&2; exit 1; }
	go test -tags clustere2e -count=1 -v -timeout 20m -run TestCluster ./deploy/cluster/e2e/

.PHONY: cluster-down
cluster-down: ## stop the local cluster and undo everything it changed on this machine
	@./deploy/cluster/cluster.sh down

.PHONY: kind-up
kind-up: ## where Docker is: a kind cluster with the platform, Envoy ingress at http://127.0.0.1:8080
	@./deploy/kind/kind.sh up

.PHONY: kind-e2e
kind-e2e: ## on the kind cluster: the cluster e2e through the Envoy ingress, and a gateway pod deleted under load
	@./deploy/kind/kind.sh e2e

.PHONY: kind-down
kind-down: ## delete the kind cluster
	@./deploy/kind/kind.sh down

.PHONY: run
run: deps ## run the platform locally: bulkhead up (Ctrl-C stops it; ARGS='--upstream NAME=URL' and other flags of up)
	@./tools/build.sh vault
	@$(MAKE) --no-print-directory build
	@exec bin/bulkhead up $(ARGS)

.PHONY: sdk-check
sdk-check: ## the official OpenAI Node SDK against the platform of make run (BULKHEAD_API, TOOL_MODEL=a model whose upstream calls tools)
	@./tools/node-sdk/install.sh
	@BULKHEAD_API=$${BULKHEAD_API:-http://127.0.0.1:8080} BULKHEAD_KEY=$${BULKHEAD_API_KEY:-$$(cat .bulkhead/dev-api-key)} \
		NODE_SDK_DIR=$(CURDIR)/tools/node-sdk node internal/sdkcheck/openai-node.cjs

.PHONY: clean
clean: ## remove local state (.bulkhead/); bin/ is kept (make distclean removes it)
	rm -rf .bulkhead bench.txt

.PHONY: distclean
distclean: clean ## also remove the built tools
	rm -rf bin
