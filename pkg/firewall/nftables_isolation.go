package firewall

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"slices"

	"github.com/google/nftables"
	"github.com/google/nftables/binaryutil"
	"github.com/google/nftables/expr"
)

const (
	// nftIsolationChain is the forward chain in a network's own table
	// (internal, icc, strict).
	nftIsolationChain = "isolation"
	// nftSharedTable (family inet) holds what isolated networks share: the
	// set of their bridges and one rule per isolated network. Its name does
	// not start with nftTablePrefix, so it is never taken for a network's.
	nftSharedTable = "flatcni_isolation"
	// nftIsolatedSet holds the bridges of the isolated networks.
	nftIsolatedSet = "isolated"
	// nftSharedChain is the shared table's forward chain.
	nftSharedChain = "forward"
	// nftSharedComment marks the shared table's first rule, which no
	// network owns.
	nftSharedComment = "flatcni isolation"
	// nftIsolationLockName serialises changes to the shared table.
	nftIsolationLockName = "nftables-isolation.lock"

	// Kernel values google/nftables has no names for.
	metaKeyIIFKIND = expr.MetaKey(26) // NFT_META_IIFKIND
	metaKeyOIFKIND = expr.MetaKey(27) // NFT_META_OIFKIND
	ctStatusDstNAT = 1 << 5           // IPS_DST_NAT
	ifNameSize     = 16               // IFNAMSIZ
)

// nftIsolationRules returns the rules of the network's isolation chain: the
// same order and meaning as iptIsolationRules, except that isolated is in
// the shared table and strict matches every bridge by its kind.
func nftIsolationRules(n Network) [][]expr.Any {
	br := n.Bridge
	var rules [][]expr.Any
	if n.Internal {
		rules = append(rules,
			concat(ifnameCmp(expr.MetaKeyIIFNAME, expr.CmpOpEq, br), ifnameCmp(expr.MetaKeyOIFNAME, expr.CmpOpNeq, br), drop()),
			concat(ifnameCmp(expr.MetaKeyOIFNAME, expr.CmpOpEq, br), ifnameCmp(expr.MetaKeyIIFNAME, expr.CmpOpNeq, br), drop()))
	}
	if n.Internal || n.NoICC || n.Isolation == IsolationStrict {
		rules = append(rules, ctDNATAccept())
	}
	if n.NoICC {
		rules = append(rules, concat(ifnameCmp(expr.MetaKeyIIFNAME, expr.CmpOpEq, br), ifnameCmp(expr.MetaKeyOIFNAME, expr.CmpOpEq, br), drop()))
	}
	if n.Isolation == IsolationStrict {
		out := concat(ifnameCmp(expr.MetaKeyIIFNAME, expr.CmpOpEq, br), ifnameCmp(expr.MetaKeyOIFNAME, expr.CmpOpNeq, br))
		in := concat(ifnameCmp(expr.MetaKeyOIFNAME, expr.CmpOpEq, br), ifnameCmp(expr.MetaKeyIIFNAME, expr.CmpOpNeq, br))
		for _, up := range n.strictExempt {
			out = append(out, ifnameCmp(expr.MetaKeyOIFNAME, expr.CmpOpNeq, up)...)
			in = append(in, ifnameCmp(expr.MetaKeyIIFNAME, expr.CmpOpNeq, up)...)
		}
		rules = append(rules,
			concat(out, ifnameCmp(metaKeyOIFKIND, expr.CmpOpEq, "bridge"), drop()),
			concat(in, ifnameCmp(metaKeyIIFKIND, expr.CmpOpEq, "bridge"), drop()))
	}
	return rules
}

// nftIsolatedRule is the network's rule in the shared chain: what leaves the
// bridge for another isolated bridge is dropped.
func nftIsolatedRule(n Network, set *nftables.Set) []expr.Any {
	return concat(
		ifnameCmp(expr.MetaKeyIIFNAME, expr.CmpOpEq, n.Bridge),
		ifnameCmp(expr.MetaKeyOIFNAME, expr.CmpOpNeq, n.Bridge),
		[]expr.Any{
			&expr.Meta{Key: expr.MetaKeyOIFNAME, Register: 1},
			&expr.Lookup{SourceRegister: 1, SetName: set.Name, SetID: set.ID},
		},
		drop())
}

func concat(parts ...[]expr.Any) []expr.Any { return slices.Concat(parts...) }

func drop() []expr.Any { return []expr.Any{&expr.Verdict{Kind: expr.VerdictDrop}} }

// ifnameCmp compares an interface name (or kind) loaded by key with name.
func ifnameCmp(key expr.MetaKey, op expr.CmpOp, name string) []expr.Any {
	return []expr.Any{
		&expr.Meta{Key: key, Register: 1},
		&expr.Cmp{Op: op, Register: 1, Data: ifnameKey(name)},
	}
}

