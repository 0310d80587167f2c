# daguha: build, test and tooling entry points. `make test` is what CI runs:
# on a Debian-like machine as root it installs what its tests need first
# (make deps); elsewhere the tests that need a missing tool skip, naming
# the package to install.

GO        ?= go
BIN       ?= bin/daguha
PROTOC_GEN_GO_VERSION      := v1.36.12
PROTOC_GEN_GO_GRPC_VERSION := v1.6.2
GOBIN     := $(shell $(GO) env GOPATH)/bin
TEST_TIMEOUT ?= 20m

.PHONY: all build deps test check vet fmt-check unit fuzz-short fuzz-long bench bench-micro chaos proto proto-check tools run clean image image-shell docker-test release release-check

# The version (the VERSION file, semantic versioning) and the commit that
# make build, make release and make image stamp into the binary; an
# unstamped build (go run, go build) reports VERSION's version with -dev
# (see cluster/buildinfo, the one home of the version that daguha version,
# the API's health and gossip report). The commit gets -dirty when tracked
# files differ from it. A -X that names a variable no longer there is
# ignored by the linker: make release-check catches that, since the binary
# would then report VERSION-dev.
VERSION   := $(shell cat VERSION)
COMMIT    := $(shell c="$$(git rev-parse HEAD 2>/dev/null)" && { git diff --quiet HEAD 2>/dev/null || c="$$c-dirty"; }; echo "$${c:-unknown}")
BUILDINFO := github.com/daguha/daguha/cluster/buildinfo
STAMP     := -X $(BUILDINFO).version=$(VERSION) -X $(BUILDINFO).commit=$(COMMIT)

all: build

build:
	CGO_ENABLED=0 $(GO) build -ldflags "$(STAMP)" -o $(BIN) ./cmd/daguha

# Debian packages the tests use, each with the probe that tells it is
# there; make deps installs the missing ones as root where apt-get is, and
# otherwise says what to install (the tests that need them skip).
APT_GET   ?= apt-get
# Where make image and make deps look for a static busybox.
BUSYBOX_PATHS ?= /bin/busybox /usr/bin/busybox
# Succeeds when $$1 is an executable with no dynamic loader.
STATIC_PROBE := is_static() { [ -x "$$1" ] && ldd "$$1" 2>&1 | grep -Eq 'not a dynamic executable|statically linked'; }
FIND_STATIC_BUSYBOX := for p in $(BUSYBOX_PATHS); do is_static "$$p" && { echo "$$p"; break; }; done
CAN_APT := [ "$$(id -u)" = 0 ] && command -v $(APT_GET) >/dev/null 2>&1

deps:
	@$(STATIC_PROBE); have() { command -v "$$1" >/dev/null 2>&1; }; \
	missing=""; \
	have protoc || missing="$$missing protobuf-compiler"; \
	have ip || missing="$$missing iproute2"; \
	have perl || missing="$$missing perl"; \
	[ -x /usr/sbin/iptables ] || missing="$$missing iptables"; \
	[ -x /usr/sbin/sshd ] || missing="$$missing openssh-server"; \
	have chromium || have chromium-browser || have google-chrome || missing="$$missing chromium"; \
	have zip || missing="$$missing zip"; have unzip || missing="$$missing unzip"; have bzip2 || missing="$$missing bzip2"; \
	[ -n "$$($(FIND_STATIC_BUSYBOX))" ] || missing="$$missing busybox-static"; \
	lean=""; have promtool || lean="prometheus"; \
	[ -n "$$missing$$lean" ] || exit 0; \
	if $(CAN_APT); then \
		echo "--- make deps: installing$$missing $$lean"; \
		export DEBIAN_FRONTEND=noninteractive; \
		$(APT_GET) update -qq && \
		{ [ -z "$$missing" ] || $(APT_GET) install -y -qq $$missing >/dev/null; } && \
		{ [ -z "$$lean" ] || $(APT_GET) install -y -qq --no-install-recommends $$lean >/dev/null; } || \
		echo "make deps: $(APT_GET) could not install$$missing $$lean: the tests that need them skip, naming the package"; \
	else \
		echo "make deps: missing$$missing $$lean, and no root with $(APT_GET) to install them: the tests that need them skip."; \
		[ -z "$$missing" ] || echo "  to run them, as root: apt-get install$$missing"; \
		[ -z "$$lean" ] || echo "  and: apt-get install --no-install-recommends $$lean   (for promtool)"; \
	fi

