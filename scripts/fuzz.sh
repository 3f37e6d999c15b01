#!/usr/bin/env bash
# Runs each fuzz target for a bounded time (default 30s each):
#   scripts/fuzz.sh [duration]      e.g. scripts/fuzz.sh 2m
# A failing input is saved by go test under <package>/testdata/fuzz/<Target>/;
# commit it: it then runs as a regression case in every "go test".
set -euo pipefail
cd "$(dirname "$0")/.."
time="${1:-30s}"
targets=(
	"./pkg/config FuzzLoadBridge"
	"./pkg/config FuzzLoadIPAM"
	"./pkg/ipam FuzzAllocate"
)
failed=0
for t in "${targets[@]}"; do
	read -r pkg name <<<"$t"
	echo "== $name ($pkg) for $time"
	if ! go test -run='^$' -fuzz="^${name}\$" -fuzztime="$time" "$pkg"; then
		echo "!! $name failed: see $pkg/testdata/fuzz/$name/" >&2
		failed=1
	fi
done
exit "$failed"
