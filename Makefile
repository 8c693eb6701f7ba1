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

.PHONY: all generate generate-check build run test lint vuln bench

all: generate build test

## generate: rebuild internal/gen/api (oapi-codegen) and internal/gen/db (sqlc)
generate:
	$(GO) tool sqlc generate
	$(GO) tool oapi-codegen -config oapi-codegen.yaml openapi.yaml

## generate-check: fail when the committed generated code is stale
generate-check: generate
	@if ! git diff --quiet --exit-code -- internal/gen || [ -n "$$(git status --porcelain -- internal/gen)" ]; then \
		echo "internal/gen is stale: run 'make generate' and commit the result"; \
		git status --porcelain -- internal/gen; git --no-pager diff --stat -- internal/gen; exit 1; \
	fi

## build: compile the server to bin/authly
build:
	$(GO) build -o bin/authly ./cmd/server

## run: serve the API on 127.0.0.1:8000, on the embedded database unless DATABASE_URL is set
run: build
	./bin/authly serve

## test: the whole suite, against real PostgreSQL
test:
	$(GO) test -race -count=1 ./...

## bench: the load benchmark of docs/benchmarks.md. It starts its own server on the embedded
## database in a fresh directory (or uses AUTHLY_BENCH_URL), runs every scenario for
## BENCH_DURATION at concurrencies 16 and 64, prints the table and writes bench-results.json.
## More flags go in BENCH_FLAGS, e.g. BENCH_FLAGS='-scenarios me,refresh -concurrency 64'.
BENCH_DURATION ?= 10s
bench: build
	$(GO) build -o bin/authly-bench ./cmd/bench
	./bin/authly-bench -server-bin bin/authly -duration $(BENCH_DURATION) -json bench-results.json $(BENCH_FLAGS)

## lint: go vet plus golangci-lint
lint:
	$(GO) vet ./...
	$(LINT) run ./...

## vuln: govulncheck against an offline vulnerability database built from the pinned
## golang.org/x/vulndb module (tools/vuln.mod), since the online one may be unreachable
vuln:
	rm -rf $(VULNDB_DIR) && mkdir -p $(VULNDB_DIR)
	$(VULN) indexdb -vulns "$$($(GO) list -modfile=tools/vuln.mod -m -f '{{.Dir}}' golang.org/x/vulndb)/data/osv" -out $(VULNDB_DIR)
	$(VULN) govulncheck -db "file://$(CURDIR)/$(VULNDB_DIR)" ./...
