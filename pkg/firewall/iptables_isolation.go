package firewall

import (
	"errors"
	"fmt"
	"strings"

	"github.com/coreos/go-iptables/iptables"
)

const (
	// mangleTable holds the isolation rules of the iptables backend: its
	// FORWARD chain runs before filter FORWARD, so no ACCEPT there (ours,
	// Docker's, anyone's) can let isolated traffic through before the
	// DROP, and the chain holds only drops and returns.
	mangleTable = "mangle"
	// iptIsolatedChain (mangle) holds one "-o <bridge> -j DROP" per isolated
	// network: the second stage that traffic leaving an isolated bridge for
	// another interface is sent to.
	iptIsolatedChain = iptChainPrefix + "ISOLATED"
)

// hookOf returns the built-in chain of table that jumps to our chains.
func hookOf(table string) string {
	if table == natTable {
		return postroutingChain
	}
	return forwardChain
}

// iptIsolationRules returns the network's chain in mangle, in order:
// internal drops everything forwarded in or out of the bridge; then
// connections whose destination was translated (published ports) return;
// icc off drops what is routed from the bridge back into it; isolated sends
// what leaves the bridge to the shared second stage; strict drops what
// passes between the bridge and each other bridge of the node.
func iptIsolationRules(n Network) [][]string {
	br := n.Bridge
	rule := func(target string, match ...string) []string {
		return append(match, "-m", "comment", "--comment", ruleComment(n.Name), "-j", target)
	}
	var rules [][]string
	if n.Internal {
		rules = append(rules, rule("DROP", "-i", br, "!", "-o", br), rule("DROP", "!", "-i", br, "-o", br))
	}
	rules = append(rules, rule("RETURN", "-m", "conntrack", "--ctstate", "DNAT"))
	if n.NoICC {
		rules = append(rules, rule("DROP", "-i", br, "-o", br))
	}
	switch n.Isolation {
	case IsolationIsolated:
		rules = append(rules, rule(iptIsolatedChain, "-i", br, "!", "-o", br))
	case IsolationStrict:
		for _, p := range n.strictPeers {
			rules = append(rules, rule("DROP", "-i", br, "-o", p), rule("DROP", "-i", p, "-o", br))
		}
	}
	return rules
}

// iptIsolatedMember is the network's rule in the shared second stage.
func iptIsolatedMember(n Network) []string {
	return []string{"-o", n.Bridge, "-m", "comment", "--comment", ruleComment(n.Name), "-j", "DROP"}
}

// syncIPTIsolated makes the network's rules in the shared second stage be
// member (nil: none), creating the chain when needed. Call under the lock.
func syncIPTIsolated(ipt *iptables.IPTables, name string, member []string) error {
	rules, exists, err := iptIsolatedRules(ipt)
	if err != nil {
		return err
	}
	if !exists {
		if member == nil {
			return nil
		}
		if err := ipt.NewChain(mangleTable, iptIsolatedChain); err != nil {
			return fmt.Errorf("create chain %s in table %s: %w", iptIsolatedChain, mangleTable, err)
		}
	}
	found := false
	for _, spec := range rules {
		if got, ok := parseComment(specValue(spec, "--comment")); !ok || got != name {
			continue
		}
		if member != nil && !found && specValue(spec, "-o") == specValue(member, "-o") && specValue(spec, "-j") == "DROP" {
			found = true
			continue
		}
		if err := ipt.Delete(mangleTable, iptIsolatedChain, spec...); err != nil && !isNotExist(err) {
			return fmt.Errorf("delete rule of network %q from chain %s in table %s: %w", name, iptIsolatedChain, mangleTable, err)
		}
	}
	if member != nil && !found {
		if err := ipt.Append(mangleTable, iptIsolatedChain, member...); err != nil {
			return fmt.Errorf("add rule to chain %s in table %s: %w", iptIsolatedChain, mangleTable, err)
		}
	}
	return nil
}

// dropIPTIsolatedIfEmpty deletes the shared second stage once no isolated
// network is left in it. Call under the lock, after the networks' chains
// (which jump to it) are rewritten or gone.
func dropIPTIsolatedIfEmpty(ipt *iptables.IPTables) error {
	rules, exists, err := iptIsolatedRules(ipt)
	if err != nil || !exists || len(rules) > 0 {
		return err
	}
	if err := ipt.DeleteChain(mangleTable, iptIsolatedChain); err != nil && !isNotExist(err) && !isInUse(err) {
		return fmt.Errorf("delete chain %s in table %s: %w", iptIsolatedChain, mangleTable, err)
	}
	return nil
}

// isInUse tells the refusal to delete a chain another chain still jumps to
// (iptables-nft: EBUSY; iptables-legacy: EMLINK, "Too many links"): the
// shared stage emptied by hand while isolated networks' chains jump to it.
// It stays, as their next ADD writes their member rules in it again.
func isInUse(err error) bool {
	var e *iptables.Error
	if !errors.As(err, &e) {
		return false
	}
	msg := e.Error()
	return strings.Contains(msg, "resource busy") || strings.Contains(msg, "Too many links")
}

// syncIPTIsolation brings the shared second stage in line with n (nil: the
// network is gone) around rewrite, which rewrites or removes the network's
// own chains: the membership is written before the chains that rely on it
// and the stage is dropped after the last chain jumping to it.
func syncIPTIsolation(ipt *iptables.IPTables, name string, n *Network, rewrite func() error) error {
	var member []string
	if n != nil && n.Isolation == IsolationIsolated {
		member = iptIsolatedMember(*n)
	}
	if err := syncIPTIsolated(ipt, name, member); err != nil {
		return err
	}
	if err := rewrite(); err != nil {
		return err
	}
	return dropIPTIsolatedIfEmpty(ipt)
}

// collectIPTIsolated adds the networks with rules in the shared second stage.
func collectIPTIsolated(ipt *iptables.IPTables, seen map[string]bool) error {
	rules, _, err := iptIsolatedRules(ipt)
	for _, spec := range rules {
		if name, ok := parseComment(specValue(spec, "--comment")); ok {
			seen[name] = true
		}
	}
	return err
}

// iptIsolatedRules returns the rules of the shared second stage, and
// whether the chain exists.
func iptIsolatedRules(ipt *iptables.IPTables) ([][]string, bool, error) {
	exists, err := ipt.ChainExists(mangleTable, iptIsolatedChain)
	if err != nil || !exists {
		if err != nil {
			err = fmt.Errorf("look for chain %s in table %s: %w", iptIsolatedChain, mangleTable, err)
		}
		return nil, false, err
	}
	lines, err := ipt.List(mangleTable, iptIsolatedChain)
	if err != nil {
		return nil, true, fmt.Errorf("list chain %s in table %s: %w", iptIsolatedChain, mangleTable, err)
	}
	var rules [][]string
	for _, line := range lines {
		if _, spec, ok := splitRuleLine(line); ok {
			rules = append(rules, spec)
		}
	}
	return rules, true, nil
}
