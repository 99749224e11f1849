# ward — run `make help` for the targets.
SHELL := /usr/bin/env bash
GO ?= go
BIN := bin/ward
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
COMMIT ?= $(shell git rev-parse HEAD 2>/dev/null || echo unknown)
LDFLAGS := -X main.version=$(VERSION) -X main.commit=$(COMMIT)
FUZZTIME ?= 10s
# Fuzz targets as package:target[:fuzztime]. All run by count: a run with a
# time limit fails with "context deadline exceeded" when the limit falls
# while the engine minimizes a new input (seen with FuzzUpdateMetadata and
# FuzzParseCustom, workers at 0 execs/s until the deadline); by count the
# run ends when the inputs are done. The counts take a few seconds each
# here. FUZZTIME=1m make fuzz-long fuzzes each for a time instead.
FUZZ_TARGETS := ./bundle:FuzzRead:40000x ./bundle/tufclient:FuzzUpdateMetadata:2000x ./bundle/tuflayout:FuzzParseCustom:150000x ./policies:FuzzCompile:20000x ./policies:FuzzSplitYAML:30000x ./policies/sigstoretuf:FuzzFromSerialized:3000x ./admission:FuzzValidate:20000x ./admission/review:FuzzDecode:30000x ./admission/workload:FuzzScan:30000x ./internal/jsonscan:FuzzSkip:200000x ./internal/plainyaml:FuzzToJSON:100000x ./internal/plainyaml:FuzzToJSONShapes:50000x

.PHONY: help setup build image test unit e2e vet fmt lint fuzz fuzz-long bench bench-load demo demo-apiserver demo-authoring tuf-conformance verify tidy generate controller-gen

help: ## Show the targets
	@grep -hE '^[a-z0-9-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-15s %s\n", $$1, $$2}'

build: ## Build bin/ward (static)
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags "$(LDFLAGS)" -o $(BIN) ./cmd/ward

image: build ## Build ward's container image and push it, no Docker needed: make image IMAGE=registry.example.com/ward:TAG
	@test -n "$(IMAGE)" || { echo "make image: set IMAGE=registry.example.com/ward:TAG"; exit 2; }
	$(GO) run ./hack/image --binary $(BIN) --image $(IMAGE)

setup: ## Install what tests need when missing: git, docker-registry and openssh-server (apt), kube-apiserver, etcd, kubectl, helm, kustomize, local-kms, vault and notation (built into ~/.cache/ward)
	@./hack/setup.sh
	@./hack/kube-assets.sh >/dev/null
	@./hack/helm.sh >/dev/null
	@./hack/kustomize.sh >/dev/null
	@./hack/local-kms.sh >/dev/null
	@./hack/vault.sh >/dev/null
	@./hack/notation.sh >/dev/null

test: setup vet unit fuzz ## Everything CI runs: vet, unit and integration tests with -race, a short fuzz run of each target
	@echo "make test: all passed"

# The servers and tools the tests run, from the cache (make setup builds them).
TEST_ENV = KUBEBUILDER_ASSETS=$$(./hack/kube-assets.sh) WARD_HELM=$$(./hack/helm.sh) WARD_KUSTOMIZE=$$(./hack/kustomize.sh) WARD_LOCAL_KMS=$$(./hack/local-kms.sh) WARD_VAULT=$$(./hack/vault.sh) WARD_NOTATION=$$(./hack/notation.sh)

unit: ## Unit and integration tests with -race (a real kube-apiserver, registry, Git server and KMS emulators included)
	$(TEST_ENV) $(GO) test -race -count=1 -timeout 30m ./...

e2e: setup ## The end-to-end suite alone: ward behind a real kube-apiserver with real webhook configurations (also part of unit)
	$(TEST_ENV) $(GO) test -race -count=1 -v ./test/e2e/

vet: ## go vet and a gofmt check
	$(GO) vet ./...
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); if [ -n "$$out" ]; then echo "gofmt needed: $$out"; exit 1; fi

fmt: ## Format the code
	gofmt -w $$(git ls-files '*.go')

lint: vet ## Static checks (golangci-lint when installed, else vet)
	@if command -v golangci-lint >/dev/null; then golangci-lint run ./...; else echo "golangci-lint not installed: ran go vet only"; fi

fuzz: ## A short run of each fuzz target, by count (make test runs it)
	@set -e; for t in $(FUZZ_TARGETS); do IFS=: read -r pkg name ft <<< "$$t"; ft=$${ft:-$(FUZZTIME)}; \
	  echo "fuzz $$pkg $$name for $$ft"; \
	  $(GO) test -run '^$$' -fuzz "^$$name\$$" -fuzztime $$ft $$pkg; done

fuzz-long: ## Fuzz each target for FUZZTIME (default 10s)
	@set -e; for t in $(FUZZ_TARGETS); do IFS=: read -r pkg name ft <<< "$$t"; \
	  echo "fuzz $$pkg $$name for $(FUZZTIME)"; \
	  $(GO) test -run '^$$' -fuzz "^$$name\$$" -fuzztime $(FUZZTIME) $$pkg; done

bench: ## Benchmarks: bundle verify + unpack, compile, swap, glob matching, admission decisions (10, 1,000, 10,000 policies), a 5,000-image Pod
	$(GO) test -run '^$$' -bench . -benchmem ./bundle/... ./policies/... ./admission/... ./sync/syncer/

bench-load: build ## ward serve with a generated 10k-policy bundle under ../shared/bench's load tool: the table of docs/benchmarks.md (SHARED=, N=, DURATION=, SWAPS=100 for swaps under load)
	SHARED=$(SHARED) SWAPS=$(SWAPS) ./hack/bench-load.sh $(BIN)

demo: build ## The whole story on this machine, no cluster (ward demo)
	@./hack/setup.sh demo
	$(BIN) demo

demo-apiserver: build setup ## The same story, the admission steps through a real kube-apiserver
	$(BIN) demo --apiserver --kube-assets $$(./hack/kube-assets.sh)

SHARED ?= ../shared
SWAPS ?= 0
tuf-conformance: build ## The public tuf-conformance suite against ward tuf client (set CONFORMANCE_GIT, PYTUF_GIT, SSLIB_GIT: docs/testing.md)
	bash $(SHARED)/tools/tuf-conformance.sh hack/tuf-conformance-client.sh

demo-authoring: build ## The authoring flow alone: reproducible builds, verify, rollback, timestamp refresh
	./hack/demo.sh $(BIN)

CONTROLLER_GEN_VERSION := v0.23.0
CONTROLLER_GEN := $(shell $(GO) env GOPATH)/bin/controller-gen

controller-gen:
	@test -x "$(CONTROLLER_GEN)" || $(GO) install sigs.k8s.io/controller-tools/cmd/controller-gen@$(CONTROLLER_GEN_VERSION)

generate: controller-gen ## Regenerate deepcopy code and the PolicySource CRD from api/
	$(CONTROLLER_GEN) object paths=./api/...
	$(CONTROLLER_GEN) crd paths=./api/... output:crd:dir=deploy/crds
	cp deploy/crds/ward.dev_policysources.yaml deploy/chart/ward/crds/

tidy: ## go mod tidy
	$(GO) mod tidy

verify: tidy generate ## Fail if go mod tidy or code generation changes the tree
	git diff --exit-code go.mod go.sum api deploy/crds deploy/chart/ward/crds
