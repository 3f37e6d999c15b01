package firewall

import (
	"bytes"
	"errors"
	"io/fs"
	"os"
	"slices"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
)

// Remove and RemoveLegacy of the iptables backend on iptables-nft nodes.
//
// iptables-nft keeps its tables as nftables tables of family ip and ip6, so
// what the iptables and ip6tables commands would list, delete, flush and
// delete again (some 30 processes for a network's last DEL) can be read
// and deleted through netlink in one transaction, starting no process.
// Each family is decided on its own:
//
//   - something to delete is seen through netlink (a chain of ours, the
//     shared isolation chain, a reference rule or chain of the network):
//     the node's iptables is iptables-nft, as Holds and Ensure's fast path
//     assume; it is deleted through netlink;
//   - nothing is seen and the kernel has no iptables-legacy table in the
//     node's namespace (/proc/net/ip_tables_names or ip6_tables_names empty
//     or absent): nothing can be there, nothing is done;
//   - otherwise (legacy tables, netlink errors, or a transaction the kernel
//     refuses: a chain still referenced, a rule gone meanwhile) the
//     commands do it as before, and report what they find.

// iptNFTView is what netlink shows of one family's iptables-nft tables.
type iptNFTView struct {
	c      *nftables.Conn
	chains map[string]map[string]*nftables.Chain // table, then chain name
}

func readIPTNFT(c *nftables.Conn, f family) (*iptNFTView, error) {
	chains, err := c.ListChainsOfTableFamily(iptNFTTable(f, "").Family)
	if err != nil {
		return nil, err
	}
	v := &iptNFTView{c: c, chains: map[string]map[string]*nftables.Chain{}}
	for _, ch := range chains {
		if v.chains[ch.Table.Name] == nil {
			v.chains[ch.Table.Name] = map[string]*nftables.Chain{}
		}
		v.chains[ch.Table.Name][ch.Name] = ch
	}
	return v, nil
}

// readIPTNFTOnly is readIPTNFT for a family whose rules netlink shows
// all of: the namespace has no iptables-legacy table (legacyIPTablesIn).
// ok is false on any doubt; the commands then look.
func readIPTNFTOnly(c *nftables.Conn, f family) (v *iptNFTView, ok bool) {
	if legacyIPTablesIn(f) {
		return nil, false
	}
	v, err := readIPTNFT(c, f)
	return v, err == nil
}

// chain returns the chain of table, nil if there is none.
func (v *iptNFTView) chain(table, name string) *nftables.Chain {
	return v.chains[table][name]
}

func (v *iptNFTView) rules(ch *nftables.Chain) ([]*nftables.Rule, error) {
	return v.c.GetRules(ch.Table, ch)
}

// jumpTarget returns the chain a rule jumps to (iptables' "-j CHAIN" to a
// chain of the table), "" if none.
func jumpTarget(r *nftables.Rule) string {
	for _, e := range r.Exprs {
		if v, ok := e.(*expr.Verdict); ok && v.Kind == expr.VerdictJump {
			return v.Chain
		}
	}
	return ""
}

// iptNFTOps is what one transaction deletes: rules by handle, then chains
// (flushed, then deleted) in order.
type iptNFTOps struct {
	rules  []*nftables.Rule
	chains []*nftables.Chain
}

// jumpedTo reports whether a chain of target's table other than those going
// has a rule jumping to target (an unreadable chain counts as one).
func (v *iptNFTView) jumpedTo(target *nftables.Chain, going []*nftables.Chain) bool {
	for _, ch := range v.chains[target.Table.Name] {
		if ch == target || slices.Contains(going, ch) {
			continue
		}
		rules, err := v.rules(ch)
		if err != nil {
			return true
		}
		if slices.ContainsFunc(rules, func(r *nftables.Rule) bool { return jumpTarget(r) == target.Name }) {
			return true
		}
	}
	return false
}

func (o iptNFTOps) empty() bool { return len(o.rules) == 0 && len(o.chains) == 0 }

func (o *iptNFTOps) add(p iptNFTOps) {
	o.rules = append(o.rules, p.rules...)
	o.chains = append(o.chains, p.chains...)
}

func (o iptNFTOps) commit(c *nftables.Conn) error {
	for _, r := range o.rules {
		if err := c.DelRule(r); err != nil {
			return err
		}
	}
	for _, ch := range o.chains {
		c.FlushChain(ch)
		c.DelChain(ch)
	}
	return c.Flush()
}

// legacyIPTablesIn reports whether the kernel has an iptables-legacy table
// of family f in the calling thread's network namespace (where iptables
// would look). The tables exist per namespace once iptables-legacy (or
// anything using its kernel interface) used them there. On doubt, true.
// LegacyIPTables reports whether the node (the calling thread's network
// namespace) has iptables-legacy tables of either family, whose rules
// netlink does not show.
func LegacyIPTables() bool { return legacyIPTablesIn(ipv4) || legacyIPTablesIn(ipv6) }

func legacyIPTablesIn(f family) bool {
	name := "/proc/thread-self/net/ip_tables_names"
	if f == ipv6 {
		name = "/proc/thread-self/net/ip6_tables_names"
	}
	data, err := os.ReadFile(name)
	if errors.Is(err, fs.ErrNotExist) {
		return false // module not loaded: no legacy table anywhere
	}
	return err != nil || len(bytes.TrimSpace(data)) > 0
}

