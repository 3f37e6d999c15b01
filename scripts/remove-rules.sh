#!/usr/bin/env bash
# Removes what flatcni's bridge plugin keeps in the node's firewall, after
# the node was switched back to the reference plugins (docs/migration.md):
# the rule sets of every network
# (masquerade and forwarding, isolation, published ports, MAC spoof checks)
# in iptables (iptables-nft or -legacy) and nftables, and route_localnet on
# the bridges whose ports they published. The reference plugins' rules are
# left alone, and so is every rule whose comment is not one of ours
# ("flatcni net=<network>..." or "flatcni-ports net=<network>...", read as
# iptables-save quotes it: a comment that only contains such text is not).
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

# ours_ipt reads iptables-save output and prints the "-A" rules whose
# comment is ours, each followed by a tab and the bridge its published
# ports use (the "br=" of a ports rule's comment, else the value of its
# "-o"), "" for the others. The words of a line are split as
# iptables-save quotes them ("..." with \" and \\ inside), so that a
# comment containing "--comment flatcni net=" is one word, not ours.
ours_ipt() {
	awk '
	function words(line,    n, i, c, w, inq, esc, started) {
		n = 0; w = ""; inq = 0; esc = 0; started = 0
		for (i = 1; i <= length(line); i++) {
			c = substr(line, i, 1)
			if (esc) { w = w c; esc = 0; continue }
			if (inq && c == "\\") { esc = 1; continue }
			if (c == "\"") { inq = !inq; started = 1; continue }
			if (!inq && c == " ") {
				if (started) { W[++n] = w; w = ""; started = 0 }
				continue
			}
			w = w c; started = 1
		}
		if (started) W[++n] = w
		return n
	}
	/^-A / {
		n = words($0); comment = ""; out = ""
		for (i = 1; i < n; i++) {
			if (W[i] == "--comment") comment = W[i + 1]
			if (W[i] == "-o") out = W[i + 1]
		}
		if (comment !~ /^flatcni(-ports)? net=/) next
		br = ""
		if (comment ~ /^flatcni-ports net=/) {
			br = out
			if (match(comment, / br=[^ ]+/)) br = substr(comment, RSTART + 4, RLENGTH - 4)
		}
		print $0 "\t" br
	}'
}

# The bridges whose ports were published, read before the rules go.
bridges=""
for save in iptables-save ip6tables-save; do
	command -v "$save" >/dev/null || continue
	dump=$("$save" 2>/dev/null) || continue
	bridges+=$(ours_ipt <<<"$dump" | cut -f2)$'\n'
done

if command -v nft >/dev/null; then
	# The bridges of the nftables backend's ports rules (a comment in nft's
	# listing holds no quote: "comment \"...\"" is the rule's own).
	ruleset=$(nft list ruleset 2>/dev/null || true)
	bridges+=$(sed -nE 's/.*comment "flatcni-ports net=[^" ]* [^"]* br=([^" ]+)".*/\1/p' <<<"$ruleset")$'\n'
	bridges+=$(sed -nE '/comment "flatcni-ports net=/s/.*oifname "([^"]+)".*/\1/p' <<<"$ruleset")$'\n'

	# The nftables backend's tables (family inet; the MAC spoof checks'
	# below), and its accepts in iptables-nft's FORWARD chains (found by
	# their comment, deleted by handle, before iptables below would try to
	# match them by their text).
	tables=$(nft list tables 2>/dev/null || true)
	while read -r _ family name; do
		case "$family $name" in
		"inet flatcni-"* | "inet flatcni_ports-"* | "inet flatcni_isolation") nft delete table "$family" "$name" ;;
		esac
	done <<<"$tables"
	for family in ip ip6; do
		handles=$(nft -a list chain "$family" filter FORWARD 2>/dev/null |
			sed -nE 's/.*comment "flatcni(-ports)? net=[^"]*" # handle ([0-9]+)$/\2/p' || true)
		for handle in $handles; do
			nft delete rule "$family" filter FORWARD handle "$handle"
		done
	done
fi

# The iptables backend's chains (FLATCNI-<hash>, FLATCNIP-<hash>,
# FLATCNI-ISOLATED) and its rules in the built-in chains (the nftables
# backend's accepts, gone above, are left out), one iptables-restore per
# table.
for ipt in iptables ip6tables; do
	command -v "$ipt-save" >/dev/null || continue
	for table in raw mangle nat filter; do
		dump=$("$ipt-save" -t "$table" 2>/dev/null) || continue
		chains=$(sed -nE 's/^:(FLATCNI-[0-9a-f]+|FLATCNIP-[0-9a-f]+|FLATCNI-ISOLATED) .*/\1/p' <<<"$dump")
		# Still there (the nftables accepts went) and in a built-in chain.
		rules=$(ours_ipt <<<"$dump" | cut -f1 | grep -vE '^-A FLATCNI' || true)
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
# from other interfaces, which is gone now: it goes off, except on a bridge
# toward which the reference portmap publishes a port (its IPv4 DNAT
# destinations, routed through the bridge): the reference turned it on for
# its own mappings, which are reached at 127.0.0.1 through it.
refdst=$(
	{
		if command -v iptables-save >/dev/null; then
			iptables-save -t nat 2>/dev/null | grep -E '^-A CNI-DN-' || true
		fi
		if command -v nft >/dev/null; then
			nft list table ip cni_hostport 2>/dev/null || true
		fi
	} | grep -oE -- '(--to-destination |dnat (ip )?to )[0-9]+\.[0-9]+\.[0-9]+\.[0-9]+' | grep -oE '[0-9.]+$' | sort -u || true
)
keep=" "
for ip in $refdst; do
	dev=$(ip -4 -o route get "$ip" 2>/dev/null | sed -nE 's/.* dev ([^ ]+).*/\1/p' || true)
	keep+="$dev "
done
for br in $(grep -E '^[A-Za-z0-9_.@:-]+$' <<<"$bridges" | sort -u || true); do
	case "$keep" in *" $br "*) continue ;; esac
	if [ "$br" != . ] && [ "$br" != .. ] && [ -e "/proc/sys/net/ipv4/conf/$br/route_localnet" ]; then
		echo 0 >"/proc/sys/net/ipv4/conf/$br/route_localnet"
	fi
done
