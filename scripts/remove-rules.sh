#!/usr/bin/env bash
# Removes what flatcni's bridge plugin keeps in the node's firewall, after
# the node was switched back to the reference plugins (docs/migration.md):
# the rule sets of every network
# (masquerade and forwarding, isolation, published ports, MAC spoof checks)
# in iptables (iptables-nft or -legacy) and nftables, and route_localnet on
# the bridges whose ports they published. The reference plugins' rules are
# left alone.
#
# Run it as root in the node's network namespace once no container that
# flatcni attached is left: those containers' traffic needs these rules. It
# refuses while a host veth of flatcni (alias "flatcni:...") exists, unless
# given -f.
set -euo pipefail

force=0
case "${1:-}" in
-f) force=1 ;;
"") ;;
*) echo "usage: $0 [-f]" >&2; exit 2 ;;
esac

if [ "$force" = 0 ] && grep -q ' alias flatcni:' <<<"$(ip -o link show)"; then
	echo "$0: containers attached by flatcni are still on this node (host veths with alias flatcni:...);" \
		"their traffic needs these rules: remove them first, or pass -f" >&2
	exit 1
fi

# The bridges whose ports were published, read before the rules go.
bridges=$(
	{
		for save in iptables-save ip6tables-save; do
			command -v "$save" >/dev/null && "$save" 2>/dev/null | grep -E -- '--comment "?flatcni-ports ' || true
		done
		command -v nft >/dev/null && nft list ruleset 2>/dev/null | grep -E 'comment "flatcni-ports ' || true
	} | grep -oE -- '(-o |oifname ")[^" ]+' | sed -E 's/^(-o |oifname ")//' | sort -u
)

if command -v nft >/dev/null; then
	# The nftables backend's tables, and its accepts in iptables-nft's
	# FORWARD chains (found by their comment, deleted by handle, before
	# iptables below would try to match them by their text).
	tables=$(nft list tables 2>/dev/null || true)
	while read -r _ family name; do
		case "$name" in
		flatcni-* | flatcni_ports-* | flatcni_isolation) nft delete table "$family" "$name" ;;
		esac
	done <<<"$tables"
	for family in ip ip6; do
		handles=$(nft -a list chain "$family" filter FORWARD 2>/dev/null |
			grep -E 'comment "flatcni[ -]' | grep -oE '[0-9]+$' || true)
		for handle in $handles; do
			nft delete rule "$family" filter FORWARD handle "$handle"
		done
	done
fi

# The iptables backend's chains (FLATCNI-…, FLATCNIP-…, FLATCNI-ISOLATED)
# and its rules in the built-in chains (all with a "flatcni" comment), one
# iptables-restore per table.
for ipt in iptables ip6tables; do
	command -v "$ipt-save" >/dev/null || continue
	for table in raw mangle nat filter; do
		dump=$("$ipt-save" -t "$table" 2>/dev/null) || continue
		chains=$(printf '%s\n' "$dump" | grep -oE '^:FLATCNI[A-Z]*-[0-9A-Za-z]+' | cut -c2- || true)
		rules=$(printf '%s\n' "$dump" | grep -E -- '--comment "?flatcni' | grep -vE '^-A FLATCNI' || true)
		[ -n "$chains$rules" ] || continue
		{
			echo "*$table"
			[ -z "$rules" ] || printf '%s\n' "$rules" | sed 's/^-A /-D /'
			for c in $chains; do echo "-F $c"; done
			for c in $chains; do echo "-X $c"; done
			echo COMMIT
		} | "$ipt-restore" --noflush
	done
done

# The MAC spoof checks.
if command -v nft >/dev/null && nft list table bridge flatcni-macspoof >/dev/null 2>&1; then
	nft delete table bridge flatcni-macspoof
fi

# route_localnet went on with the ports' drop of packets to 127.0.0.0/8
# from other interfaces, which is gone now. (The reference portmap turns
# it on again at its next ADD that publishes a port on the bridge.)
for br in $bridges; do
	if [ -e "/proc/sys/net/ipv4/conf/$br/route_localnet" ]; then
		echo 0 >"/proc/sys/net/ipv4/conf/$br/route_localnet"
	fi
done
