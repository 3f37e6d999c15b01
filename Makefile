# flatcni: drop-in bridge and host-local CNI plugins.
include scripts/versions.env

PREFIX  ?= /opt/cni
DESTDIR ?=
BINDIR  := $(DESTDIR)$(PREFIX)/bin
GO      ?= go
GOFLAGS_BUILD := -trimpath -ldflags="-s -w"
# One program (plugins/flatcni) installed under each plugin's name: it
# dispatches on the name it was started under.
PLUGINS := bridge host-local
# The reference plugins, built at REFERENCE_VERSION, for interop tests and benchmarks.
REFDIR  := $(CURDIR)/.bench/ref-$(REFERENCE_VERSION)

export FLATCNI_BIN := $(CURDIR)/bin
export FLATCNI_REF_BIN := $(REFDIR)

.PHONY: all build install test unit integration demo bench fuzz deps reference clean

all: build

build:
	@mkdir -p bin
	CGO_ENABLED=0 $(GO) build $(GOFLAGS_BUILD) -o bin/bridge ./plugins/flatcni
	ln -f bin/bridge bin/host-local

install: build
	install -d $(BINDIR)
	install -m 0755 $(addprefix bin/,$(PLUGINS)) $(BINDIR)/

deps:
	@bash scripts/deps.sh

reference:
	@bash scripts/reference.sh $(REFDIR)

# Every test: unit tests, the race detector on the libraries, and the root
# integration tests (they skip themselves when not run as root).
test: deps build reference
	$(GO) vet ./...
	$(GO) test -count=1 -race -timeout 10m ./pkg/... ./plugins/... ./internal/...
	$(GO) test -count=1 -p 1 -timeout 15m ./integration/...

unit:
	$(GO) test -count=1 ./pkg/... ./plugins/... ./internal/...

integration: deps build reference
	$(GO) test -count=1 -p 1 -v -timeout 15m ./integration/...

demo:
	@bash scripts/deps.sh demo
	@$(MAKE) --no-print-directory build
	@bash scripts/demo.sh

bench: deps build reference
	@bash scripts/bench.sh

FUZZTIME ?= 30s
fuzz:
	@bash scripts/fuzz.sh $(FUZZTIME)

clean:
	rm -rf bin .bench
