#!/usr/bin/env bash
# Installs what a fresh Debian machine lacks to build, test, demo and benchmark the
# plugins. Does nothing when everything is already present. "deps.sh demo"
# installs only what make demo needs (no container runtimes).
set -euo pipefail
only_demo=false
[ "${1:-}" = demo ] && only_demo=true
here=$(cd "$(dirname "$0")" && pwd)
. "$here/versions.env"

# Go itself is not installed here (Debian's is too old): say so clearly.
gomin=$(awk '$1 == "go" {print $2; exit}' "$here/../go.mod")
if ! command -v go >/dev/null; then
	echo "deps.sh: Go $gomin or newer is needed (https://go.dev/dl/), and 'go' is not on PATH" >&2
	exit 1
fi
gover=$(go env GOVERSION | sed 's/^go//')
if [ "$(printf '%s\n%s\n' "$gomin" "$gover" | sort -V | head -1)" != "$gomin" ]; then
	echo "deps.sh: Go $gomin or newer is needed (https://go.dev/dl/); 'go' is $gover" >&2
	exit 1
fi

need_pkgs=()
command -v ip >/dev/null        || need_pkgs+=(iproute2)
command -v iptables >/dev/null  || need_pkgs+=(iptables)
command -v ip6tables >/dev/null || need_pkgs+=(iptables)
command -v nft >/dev/null       || need_pkgs+=(nftables)
command -v ping >/dev/null      || need_pkgs+=(iputils-ping)
# Container runtimes the integration tests drive the plugins through, as
# root only (a non-root run skips those tests): containerd's CRI plugin with
# runc and a static busybox (cri_test.go, as on a Kubernetes node), and
# podman 4 with its CNI backend and crun (podman_test.go).
if [ "$(id -u)" -eq 0 ] && ! $only_demo; then
	command -v containerd >/dev/null || need_pkgs+=(containerd)
	command -v runc >/dev/null       || need_pkgs+=(runc)
	command -v nsenter >/dev/null    || need_pkgs+=(util-linux)
	dpkg-query -W -f='${Status}' busybox-static 2>/dev/null | grep -q 'ok installed' || need_pkgs+=(busybox-static)
	command -v podman >/dev/null     || need_pkgs+=(podman)
	command -v crun >/dev/null       || need_pkgs+=(crun)
fi

if [ ${#need_pkgs[@]} -gt 0 ]; then
	if [ "$(id -u)" -ne 0 ]; then
		echo "deps.sh: missing ${need_pkgs[*]} and not root; install them first" >&2
		exit 1
	fi
	echo "deps.sh: installing ${need_pkgs[*]}" >&2
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq >&2
	apt-get install -y -qq --no-install-recommends "${need_pkgs[@]}" >&2
fi

gobin=$(go env GOPATH)/bin
if ! [ -x "$gobin/cnitool" ] && ! command -v cnitool >/dev/null; then
	echo "deps.sh: installing cnitool $CNITOOL_VERSION" >&2
	go install "github.com/containernetworking/cni/cnitool@$CNITOOL_VERSION"
fi
if ! $only_demo && ! [ -x "$gobin/crictl" ] && ! command -v crictl >/dev/null; then
	echo "deps.sh: installing crictl $CRICTL_VERSION" >&2
	go install "sigs.k8s.io/cri-tools/cmd/crictl@$CRICTL_VERSION"
fi
