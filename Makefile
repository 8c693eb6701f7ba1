# Authly. Every tool runs through `go tool`, pinned in go.mod (golangci-lint in its own
# modfile), so nothing is installed globally.
SHELL := bash
GO ?= go
LINT := $(GO) tool -modfile=tools/golangci-lint.mod golangci-lint

.PHONY: all generate generate-check build run test lint

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

## lint: go vet plus golangci-lint
lint:
	$(GO) vet ./...
	$(LINT) run ./...
