#!/usr/bin/env bash
# The main job end to end, inside throwaway network namespaces (never the
# host's own): host-local hands out dual-stack addresses, then two containers
# are attached with cnitool to a bridge network, ping each other and the
# gateway over IPv4 and IPv6, and everything is torn down.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=$PWD/bin
cnitool=$(command -v cnitool || echo "$(go env GOPATH)/bin/cnitool")
if [ "$(id -u)" -ne 0 ]; then
	echo "demo: needs root (network namespaces)" >&2
	exit 1
fi

id=$RANDOM
node=flatcni-demo-node-$id
ctrs=(flatcni-demo-a-$id flatcni-demo-b-$id)
work=$(mktemp -d /tmp/flatcni-demo.XXXXXX)
# The lock files the plugins add in /run/flatcni go too.
. scripts/locks.sh
locks_note
# cnitool keeps its cache in /var/lib/cni (no setting moves it): the empty
# directories go too when this run made them.
cni_cache_existed=$([ -e /var/lib/cni ] && echo yes || true)
cleanup() {
	for c in "${ctrs[@]}"; do
		ip netns exec "$node" env NETCONFPATH="$work/net" CNI_PATH="$bin" \
			"$cnitool" del demo "/var/run/netns/$c" >/dev/null 2>&1 || true
		ip netns del "$c" 2>/dev/null || true
	done
	ip netns del "$node" 2>/dev/null || true
	rm -rf "$work"
	locks_cleanup
	[ -n "$cni_cache_existed" ] || rmdir /var/lib/cni/results /var/lib/cni 2>/dev/null || true
}
trap cleanup EXIT
step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

step "1. host-local alone: allocate, show and release dual-stack addresses"
conf='{"cniVersion":"1.1.0","name":"demo-ipam","ipam":{"type":"host-local","dataDir":"'$work'/leases",
  "ranges":[[{"subnet":"10.88.0.0/24"}],[{"subnet":"fd88::/64"}]]}}'
for c in c1 c2; do
	echo "$conf" | CNI_COMMAND=ADD CNI_CONTAINERID=$c CNI_NETNS=/none CNI_IFNAME=eth0 CNI_PATH="$bin" \
		"$bin/host-local" | tr -d ' \n' | sed 's/$/\n/'
done
echo "lease files:"; (cd "$work/leases/demo-ipam" && for f in [0-9a-f]*[.:]*; do
	printf '  %-14s -> %s\n' "$f" "$(tr '\r\n' '  ' <"$f")"; done)
for c in c1 c2; do
	echo "$conf" | CNI_COMMAND=DEL CNI_CONTAINERID=$c CNI_IFNAME=eth0 CNI_PATH="$bin" "$bin/host-local"
done
echo "released: $(ls "$work/leases/demo-ipam" | grep -c '^[0-9a-f].*[.:]' || true) leases left"

step "2. bridge: two containers on a dual-stack network (node namespace $node)"
ip netns add "$node"
ip netns exec "$node" ip link set lo up
for c in "${ctrs[@]}"; do ip netns add "$c"; done
mkdir -p "$work/net"
cat >"$work/net/10-demo.conflist" <<EOC
{
  "cniVersion": "1.1.0",
  "name": "demo",
  "plugins": [{
    "type": "bridge",
    "bridge": "demo0",
    "isGateway": true,
    "ipMasq": true,
    "ipam": {
      "type": "host-local",
      "dataDir": "$work/leases",
      "ranges": [[{"subnet": "10.88.1.0/24"}], [{"subnet": "fd88:1::/64"}]]
    }
  }]
}
EOC
run() { ip netns exec "$node" env NETCONFPATH="$work/net" CNI_PATH="$bin" "$cnitool" "$@"; }
declare -A v4 v6
for c in "${ctrs[@]}"; do
	run add demo "/var/run/netns/$c" >/dev/null
	v4[$c]=$(ip netns exec "$c" ip -4 -o addr show eth0 | awk '{print $4}')
	v6[$c]=$(ip netns exec "$c" ip -6 -o addr show eth0 scope global | awk '{print $4}')
	echo "$c: eth0 ${v4[$c]} ${v6[$c]}"
done
echo "node: $(ip netns exec "$node" ip -br addr show demo0)"

step "3. ping each other and the gateway"
a=${ctrs[0]} b=${ctrs[1]}
for target in "${v4[$b]%/*}" "${v6[$b]%/*}" 10.88.1.1 fd88:1::1; do
	ip netns exec "$a" ping -c1 -W2 "$target" | grep -E 'bytes from|loss'
done

step "4. CHECK, then tear down"
run check demo "/var/run/netns/$a" && echo "CHECK ok"
for c in "${ctrs[@]}"; do run del demo "/var/run/netns/$c"; done
echo "links left on the node: $(ip netns exec "$node" ip -br link | awk '{print $1}' | tr '\n' ' ')"
echo "leases left: $(find "$work/leases/demo" -maxdepth 1 -type f -name '*[.:]*' ! -name 'last_reserved*' | wc -l)"
echo "masquerade rules left: $(ip netns exec "$node" iptables-save | grep -c FLATCNI || true)"
step "done"
