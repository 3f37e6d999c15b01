package firewall

import (
	"slices"

	"github.com/google/nftables"
)

// iptablesNFTUpToDate is Ensure's fast path on nodes whose iptables is
// iptables-nft (the default on current distributions): it reads the jump
// rules and the network's chains through netlink, as nftables rules with an
// xt "comment" match, instead of running iptables and ip6tables once per
// table. It answers true only when every jump the network needs carries the
// current fingerprint and every chain they lead to holds its rules, and
// only those; on any doubt (iptables-legacy, missing tables, errors)
// false, and Ensure asks iptables. emptied says that the jumps were all
// there but a chain was not as written (flushed, or rules deleted by hand),
// which iptables' own check, of the jumps, does not see.
func iptablesNFTUpToDate(n Network, fp string) (ok, emptied bool) {
	c, err := nftables.New()
	if err != nil {
		return false, false
	}
	jump, own, chain := jumpComment(n.Name, fp), ruleComment(n.Name), iptChainName(n.Name)
	for _, f := range n.ruleFamilies() {
		fam := nftables.TableFamilyIPv4
		if f == ipv6 {
			fam = nftables.TableFamilyIPv6
		}
		for _, p := range iptParts(n, f) {
			t := &nftables.Table{Name: p.table, Family: fam}
			rules, err := c.GetRules(t, &nftables.Chain{Name: p.hook, Table: t})
			if err != nil || !hasXTComment(rules, jump) {
				return false, false
			}
			rules, err = c.GetRules(t, &nftables.Chain{Name: chain, Table: t})
			if err != nil {
				return false, false
			}
			if len(rules) != len(p.rules) || slices.ContainsFunc(rules, func(r *nftables.Rule) bool { return xtComment(r) != own }) {
				emptied = true
			}
		}
		if n.Isolation == IsolationIsolated {
			// Its member rule in the shared stage (a reload of the
			// mangle table alone takes it).
			t := &nftables.Table{Name: mangleTable, Family: fam}
			rules, err := c.GetRules(t, &nftables.Chain{Name: iptIsolatedChain, Table: t})
			if err != nil || !hasXTComment(rules, own) {
				return false, false
			}
		}
	}
	return !emptied, emptied
}

// hasXTComment reports whether a rule carries "-m comment --comment <comment>".
func hasXTComment(rules []*nftables.Rule, comment string) bool {
	return slices.ContainsFunc(rules, func(r *nftables.Rule) bool { return xtComment(r) == comment })
}

// Holds implements Backend: a table of iptables-nft (either family) has
// the network's chain.
func (b *iptablesBackend) Holds(name string) bool {
	c, err := nftables.New()
	if err != nil {
		return false
	}
	chain := iptChainName(name)
	for _, fam := range []nftables.TableFamily{nftables.TableFamilyIPv4, nftables.TableFamilyIPv6} {
		chains, err := c.ListChainsOfTableFamily(fam)
		if err != nil {
			continue
		}
		if slices.ContainsFunc(chains, func(ch *nftables.Chain) bool { return ch.Name == chain }) {
			return true
		}
	}
	return false
}