# The full suite: set-up (make deps), formatting, vet, then every
# package's tests with the race detector; the process-level tests build
# the binary with it too.
# The 386 run: index arithmetic that only a 32-bit int can break (rpc's
# leader-first picker), on this machine's own CPU.
test: deps check
	DAGUHA_RACE_BINARY=1 $(GO) test -race -count=1 -timeout $(TEST_TIMEOUT) ./...
	GOARCH=386 $(GO) test -count=1 -run 'TestLeaderFirstPickerWrapsAround' ./rpc

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
# .ci/fuzz-target runs one, once more after Go 1.26's spurious deadline
# failure (golang/go#75804) and never after any other.
FUZZTIME ?= 3s
FUZZFLAGS ?= -parallel=1
fuzz-short:
	@set -e; grep -rl --include='*_test.go' '^func Fuzz' . | sort | while read -r file; do \
		pkg="./$$(dirname "$${file#./}")"; \
		for target in $$(sed -n 's/^func \(Fuzz[A-Za-z0-9_]*\)(.*/\1/p' "$$file"); do \
			echo "--- fuzz $$pkg $$target for $(FUZZTIME)"; \
			GO="$(GO)" .ci/fuzz-target "$$pkg" "$$target" $(FUZZTIME) $(FUZZFLAGS); \
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
	@command -v protoc >/dev/null 2>&1 || { echo "make proto needs protoc: install protobuf-compiler (apt-get install protobuf-compiler, or make deps as root)" >&2; exit 1; }
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
	rm -rf bin $(DIST)

# Release artifacts: a static binary for each of RELEASE_ARCHES (Linux)
# in $(DIST), named daguha_<version>_linux_<arch>, stamped with VERSION
# and the commit; where a Docker Engine answers, the image (make image) for
# this machine's architecture as daguha_<version>_image_linux_<arch>.tar.gz
# (docker save; load it with docker load); and their checksums in
# SHA256SUMS (sha256sum's format, names relative to $(DIST)). make
# release-check verifies the checksums, that the binary for this machine
# reports VERSION and the commit, and that the image runs and reports
# VERSION.
DIST           ?= dist
RELEASE_ARCHES ?= amd64 arm64
release:
	rm -rf $(DIST)
	mkdir -p $(DIST)
	@set -e; for arch in $(RELEASE_ARCHES); do \
		echo "--- daguha $(VERSION) ($(COMMIT)) for linux/$$arch"; \
		CGO_ENABLED=0 GOOS=linux GOARCH=$$arch $(GO) build -trimpath -ldflags "-s -w $(STAMP)" \
			-o $(DIST)/daguha_$(VERSION)_linux_$$arch ./cmd/daguha; \
	done
	@set -e; if docker version >/dev/null 2>&1; then \
		arch="$$($(GO) env GOHOSTARCH)"; \
		echo "--- the image daguha:$(VERSION) for linux/$$arch"; \
		$(MAKE) --no-print-directory image IMAGE=daguha:$(VERSION); \
		docker save daguha:$(VERSION) | gzip -n > $(DIST)/daguha_$(VERSION)_image_linux_$$arch.tar.gz; \
	else \
		echo "make release: no Docker Engine answers here: the image (make image) is left out of $(DIST)"; \
	fi
	cd $(DIST) && sha256sum daguha_$(VERSION)_* > SHA256SUMS
	@cat $(DIST)/SHA256SUMS

release-check: release
	cd $(DIST) && sha256sum -c SHA256SUMS
	@set -e; arch="$$($(GO) env GOHOSTARCH)"; bin=$(DIST)/daguha_$(VERSION)_linux_$$arch; \
	[ "$$(uname -s)" = Linux ] && [ -x "$$bin" ] || { echo "make release-check: no release binary for this machine (linux/$$arch) to run: only the checksums were checked"; exit 0; }; \
	out="$$("$$bin" version)"; echo "$$out"; \
	echo "$$out" | grep -qxF "version: $(VERSION)" || { echo "make release-check: $$bin reports another version than VERSION's $(VERSION)" >&2; exit 1; }; \
	echo "$$out" | grep -qxF "commit: $(COMMIT)" || { echo "make release-check: $$bin reports another commit than $(COMMIT)" >&2; exit 1; }; \
	image=$(DIST)/daguha_$(VERSION)_image_linux_$$arch.tar.gz; \
	[ -f "$$image" ] || exit 0; \
	docker load -q < "$$image"; \
	out="$$(docker run --rm daguha:$(VERSION) version)"; \
	echo "$$out" | grep -qxF "version: $(VERSION)" || { echo "make release-check: the image $$image reports another version than VERSION's $(VERSION): $$out" >&2; exit 1; }; \
	echo "the image in $$image runs and reports $(VERSION)"

# The container image, built with no registry: a static binary and the
# host's CA certificates in a FROM scratch image (see Dockerfile), and a
# static busybox (sh, cat, sleep, ...) with a link for each applet, so
# workers can run their steps' commands (sh -c). No image is built
# without that shell: make image-shell finds a static busybox (BUSYBOX=,
# or one in BUSYBOX_PATHS), installs busybox-static where it can (root
# and apt-get), or fails saying what to install.
IMAGE     ?= daguha:latest
IMAGE_DIR ?= bin/image
BUSYBOX   ?=
CA_CERTS  ?= /etc/ssl/certs/ca-certificates.crt
BUSYBOX_MISSING := make image: no static busybox for the image's shell (its workers run each step with sh -c): install busybox-static (as root: apt-get install busybox-static), or set BUSYBOX to a static busybox

# Prints the path of the static busybox make image copies (installing
# busybox-static where it can), or fails with $(BUSYBOX_MISSING).
image-shell:
	@$(STATIC_PROBE); bb="$(BUSYBOX)"; \
	if [ -n "$$bb" ]; then \
		is_static "$$bb" || { echo "make image: BUSYBOX=$$bb is not a static executable: install busybox-static (as root: apt-get install busybox-static), or set BUSYBOX to a static busybox" >&2; exit 1; }; \
		echo "$$bb"; exit 0; \
	fi; \
	bb="$$($(FIND_STATIC_BUSYBOX))"; \
	if [ -z "$$bb" ] && $(CAN_APT); then \
		echo "--- make image: installing busybox-static (the image's shell)" >&2; \
		export DEBIAN_FRONTEND=noninteractive; \
		{ $(APT_GET) update -qq && $(APT_GET) install -y -qq busybox-static >/dev/null; } >&2 || \
			echo "make image: $(APT_GET) install busybox-static failed" >&2; \
		bb="$$($(FIND_STATIC_BUSYBOX))"; \
	fi; \
	[ -n "$$bb" ] || { echo "$(BUSYBOX_MISSING)" >&2; exit 1; }; \
	echo "$$bb"

image:
	@bb="$$($(MAKE) -s --no-print-directory image-shell)" || exit 1; \
	echo "--- busybox from $$bb"; \
	set -ex; \
	rm -rf $(IMAGE_DIR); \
	mkdir -p $(IMAGE_DIR)/etc/ssl/certs $(IMAGE_DIR)/bin $(IMAGE_DIR)/tmp $(IMAGE_DIR)/var/lib/daguha/data; \
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags "-s -w $(STAMP)" -o $(IMAGE_DIR)/daguha ./cmd/daguha; \
	cp $(CA_CERTS) $(IMAGE_DIR)/etc/ssl/certs/ca-certificates.crt; \
	printf 'root:x:0:0:root:/root:/sbin/nologin\ndaguha:x:65532:65532:daguha:/var/lib/daguha:/sbin/nologin\n' > $(IMAGE_DIR)/etc/passwd; \
	printf 'root:x:0:\ndaguha:x:65532:\n' > $(IMAGE_DIR)/etc/group; \
	chmod 1777 $(IMAGE_DIR)/tmp; \
	cp "$$bb" $(IMAGE_DIR)/bin/busybox; \
	set +x; \
	for applet in $$("$$bb" --list); do [ "$$applet" = busybox ] || ln -sf busybox $(IMAGE_DIR)/bin/$$applet; done; \
	[ -x $(IMAGE_DIR)/bin/sh ] || { echo "make image: $$bb has no sh applet" >&2; exit 1; }; \
	set -x; \
	docker build -f Dockerfile -t $(IMAGE) $(IMAGE_DIR)

# The Compose test alone: builds the image, runs three servers and seven
# workers in Docker, stops the leader and runs the seed's example again
# (under a minute once the image's build is cached). make test runs it too
# where Docker answers (DAGUHA_DOCKER_TESTS=0 turns it off).
docker-test:
	DAGUHA_DOCKER_TESTS=1 $(GO) test -count=1 -run 'TestCompose' -v ./ops/deploy