// removeIPTNFT reads each family through netlink and plans its deletions
// with plan, which returns them and whether anything of what it looks for
// was seen. Every family with something to delete is deleted in one
// transaction. It returns the families left to the commands (in the order
// of allFamilies): those netlink could not read, whose deletions the kernel
// refused, or where nothing was seen but iptables-legacy tables exist.
func removeIPTNFT(plan func(*iptNFTView) (iptNFTOps, bool, error)) []family {
	c, err := iptNFTWriteConn()
	if err != nil {
		return allFamilies()
	}
	defer func() { _ = c.CloseLasting() }()
	var (
		all     iptNFTOps
		planned = map[family]bool{}
		byCmd   = map[family]bool{}
	)
	for _, f := range allFamilies() {
		v, err := readIPTNFT(c, f)
		var (
			ops  iptNFTOps
			seen bool
		)
		if err == nil {
			ops, seen, err = plan(v)
		}
		switch {
		case err != nil:
			byCmd[f] = true
		case seen:
			all.add(ops)
			planned[f] = !ops.empty()
		case legacyIPTablesIn(f):
			byCmd[f] = true
		}
	}
	if !all.empty() {
		if err := all.commit(c); err != nil {
			// The error may come after the commit: the kernel answers
			// each deletion, and a few hundred answers overflow the
			// socket (see inChain). A family in which the plan finds
			// nothing left is done; the commands redo the others, and
			// tell what is wrong.
			for f, p := range planned {
				byCmd[f] = byCmd[f] || p && !planDone(plan, f)
			}
		}
	}
	return slices.DeleteFunc(allFamilies(), func(f family) bool { return !byCmd[f] })
}

// planDone reads family f again, on a connection of its own, and reports
// whether plan finds nothing left to delete there.
func planDone(plan func(*iptNFTView) (iptNFTOps, bool, error), f family) bool {
	c, err := nftables.New()
	if err != nil {
		return false
	}
	v, err := readIPTNFT(c, f)
	if err != nil {
		return false
	}
	ops, _, err := plan(v)
	return err == nil && ops.empty()
}

// planIPTNFTRemove plans Remove of network name for one family: the jumps
// to the network's chains (whatever their fingerprint) and the chains, the
// network's rules in the shared isolation chain and, once no rule is left
// there, that chain, after the chains that jump to it; the same as
// syncIPTIsolation around removeIPTPart does with the commands.
func planIPTNFTRemove(name string) func(*iptNFTView) (iptNFTOps, bool, error) {
	return func(v *iptNFTView) (iptNFTOps, bool, error) {
		var ops iptNFTOps
		seen := false
		chain := iptChainName(name)
		for _, table := range iptTables {
			ch := v.chain(table, chain)
			if ch == nil {
				continue
			}
			seen = true
			if hook := v.chain(table, hookOf(table)); hook != nil {
				rules, err := v.rules(hook)
				if err != nil {
					return ops, seen, err
				}
				for _, r := range rules {
					if jumpTarget(r) == chain {
						ops.rules = append(ops.rules, r)
					}
				}
			}
			ops.chains = append(ops.chains, ch)
		}
		if iso := v.chain(mangleTable, iptIsolatedChain); iso != nil {
			seen = true
			rules, err := v.rules(iso)
			if err != nil {
				return ops, seen, err
			}
			left := 0
			for _, r := range rules {
				if got, ok := parseComment(xtComment(r)); ok && got == name {
					ops.rules = append(ops.rules, r)
				} else {
					left++
				}
			}
			// Only once no chain jumps to it but those going (the
			// shared stage emptied by hand while isolated networks'
			// chains jump to it: deleting it would fail the whole
			// transaction, for ever).
			if left == 0 && !v.jumpedTo(iso, ops.chains) {
				ops.chains = append(ops.chains, iso)
			}
		}
		return ops, seen, nil
	}
}

// planIPTNFTRemoveLegacy plans RemoveLegacy (or RemoveLegacyOf) for one
// family, as removeLegacyIPT does with the commands: the jumps in nat
// POSTROUTING to reference chains of the network's containers that stale
// chooses, and those chains
// (also those whose jump is gone, known by their first rule's comment)
// unless another rule of POSTROUTING still jumps to them. Seen: there is
// something to delete.
func planIPTNFTRemoveLegacy(network string, stale legacyStale) func(*iptNFTView) (iptNFTOps, bool, error) {
	return func(v *iptNFTView) (iptNFTOps, bool, error) {
		var ops iptNFTOps
		gone := map[string]bool{}  // chains of gone containers
		inUse := map[string]bool{} // chains still jumped to by other rules
		if post := v.chain(natTable, postroutingChain); post != nil {
			rules, err := v.rules(post)
			if err != nil {
				return ops, false, err
			}
			for _, r := range rules {
				target := jumpTarget(r)
				if !isLegacyMasqChain(target) {
					continue
				}
				net, id, ok := parseLegacyComment(xtComment(r))
				if !ok || net != network || !stale(id, false) {
					inUse[target] = true
					continue
				}
				ops.rules = append(ops.rules, r)
				gone[target] = true
			}
		}
		var names []string
		for name := range v.chains[natTable] {
			names = append(names, name)
		}
		slices.Sort(names)
		for _, name := range names {
			if !isLegacyMasqChain(name) || gone[name] || inUse[name] {
				continue
			}
			rules, err := v.rules(v.chain(natTable, name))
			if err != nil {
				return ops, false, err
			}
			if len(rules) > 0 {
				net, id, ok := parseLegacyComment(xtComment(rules[0]))
				if ok && net == network && stale(id, false) {
					gone[name] = true
				}
			}
		}
		for _, name := range sortedKeys(gone) {
			if ch := v.chain(natTable, name); ch != nil && !inUse[name] {
				ops.chains = append(ops.chains, ch)
			}
		}
		return ops, !ops.empty(), nil
	}
}