// ifnameKey is name as the kernel loads it: zero-padded to IFNAMSIZ.
func ifnameKey(name string) []byte {
	k := make([]byte, ifNameSize)
	copy(k, name)
	return k
}

// ctDNATAccept ends the chain for connections whose destination was
// translated ("ct status dnat accept"): published ports stay reachable.
// An accept only ends this chain; other chains still judge the packet.
func ctDNATAccept() []expr.Any {
	mask := binary.NativeEndian.AppendUint32(nil, ctStatusDstNAT)
	return []expr.Any{
		&expr.Ct{Register: 1, Key: expr.CtKeySTATUS},
		&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4, Mask: mask, Xor: make([]byte, 4)},
		&expr.Cmp{Op: expr.CmpOpNeq, Register: 1, Data: make([]byte, 4)},
		&expr.Verdict{Kind: expr.VerdictAccept},
	}
}

func forwardFilterChain(t *nftables.Table, name string) *nftables.Chain {
	return &nftables.Chain{
		Name:     name,
		Table:    t,
		Type:     nftables.ChainTypeFilter,
		Hooknum:  nftables.ChainHookForward,
		Priority: nftables.ChainPriorityFilter,
	}
}

// writeIsolationChain adds to the transaction the network's isolation
// chain, refilled, or its removal when the network isolates nothing. An
// isolated-only network keeps the chain empty: its existence tells Ensure's
// check that the table is there.
func writeIsolationChain(c *nftables.Conn, t *nftables.Table, n Network, fp string) {
	ch := c.AddChain(forwardFilterChain(t, nftIsolationChain))
	c.FlushChain(ch)
	if !n.isolates() {
		c.DelChain(ch)
		return
	}
	ud := commentUserData(jumpComment(n.Name, fp))
	for _, exprs := range nftIsolationRules(n) {
		c.AddRule(&nftables.Rule{Table: t, Chain: ch, Exprs: exprs, UserData: ud})
	}
}

// isolationUpToDate reports whether the network's isolation chain and its
// share of the shared table match n.
func (b *nftablesBackend) isolationUpToDate(c *nftables.Conn, n Network, fp string) bool {
	t := networkTable(n.Name)
	rules, exists, err := chainRules(c, t, nftIsolationChain)
	if err != nil {
		return false
	}
	if !n.isolates() {
		// Without its own chain the network has no shared part either:
		// Ensure writes the shared part before the chain and removes it
		// before the chain, so nothing more is read on this hot path.
		return !exists
	}
	if !exists || !allComments(rules, jumpComment(n.Name, fp), len(nftIsolationRules(n))) {
		return false
	}
	st := sharedState(c)
	if st.err != nil {
		return false
	}
	mine := st.rulesOf(n.Name)
	if n.Isolation != IsolationIsolated {
		return len(mine) == 0
	}
	return allComments(mine, jumpComment(n.Name, fp), 1) && st.elements[n.Bridge]
}

// allComments reports whether there are want rules, all with comment.
func allComments(rules []*nftables.Rule, comment string, want int) bool {
	if len(rules) != want {
		return false
	}
	for _, r := range rules {
		if userDataComment(r.UserData) != comment {
			return false
		}
	}
	return true
}

// sharedTable is the current content of the shared table.
type sharedTable struct {
	exists   bool
	rules    []*nftables.Rule
	elements map[string]bool
	err      error // the chain could not be read: not known to be empty
}

func sharedRefs() (*nftables.Table, *nftables.Chain, *nftables.Set) {
	t := &nftables.Table{Name: nftSharedTable, Family: nftables.TableFamilyINet}
	// The set's ID only names it within one transaction; given here, AddSet
	// leaves google/nftables' unguarded package-wide ID counter alone.
	return t, forwardFilterChain(t, nftSharedChain), &nftables.Set{Table: t, Name: nftIsolatedSet, ID: 1, KeyType: nftables.TypeIFName, KeyByteOrder: binaryutil.NativeEndian}
}

// sharedState reads the shared table; a missing table reads as empty.
func sharedState(c *nftables.Conn) sharedTable {
	t, ch, set := sharedRefs()
	st := sharedTable{elements: map[string]bool{}}
	rules, exists, err := chainRules(c, t, ch.Name)
	if !exists {
		st.err = err
		return st
	}
	st.exists, st.rules = true, rules
	if elems, err := c.GetSetElements(set); err == nil {
		for _, e := range elems {
			st.elements[string(bytes.TrimRight(e.Key, "\x00"))] = true
		}
	}
	return st
}

// rulesOf returns the rules of network name in the shared chain.
func (st sharedTable) rulesOf(name string) []*nftables.Rule {
	var out []*nftables.Rule
	for _, r := range st.rules {
		if got, ok := parseComment(userDataComment(r.UserData)); ok && got == name {
			out = append(out, r)
		}
	}
	return out
}

