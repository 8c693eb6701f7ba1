# Authly. Every tool runs through `go tool`, pinned in go.mod (golangci-lint in its own
# modfile), so nothing is installed globally.
SHELL := bash
# Go 1.26.8's standard library has known vulnerabilities fixed in later releases; builds use
# this newer toolchain, which the go command fetches from the module proxy on first use.
export GOTOOLCHAIN := go1.27.3
GO ?= go
LINT := $(GO) tool -modfile=tools/golangci-lint.mod golangci-lint
VULN := $(GO) tool -modfile=tools/vuln.mod
VULNDB_DIR := .cache/vulndb
# npm packages: the contract's tools (Redocly CLI, the Redoc bundle) and the TypeScript client.
OPENAPI_TOOLS := tools/openapi
TS_CLIENT := clients/typescript
REDOCLY := $(OPENAPI_TOOLS)/node_modules/.bin/redocly
# A Node.js that .ci/node.sh fetched, because the system's is older than 20.19, comes first.
NODE_BIN := $(CURDIR)/.cache/node/node_modules/.bin
ifneq ($(wildcard $(NODE_BIN)/node),)
export PATH := $(NODE_BIN):$(PATH)
endif
export REDOCLY_TELEMETRY := off
export REDOCLY_SUPPRESS_UPDATE_NOTICE := true

.PHONY: all generate generate-check docs-assets build run test test-ts lint vuln bench

all: generate build test

## generate: rebuild internal/gen/api (oapi-codegen) and internal/gen/db (sqlc), copy
## openapi.yaml to internal/docs/assets, from where the server serves it, and write
## sql/schema.sql, the schema after every migration, dumped from a throwaway cluster
generate:
	$(GO) tool sqlc generate
	$(GO) tool oapi-codegen -config oapi-codegen.yaml openapi.yaml
	cp openapi.yaml internal/docs/assets/openapi.yaml
	$(GO) run ./tools/schemadump -o sql/schema.sql

## docs-assets: copy the Redoc bundle of the reference page from the pinned redoc package
docs-assets: $(OPENAPI_TOOLS)/node_modules/.package-lock.json
	cp $(OPENAPI_TOOLS)/node_modules/redoc/bundles/redoc.standalone.js \
		$(OPENAPI_TOOLS)/node_modules/redoc/bundles/redoc.standalone.js.LICENSE.txt internal/docs/assets/
	cp $(OPENAPI_TOOLS)/node_modules/redoc/LICENSE internal/docs/assets/redoc.LICENSE

## generate-check: fail when the committed generated code, schema dump or docs assets are
## stale
GENERATED := internal/gen internal/docs/assets sql/schema.sql
generate-check: generate docs-assets
	@if ! git diff --quiet --exit-code -- $(GENERATED) || [ -n "$$(git status --porcelain -- $(GENERATED))" ]; then \
		echo "internal/gen, internal/docs/assets or sql/schema.sql is stale: run 'make generate docs-assets' and commit the result"; \
		git status --porcelain -- $(GENERATED); git --no-pager diff --stat -- $(GENERATED); exit 1; \
	fi

VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
# An npm package's node_modules, installed from its lockfile again whenever the manifest or the
# lockfile changes.
%/node_modules/.package-lock.json: %/package.json %/package-lock.json
	@command -v npm >/dev/null 2>&1 || { echo "npm not found: install Node.js 20.19 or later with npm, or run 'bash .ci/node.sh' to fetch one into .cache/node"; exit 1; }
	cd $* && npm ci --no-audit --no-fund
	touch $@

## build: compile the server to bin/authly
build:
	$(GO) build -ldflags "-X main.version=$(VERSION)" -o bin/authly ./cmd/server

## run: serve the API on 127.0.0.1:8000, on the embedded database unless DATABASE_URL is set
run: build
	./bin/authly serve

## test: the whole suite, against real PostgreSQL; then the TypeScript client's test when
## node is installed
test:
	$(GO) test -race -count=1 ./...
	@if command -v node >/dev/null 2>&1 && command -v npm >/dev/null 2>&1; then \
		$(MAKE) --no-print-directory test-ts; \
	else \
		echo "node and npm not found: skipping the TypeScript client test (CI runs it)"; \
	fi

## bench: the load benchmark of docs/benchmarks.md. It starts its own server on the embedded
## database in a fresh directory (or uses AUTHLY_BENCH_URL), runs every scenario (floods of
## logins and registrations that ignore Retry-After included) for BENCH_DURATION at
## concurrencies 16 and 64, prints the table and writes bench-results.json; then it runs the
## login scenario again on a server with AUTHLY_PASSWORD_HASH=argon2id and writes
## bench-results-argon2id.json. More flags go in BENCH_FLAGS, e.g.
## BENCH_FLAGS='-scenarios login,login-flood -concurrency 64'; BENCH_ARGON2ID_FLAGS for the second run.
BENCH_DURATION ?= 10s
BENCH_ARGON2ID_FLAGS ?= -scenarios login
bench: build
	$(GO) build -o bin/authly-bench ./cmd/bench
	./bin/authly-bench -server-bin bin/authly -duration $(BENCH_DURATION) -json bench-results.json $(BENCH_FLAGS)
	./bin/authly-bench -server-bin bin/authly -duration $(BENCH_DURATION) -password-hash argon2id \
		-json bench-results-argon2id.json $(BENCH_ARGON2ID_FLAGS)

## test-ts: the TypeScript client, generated from openapi.yaml, against the server built here
test-ts: build $(TS_CLIENT)/node_modules/.package-lock.json
	cd $(TS_CLIENT) && AUTHLY_BIN="$(CURDIR)/bin/authly" npm test

## lint: go vet, golangci-lint, and Redocly's OpenAPI linter on openapi.yaml (redocly.yaml)
lint: $(OPENAPI_TOOLS)/node_modules/.package-lock.json
	$(GO) vet ./...
	$(LINT) run ./...
	$(REDOCLY) lint openapi.yaml

## vuln: govulncheck against an offline vulnerability database built from the pinned
## golang.org/x/vulndb module (tools/vuln.mod), since the online one may be unreachable
vuln:
	$(GO) mod download -modfile=tools/vuln.mod golang.org/x/vulndb
	rm -rf $(VULNDB_DIR) && mkdir -p $(VULNDB_DIR)
	$(VULN) indexdb -vulns "$$($(GO) list -modfile=tools/vuln.mod -m -f '{{.Dir}}' golang.org/x/vulndb)/data/osv" -out $(VULNDB_DIR)
	$(VULN) govulncheck -db "file://$(CURDIR)/$(VULNDB_DIR)" ./...
