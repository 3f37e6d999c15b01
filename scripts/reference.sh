#!/usr/bin/env bash
# Builds the reference plugins (containernetworking/plugins at REFERENCE_VERSION)
# into the directory given as $1, for interop tests and benchmarks (portmap,
# firewall and tuning: the plugins podman chains after the bridge). Cached.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/versions.env"
dir=${1:?usage: reference.sh DIR}
mkdir -p "$dir"
for p in ipam/host-local main/bridge main/loopback meta/portmap meta/firewall meta/tuning; do
	name=${p##*/}
	[ -x "$dir/$name" ] && continue
	echo "reference.sh: building reference $name $REFERENCE_VERSION" >&2
	GOBIN="$dir" GOFLAGS=-mod=mod go install "github.com/containernetworking/plugins/plugins/$p@$REFERENCE_VERSION"
done
