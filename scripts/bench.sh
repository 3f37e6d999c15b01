#!/usr/bin/env bash
# Times our plugins beside the reference plugins (see internal/bench).
# Run by `make bench`, which builds bin/ and the reference first; it also
# works on its own. BENCH_QUICK=1 gives a smoke run of a minute or two;
# BENCH_ONLY=<scenario,...> runs some scenarios alone (docs/performance.md).
# Writes the report to .bench/results.md and a plot of ADD/DEL latency to
# docs/bench.svg (a full run) or .bench/bench.svg (quick or BENCH_ONLY runs);
# the harness prints both paths.
# Needs root for the bridge scenarios (they run in network namespaces the
# bench creates and removes); host-local and VERSION run without.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
. "$here/versions.env"
cd "$root"

export FLATCNI_BIN=${FLATCNI_BIN:-$root/bin}
export FLATCNI_REF_BIN=${FLATCNI_REF_BIN:-$root/.bench/ref-$REFERENCE_VERSION}
if ! [ -x "$FLATCNI_REF_BIN/bridge" ] || ! [ -x "$FLATCNI_REF_BIN/host-local" ] || ! [ -x "$FLATCNI_REF_BIN/portmap" ]; then
	bash "$here/reference.sh" "$FLATCNI_REF_BIN"
fi
for p in bridge host-local; do
	[ -x "$FLATCNI_BIN/$p" ] || echo "bench.sh: ours: not built ($FLATCNI_BIN/$p missing); benchmarking the reference only" >&2
done

# Build the harness once, and the start-up floors (hello-world, and a program
# that only links the required libraries) as the plugins are built (the
# Makefile's flags).
mkdir -p .bench
go build -o .bench/flatcni-bench ./internal/bench
CGO_ENABLED=0 go build -trimpath -ldflags="-s -w" -o .bench/hello ./internal/bench/hello
CGO_ENABLED=0 go build -trimpath -ldflags="-s -w" -o .bench/libfloor ./internal/bench/libfloor

# Write out what the builds above left dirty in the page cache: host-local's
# fsyncs, timed first, would otherwise wait for that writeback.
sync

# The plugins keep lock files in /run/flatcni and /run/netns entries come and
# go; remove the lock files this run adds, whatever happens.
. "$here/locks.sh"
locks_note
trap locks_cleanup EXIT
.bench/flatcni-bench -hello "$root/.bench/hello" -libfloor "$root/.bench/libfloor" -out "$root/.bench/results.md" "$@"
