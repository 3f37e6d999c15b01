package firewall

// Tables and built-in chains the iptables backend hooks into.
const (
	natTable         = "nat"
	filterTable      = "filter"
	postroutingChain = "POSTROUTING"
	forwardChain     = "FORWARD"
)

// iptTables are the tables holding chains of ours.
var iptTables = []string{filterTable, natTable, mangleTable}

// iptPart is one table's share of a network's iptables rules: the rules of
// the network's chain in that table and the jump to it from a built-in chain.
type iptPart struct {
	table  string
	hook   string // built-in chain holding the jump
	insert bool   // jump goes first in hook (else last)
	rules  [][]string
}

// iptParts returns the parts of network n for family f, in the order they
// are written. Disabled parts are absent.
func iptParts(n Network, f family) []iptPart {
	var parts []iptPart
	// Asked for the subnets' families only, unless the network isolates
	// (ruleFamilies): then forward and masquerade stay with the subnets.
	hasSubnets := !n.isolates() || len(n.subnets(f)) > 0
	if n.Forward && hasSubnets {
		parts = append(parts, iptPart{table: filterTable, hook: forwardChain, insert: true, rules: iptForwardRules(n)})
	}
	if n.Masquerade && hasSubnets {
		parts = append(parts, iptPart{table: natTable, hook: postroutingChain, rules: iptMasqueradeRules(n, f)})
	}
	if n.isolates() {
		parts = append(parts, iptPart{table: mangleTable, hook: forwardChain, insert: true, rules: iptIsolationRules(n)})
	}
	return parts
}

// iptMasqueradeRules returns the nat chain's rules for family f: RETURN for
// every destination that is never masqueraded, then MASQUERADE for every
// source subnet.
func iptMasqueradeRules(n Network, f family) [][]string {
	c := ruleComment(n.Name)
	var rules [][]string
	for _, d := range n.nonMasquerade(f) {
		rules = append(rules, []string{"-d", d.String(), "-m", "comment", "--comment", c, "-j", "RETURN"})
	}
	for _, s := range n.subnets(f) {
		rules = append(rules, []string{"-s", s.String(), "-m", "comment", "--comment", c, "-j", "MASQUERADE"})
	}
	return rules
}

// iptForwardRules returns the filter chain's rules: accept what comes from
// the bridge and what goes to it as part of a known connection.
func iptForwardRules(n Network) [][]string {
	c := ruleComment(n.Name)
	return [][]string{
		{"-i", n.Bridge, "-m", "comment", "--comment", c, "-j", "ACCEPT"},
		{"-o", n.Bridge, "-m", "conntrack", "--ctstate", "RELATED,ESTABLISHED", "-m", "comment", "--comment", c, "-j", "ACCEPT"},
	}
}

// iptJumpRule returns the rule jumping from a built-in chain to the network's
// chain; its comment carries the configuration fingerprint.
func iptJumpRule(network, fingerprint string) []string {
	return []string{"-m", "comment", "--comment", jumpComment(network, fingerprint), "-j", iptChainName(network)}
}
