# quics build, test and tooling. Every tool is installed here at a pinned
# version with `go install`; nothing beyond Go is assumed on the machine.

GO      ?= go
BIN     := $(CURDIR)/bin
TOOLS   := $(BIN)/tools

GOLANGCI_LINT_VERSION := v2.15.0
STATICCHECK_VERSION   := v0.8.2
PROTOC_GEN_GO_VERSION := v1.36.12
# Versity Gateway: the real S3-compatible server the S3 backend's tests
# run against (issue #10).
VERSITYGW_VERSION     := v1.8.0

FUZZTIME  ?= 10s
BENCHTIME ?= 1s
TESTFLAGS ?=

.PHONY: all build test vet lint staticcheck ci fuzz bench bench-e2e proto tools versitygw clean

all: build

build:
	@mkdir -p $(BIN)
	$(GO) build -trimpath -o $(BIN)/ ./cmd/...

# test installs versitygw first and requires it (QUICS_REQUIRE_S3=1): the S3
# tests fail rather than skip when it is missing. `go test ./...` alone skips
# them with a message saying how to install it.
test: $(TOOLS)/versitygw
	QUICS_REQUIRE_S3=1 $(GO) test -race -timeout 20m $(TESTFLAGS) ./...

vet:
	$(GO) vet ./...
	@out=$$(gofmt -l $$(find . -name '*.go' -not -path './bin/*')); \
	if [ -n "$$out" ]; then echo "gofmt needed on:"; echo "$$out"; exit 1; fi

lint: $(TOOLS)/golangci-lint
	$(TOOLS)/golangci-lint run ./...

staticcheck: $(TOOLS)/staticcheck
	$(TOOLS)/staticcheck ./...

# ci is the README's test command: vet, lint (golangci-lint runs staticcheck,
# depguard's layering rules and the rest) and the race-enabled tests.
ci: vet lint test

# fuzz runs every fuzz target of every package for FUZZTIME each.
fuzz:
	@set -e; for pkg in $$($(GO) list ./...); do \
	  for f in $$($(GO) test -list '^Fuzz' $$pkg | grep '^Fuzz' || true); do \
	    echo "== $$pkg $$f"; \
	    $(GO) test -run '^$$' -fuzz "^$$f$$" -fuzztime $(FUZZTIME) -fuzzminimizetime 5s $$pkg; \
	  done; \
	done

bench:
	$(GO) test -run '^$$' -bench . -benchmem -benchtime $(BENCHTIME) ./...

# bench-e2e is the end-to-end benchmark (bench/, issue #7): quics against
# rsync and a raw quic-go transfer on 127.0.0.1, one table on stdout.
# SCALE (default 1) shrinks the datasets, RUNS (default 3) is the number of
# runs whose medians are shown; e.g. make bench-e2e SCALE=0.05 RUNS=1.
# WAN=1 (root, ip and tc) runs it across two network namespaces joined by a
# 100 Mbit/s tbf-limited veth pair instead (quics-bench --wan; --wan-rate
# and --wan-delay tune it); wire bytes then come from the veth counters.
bench-e2e:
	$(GO) run ./bench/cmd/quics-bench $(if $(filter-out 0,$(WAN)),--wan)

# proto regenerates the committed protobuf code; needs protoc (Debian's
# protobuf-compiler). CI never runs it: generated code is committed.
proto: $(TOOLS)/protoc-gen-go
	PATH="$(TOOLS):$$PATH" protoc --go_out=. --go_opt=paths=source_relative $$(find . -name '*.proto' -not -path './bin/*')

tools: $(TOOLS)/golangci-lint $(TOOLS)/staticcheck $(TOOLS)/protoc-gen-go $(TOOLS)/versitygw

versitygw: $(TOOLS)/versitygw

$(TOOLS)/versitygw:
	GOBIN=$(TOOLS) $(GO) install github.com/versity/versitygw/cmd/versitygw@$(VERSITYGW_VERSION)

$(TOOLS)/golangci-lint:
	GOBIN=$(TOOLS) $(GO) install github.com/golangci/golangci-lint/v2/cmd/golangci-lint@$(GOLANGCI_LINT_VERSION)

$(TOOLS)/staticcheck:
	GOBIN=$(TOOLS) $(GO) install honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION)

$(TOOLS)/protoc-gen-go:
	GOBIN=$(TOOLS) $(GO) install google.golang.org/protobuf/cmd/protoc-gen-go@$(PROTOC_GEN_GO_VERSION)

clean:
	rm -rf $(BIN)

# Reliability suite (issue #8). crash-long kills the real server 50 times
# during uploads, gc and view writes (QUICS_CRASH_SEED replays a run);
# fuzz-long runs every fuzz target for 5 minutes; load runs 50 in-process
# clients against a real quics and prints peak RSS, CPU and commit latency.
.PHONY: crash-long fuzz-long load

crash-long:
	QUICS_CRASH_TRIALS=$${QUICS_CRASH_TRIALS:-50} $(GO) test -race -timeout 60m -count=1 -v -run '^TestCrash' ./e2e/

fuzz-long:
	$(MAKE) fuzz FUZZTIME=$${FUZZTIME:-5m}

load:
	QUICS_LOAD_CLIENTS=$${QUICS_LOAD_CLIENTS:-50} $(GO) test -timeout 60m -count=1 -v -run '^TestLoad' ./e2e/
