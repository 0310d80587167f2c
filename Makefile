# daguha: build, test and tooling entry points. `make test` is what CI runs.

GO        ?= go
BIN       ?= bin/daguha
PROTOC_GEN_GO_VERSION      := v1.36.12
PROTOC_GEN_GO_GRPC_VERSION := v1.6.2
GOBIN     := $(shell $(GO) env GOPATH)/bin
TEST_TIMEOUT ?= 20m

.PHONY: all build test check vet fmt-check unit fuzz-short fuzz-long bench bench-micro chaos proto proto-check tools run clean image docker-test

all: build

build:
	CGO_ENABLED=0 $(GO) build -o $(BIN) ./cmd/daguha

# The full suite: formatting, vet, then every package's tests with the race
# detector; the process-level tests build the binary with it too.
test: check
	DAGUHA_RACE_BINARY=1 $(GO) test -race -count=1 -timeout $(TEST_TIMEOUT) ./...

check: fmt-check vet
	$(GO) build ./...

vet:
	$(GO) vet ./...

fmt-check:
	@out="$$(gofmt -l .)"; if [ -n "$$out" ]; then echo "gofmt needed on:"; echo "$$out"; exit 1; fi

# Fast feedback: the packages without process-level tests.
unit:
	$(GO) test -count=1 ./fsm/... ./store/... ./rpc/...

# Every fuzz target in the repository (func FuzzXxx in a _test.go file),
# one at a time for FUZZTIME each: go test -fuzz takes one target per run.
# Crashing inputs land in the package's testdata/fuzz/FuzzXxx: commit them
# with the fix. fuzz-short is CI's few seconds each; fuzz-long a soak.
FUZZTIME ?= 3s
FUZZFLAGS ?= -parallel=1
fuzz-short:
	@set -e; grep -rl --include='*_test.go' '^func Fuzz' . | sort | while read -r file; do \
		pkg="./$$(dirname "$${file#./}")"; \
		for target in $$(sed -n 's/^func \(Fuzz[A-Za-z0-9_]*\)(.*/\1/p' "$$file"); do \
			echo "--- fuzz $$pkg $$target for $(FUZZTIME)"; \
			$(GO) test -run '^$$' -fuzz "^$$target$$" -fuzztime $(FUZZTIME) $(FUZZFLAGS) "$$pkg"; \
		done; \
	done

fuzz-long:
	$(MAKE) fuzz-short FUZZTIME=10m

# Benchmarks against real processes; each prints its figures as JSON.
BENCHTIME ?= 10x
# The benchmark suite against real processes: one JSON object per figure
# on stdout, a table on stderr, results in ops/bench/results/<date>.json.
# BENCH_QUICK=1 runs a reduced version in about a minute.
bench:
	$(GO) test -c -o bin/bench.test ./ops/bench
	cd ops/bench && DAGUHA_BENCH=1 ../../bin/bench.test -test.run '^TestBenchSuite$$' -test.timeout 90m

# The fault-injection soak (docs/reliability.md): CHAOS_DURATION of random
# faults against real processes in network namespaces (root), then the
# checkers; prints a JSON summary. CHAOS_SEED replays a run. make test
# runs the short mode (TestChaosShort) on its own.
CHAOS_DURATION ?= 30m
chaos:
	$(GO) test -c -o bin/chaos.test ./ops/chaos
	cd ops/chaos && CHAOS_DURATION=$(CHAOS_DURATION) ../../bin/chaos.test -test.run '^TestChaosSoak$$' -test.v -test.timeout 0

# Go microbenchmarks of single parts (matching, heartbeats).
bench-micro:
	$(GO) test -run '^$$' -bench . -benchtime $(BENCHTIME) ./dispatch ./ops/bench

tools:
	$(GO) install google.golang.org/protobuf/cmd/protoc-gen-go@$(PROTOC_GEN_GO_VERSION)
	$(GO) install google.golang.org/grpc/cmd/protoc-gen-go-grpc@$(PROTOC_GEN_GO_GRPC_VERSION)

# Regenerates the committed Go code from proto/*.proto (needs protoc and
# `make tools`).
proto:
	PATH="$(GOBIN):$$PATH" protoc -I proto \
		--go_out=proto --go_opt=paths=source_relative \
		--go-grpc_out=proto --go-grpc_opt=paths=source_relative \
		proto/daguha/v1/*.proto

# Fails when the committed generated code does not match the .proto files.
proto-check: proto
	@git diff --exit-code -- proto || { echo "generated code in proto/ is stale: run make proto and commit"; exit 1; }

# Runs a single-node development server on http://127.0.0.1:8080.
run:
	$(GO) run ./cmd/daguha agent -dev

clean:
	rm -rf bin

# The container image, built with no registry: a static binary and the
# host's CA certificates in a FROM scratch image (see Dockerfile), plus
# the host's static busybox (sh, cat, sleep, ...) when there is one
# (Debian: busybox-static), so workers can run their steps' commands.
IMAGE     ?= daguha:latest
IMAGE_DIR := bin/image
VERSION   ?= $(shell git describe --always --dirty 2>/dev/null || echo dev)
BUSYBOX   ?= $(firstword $(wildcard /bin/busybox /usr/bin/busybox))
CA_CERTS  ?= /etc/ssl/certs/ca-certificates.crt

image:
	rm -rf $(IMAGE_DIR)
	mkdir -p $(IMAGE_DIR)/etc/ssl/certs $(IMAGE_DIR)/bin $(IMAGE_DIR)/tmp $(IMAGE_DIR)/var/lib/daguha/data
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags "-s -w -X main.version=$(VERSION)" -o $(IMAGE_DIR)/daguha ./cmd/daguha
	cp $(CA_CERTS) $(IMAGE_DIR)/etc/ssl/certs/ca-certificates.crt
	printf 'root:x:0:0:root:/root:/sbin/nologin\ndaguha:x:65532:65532:daguha:/var/lib/daguha:/sbin/nologin\n' > $(IMAGE_DIR)/etc/passwd
	printf 'root:x:0:\ndaguha:x:65532:\n' > $(IMAGE_DIR)/etc/group
	chmod 1777 $(IMAGE_DIR)/tmp
	@if [ -n "$(BUSYBOX)" ] && ldd "$(BUSYBOX)" 2>&1 | grep -q 'not a dynamic executable'; then \
		cp "$(BUSYBOX)" $(IMAGE_DIR)/bin/busybox; \
		for applet in $$("$(BUSYBOX)" --list); do [ "$$applet" = busybox ] || ln -sf busybox $(IMAGE_DIR)/bin/$$applet; done; \
	else \
		echo "warning: no static busybox (apt-get install busybox-static): the image has no shell, workers in it cannot run steps"; \
	fi
	docker build -f Dockerfile -t $(IMAGE) $(IMAGE_DIR)

# The Compose test alone: builds the image, runs three servers and seven
# workers in Docker, stops the leader and runs the seed's example again
# (under a minute once the image's build is cached). make test runs it too
# where Docker answers (DAGUHA_DOCKER_TESTS=0 turns it off).
docker-test:
	DAGUHA_DOCKER_TESTS=1 $(GO) test -count=1 -run 'TestCompose' -v ./ops/deploy