// syncShared makes the network's share of the shared table match n (nil:
// none): its rule, and the set elements, which are the bridges of all the
// isolated networks' rules. The table goes when no network rule is left.
func (b *nftablesBackend) syncShared(c *nftables.Conn, name string, n *Network, fp string) error {
	want := n != nil && n.Isolation == IsolationIsolated
	st := sharedState(c)
	if !want && !st.exists {
		return nil
	}
	lock, err := b.opts.lock(nftIsolationLockName)
	if err != nil {
		return err
	}
	defer lock.unlock()
	st = sharedState(c) // again, under the lock

	t, ch, set := sharedRefs()
	bridges := map[string]bool{}
	hasShared := false
	var mine []*nftables.Rule
	for _, r := range st.rules {
		comment := userDataComment(r.UserData)
		if comment == nftSharedComment {
			hasShared = true
			continue
		}
		if got, ok := parseComment(comment); ok && got == name {
			mine = append(mine, r)
		} else if br := ruleInputName(r); br != "" {
			bridges[br] = true
		}
	}
	if want {
		bridges[n.Bridge] = true
	}
	if len(bridges) == 0 {
		// Adding before deleting makes the deletion succeed whatever exists.
		c.DelTable(c.AddTable(t))
		return wrapIf(c.Flush(), "delete nftables table inet %s", nftSharedTable)
	}
	if want && allComments(mine, jumpComment(name, fp), 1) && hasShared && sameKeys(st.elements, bridges) {
		return nil
	}
	c.AddTable(t)
	if err := c.AddSet(set, nil); err != nil {
		return fmt.Errorf("add nftables set %s: %w", nftIsolatedSet, err)
	}
	c.AddChain(ch)
	if !hasShared {
		c.InsertRule(&nftables.Rule{Table: t, Chain: ch, Exprs: ctDNATAccept(), UserData: commentUserData(nftSharedComment)})
	}
	for _, r := range mine {
		if err := c.DelRule(r); err != nil {
			return fmt.Errorf("delete rule of network %q from nftables table inet %s: %w", name, nftSharedTable, err)
		}
	}
	if want {
		c.AddRule(&nftables.Rule{Table: t, Chain: ch, Exprs: nftIsolatedRule(*n, set), UserData: commentUserData(jumpComment(name, fp))})
	}
	var add, del []nftables.SetElement
	for br := range bridges {
		if !st.elements[br] {
			add = append(add, nftables.SetElement{Key: ifnameKey(br)})
		}
	}
	for br := range st.elements {
		if !bridges[br] {
			del = append(del, nftables.SetElement{Key: ifnameKey(br)})
		}
	}
	if len(add) > 0 {
		if err := c.SetAddElements(set, add); err != nil {
			return fmt.Errorf("add to nftables set %s: %w", nftIsolatedSet, err)
		}
	}
	if len(del) > 0 {
		if err := c.SetDeleteElements(set, del); err != nil {
			return fmt.Errorf("delete from nftables set %s: %w", nftIsolatedSet, err)
		}
	}
	return wrapIf(c.Flush(), "write nftables table inet %s", nftSharedTable)
}

func sameKeys(a, b map[string]bool) bool {
	if len(a) != len(b) {
		return false
	}
	for k := range a {
		if !b[k] {
			return false
		}
	}
	return true
}

// ruleInputName returns the interface name a rule's first iifname match
// compares with, or "".
func ruleInputName(r *nftables.Rule) string {
	for i := 0; i+1 < len(r.Exprs); i++ {
		if m, ok := r.Exprs[i].(*expr.Meta); ok && m.Key == expr.MetaKeyIIFNAME {
			if cmp, ok := r.Exprs[i+1].(*expr.Cmp); ok {
				return string(bytes.TrimRight(cmp.Data, "\x00"))
			}
		}
	}
	return ""
}

// collectShared adds the networks with rules in the shared chain.
func collectShared(c *nftables.Conn, seen map[string]bool) {
	for _, r := range sharedState(c).rules {
		if name, ok := parseComment(userDataComment(r.UserData)); ok {
			seen[name] = true
		}
	}
}

// chainRules returns the rules of chain name in table t, and whether the
// chain exists: listing the rules of a missing table or chain is no error
// (the kernel's dump finds nothing), so existence is asked separately
// (findChain). err is a failure to tell: not "missing", which the checks
// take for a wanted state and the stamp would then keep (stamp.go).
func chainRules(c *nftables.Conn, t *nftables.Table, name string) (rules []*nftables.Rule, exists bool, err error) {
	ch, err := findChain(t.Family, t.Name, name)
	if err != nil || ch == nil {
		return nil, false, err
	}
	if rules, err = c.GetRules(t, ch); err != nil {
		return nil, true, fmt.Errorf("list nftables chain %s in table %s: %w", name, t.Name, err)
	}
	return rules, true, nil
}
