SHELL := bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help

TOOLS := $(CURDIR)/.tools
BUF_VERSION := v1.75.0
PROTOC_GEN_GO_VERSION := v1.36.12
PROTOC_GEN_CONNECT_GO_VERSION := v1.21.1
GO ?= go
ARGS ?=

.PHONY: help
help: ## List the targets
	@grep -hE '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-14s %s\n", $$1, $$2}'

.PHONY: deps
deps: ## Install the runtime packages (python3-fastapi and friends, redis-server) if missing
	@deploy/local/deps.sh

$(TOOLS)/buf:
	GOBIN=$(TOOLS) $(GO) install github.com/bufbuild/buf/cmd/buf@$(BUF_VERSION)
$(TOOLS)/protoc-gen-go:
	GOBIN=$(TOOLS) $(GO) install google.golang.org/protobuf/cmd/protoc-gen-go@$(PROTOC_GEN_GO_VERSION)
$(TOOLS)/protoc-gen-connect-go:
	GOBIN=$(TOOLS) $(GO) install connectrpc.com/connect/cmd/protoc-gen-connect-go@$(PROTOC_GEN_CONNECT_GO_VERSION)

.PHONY: tools
tools: $(TOOLS)/buf $(TOOLS)/protoc-gen-go $(TOOLS)/protoc-gen-connect-go ## Install pinned code generators into .tools

# The web editor's tools and libraries, pinned in web/package-lock.json
# (npm ci installs exactly those); the stamp is the file npm ci writes.
WEB_MODULES := web/node_modules/.package-lock.json
$(WEB_MODULES): web/package.json web/package-lock.json
	cd web && npm ci --no-audit --no-fund --loglevel=error

.PHONY: web-deps
web-deps: $(WEB_MODULES) ## Install the web editor's npm packages (pinned in web/package-lock.json)

.PHONY: generate
generate: tools $(WEB_MODULES) ## Regenerate Go code and the web editor's TypeScript client from proto/
	rm -rf proto/gen
	cd proto && $(TOOLS)/buf lint && $(TOOLS)/buf generate
	cd web && node_modules/.bin/buf generate

.PHONY: checkgenerate
checkgenerate: generate ## Fail if generated code is stale
	@test -z "$$(git status --porcelain -- proto/gen web/src/gen)" || { git status --porcelain -- proto/gen web/src/gen; echo "generated code is stale: run make generate and commit"; exit 1; }

.PHONY: web
web: $(WEB_MODULES) ## Build the web editor into web/dist (type-checked, then bundled by Vite)
	cd web && npm run --silent build

.PHONY: build
build: web ## Build the web editor, then bin/gofastapi with the editor embedded, and the runner agent alone (bin/gofastapi-runner)
	$(GO) build -o bin/gofastapi ./cmd/gofastapi
	$(GO) build -o bin/gofastapi-runner ./cmd/gofastapi-runner

.PHONY: run
run: deps build ## Build, install what is missing, start the embedded default (ARGS=... for flags)
	bin/gofastapi dev $(ARGS)

.PHONY: lint
lint: ## go vet and gofmt
	$(GO) vet ./...
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { gofmt -l $$(git ls-files '*.go'); echo "gofmt: files above need formatting"; exit 1; }

.PHONY: testenv
testenv: ## Build etcd and kube-apiserver (kube tests) and FerretDB with real users (MongoDB-users tests) from source, once (cached under ~/.cache/gofastapi)
	@deploy/testenv/k8s-bin.sh >/dev/null
	@deploy/testenv/ferretdb-bin.sh >/dev/null

.PHONY: images
images: ## Build the platform and runner images (docker or podman; says so and skips without one)
	@deploy/images/build.sh

.PHONY: test
test: deps checkgenerate lint build testenv ## The whole test suite (what CI runs): Go tests, then the browser test
	GOFASTAPI_REQUIRE_TESTENV=1 $(GO) test -count=1 -timeout 20m ./...
	$(MAKE) --no-print-directory test-web-only

.PHONY: test-web
test-web: deps build test-web-only ## The web editor's scenario in headless Chromium against gofastapi dev (screenshots in web/test-results)

.PHONY: test-web-only
test-web-only:
	@deploy/local/browser-deps.sh
	cd web && GOFASTAPI_BIN=$(CURDIR)/bin/gofastapi node --test --test-concurrency=1 --test-timeout=600000 test/*.test.mjs

.PHONY: bench
bench: deps testenv ## Measure cold start, bursts, the gateway hop (beside nginx's and a byte relay's), throughput vs nginx and with metrics on/off, deploy latency, memory, platform database front overhead, the kube backend (README)
	@deploy/local/bench-deps.sh
	$(GO) test -run '^$$' -bench . -benchtime 2000x ./gateway/ | grep -E '^Benchmark'
	$(GO) test -run '^$$' -bench 'RoutingChain/gateway(\+metrics)?$$' -benchtime 1s -count 3 ./gateway/ | grep -E '^Benchmark'
	$(GO) test -run '^$$' -bench . -benchtime 1000000x ./gateway/metrics/ | grep -E '^Benchmark'
	$(GO) test -run '^$$' -bench . -benchtime 1000000x ./gateway/ownerlimit/ | grep -E '^Benchmark'
	PATH=$$PATH:/usr/sbin GOFASTAPI_MEASURE=1 $(GO) test -count=1 -run '^TestMeasure(MetricsCost|Database)?$$' -v -timeout 30m ./cmd/gofastapi | grep -vE '^(=== RUN|--- PASS|PASS|ok )'
	GOFASTAPI_MEASURE=1 $(GO) test -count=1 -run '^TestMeasure$$' -v -timeout 15m ./pool/kube/ | grep -E '^(kube|pool manager)'
