package firewall

import (
	"slices"

	"github.com/coreos/go-iptables/iptables"
	"github.com/google/nftables"
)

// The reference firewall plugin, chained after a bridge (as podman's CNI
// networks chained it), inserts jumps first in filter FORWARD: to
// CNI-ISOLATION-STAGE-1 (ingressPolicy "same-bridge" or "isolated", whose
// drops keep bridges apart) and to CNI-FORWARD, whose first rule jumps to
// CNI-ADMIN, the chain its documentation gives administrators for their own
// rules. Behind those jumps are drops and the accepts of the plugin's own
// containers, nothing that accepts other traffic. Our accepts in FORWARD (a
// network's forwarding, its published ports) therefore go right below the
// last of these jumps rather than first: what the plugin or its
// administrator drops stays dropped with our bridge as with the reference
// one, and all other traffic still meets our accepts before any DROP
// policy. Without the plugin's jumps, ours go first, as before.
var refFirewallChains = []string{"CNI-ISOLATION-STAGE-1", "CNI-FORWARD"}

// forwardInsertPos returns the rule number at which our rules are inserted
// in a chain listed as by "iptables -S <chain>": 1, or right below the last
// jump to a chain of the reference firewall plugin.
func forwardInsertPos(lines []string) int {
	pos, n := 1, 0
	for _, line := range lines {
		if _, spec, ok := splitRuleLine(line); ok {
			n++
			if slices.Contains(refFirewallChains, specValue(spec, "-j")) {
				pos = n + 1
			}
		}
	}
	return pos
}

// iptInsertPos is forwardInsertPos for chain of table, listed with the
// command; 1 for any other chain than filter FORWARD, or when it cannot be
// listed.
func iptInsertPos(ipt *iptables.IPTables, table, chain string) int {
	if table != filterTable || chain != forwardChain {
		return 1
	}
	lines, err := ipt.List(table, chain)
	if err != nil {
		return 1
	}
	return forwardInsertPos(lines)
}

// nftForwardAnchor returns the last of rules (a FORWARD chain of
// iptables-nft) that jumps to a chain of the reference firewall plugin, nil
// if none: our rules go right after it, or first without it.
func nftForwardAnchor(rules []*nftables.Rule) *nftables.Rule {
	var anchor *nftables.Rule
	for _, r := range rules {
		if slices.Contains(refFirewallChains, jumpTarget(r)) {
			anchor = r
		}
	}
	return anchor
}

// nftInsertPos is forwardInsertPos for the rules of iptables-nft's FORWARD
// chain read through netlink (an iptables rule each), for an
// iptables-restore input.
func nftInsertPos(rules []*nftables.Rule) int {
	if anchor := nftForwardAnchor(rules); anchor != nil {
		return slices.Index(rules, anchor) + 2
	}
	return 1
}

// nftForwardInsertPos is nftInsertPos for iptables-nft's FORWARD chain of
// family f; 1 when it cannot be read.
func nftForwardInsertPos(f family) int {
	c, err := nftables.New()
	if err != nil {
		return 1
	}
	rules, _, err := forwardRules(c, f)
	if err != nil {
		return 1
	}
	return nftInsertPos(rules)
}

// insertAfter queues rules in order right after anchor, or first in the
// chain when anchor is nil (the caller flushes).
func insertAfter(c *nftables.Conn, anchor *nftables.Rule, rules []*nftables.Rule) {
	// Each rule goes directly after the anchor (or first), so the last
	// rule is queued first to keep them in order.
	for i := len(rules) - 1; i >= 0; i-- {
		r := rules[i]
		if anchor != nil {
			r.Position = anchor.Handle
			c.AddRule(r)
		} else {
			c.InsertRule(r)
		}
	}
}
