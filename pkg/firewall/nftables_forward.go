package firewall

import (
	"fmt"

	"github.com/google/nftables"
)

// forwardRules returns the rules of iptables-nft's FORWARD chain of family
// f, and whether that chain exists.
func forwardRules(c *nftables.Conn, f family) ([]*nftables.Rule, bool, error) {
	t, ch := iptablesNFTForward(f)
	found, err := findChain(t.Family, t.Name, ch.Name)
	if err != nil || found == nil {
		return nil, false, err
	}
	rules, err := c.GetRules(t, ch)
	if err != nil {
		return nil, true, fmt.Errorf("list iptables-nft %s FORWARD chain: %w", f, err)
	}
	return rules, true, nil
}

// syncForward makes the network's rules in iptables-nft's FORWARD chains
// match n (nil: none). Only a mismatch takes the lock and writes.
func (b *nftablesBackend) syncForward(c *nftables.Conn, name string, n *Network) error {
	ok, err := b.forwardUpToDate(c, name, n)
	if err != nil || ok {
		return err
	}
	lock, err := b.opts.lock(nftablesLockName)
	if err != nil {
		return err
	}
	defer lock.unlock()

	changed := false
	for _, f := range allFamilies() {
		rules, exists, err := forwardRules(c, f)
		if err != nil {
			return err
		}
		mine := ownForwardRules(rules, name)
		want := wantForward(n, f, exists)
		if sameComments(mine, want) {
			continue
		}
		for _, r := range mine {
			if err := c.DelRule(r); err != nil {
				return fmt.Errorf("delete rule from iptables-nft %s FORWARD chain: %w", f, err)
			}
			changed = true
		}
		if want == "" {
			continue
		}
		t, ch := iptablesNFTForward(f)
		var add []*nftables.Rule
		for _, e := range nftForwardRules(*n, want) {
			add = append(add, &nftables.Rule{Table: t, Chain: ch, Exprs: e, UserData: commentUserData(want)})
		}
		insertAfter(c, nftForwardAnchor(rules), add)
		changed = true
	}
	if !changed {
		return nil
	}
	if err := c.Flush(); err != nil {
		return fmt.Errorf("update iptables-nft FORWARD chain: %w", err)
	}
	return nil
}

// forwardUpToDate reports whether the FORWARD chains hold exactly the
// network's wanted rules.
func (b *nftablesBackend) forwardUpToDate(c *nftables.Conn, name string, n *Network) (bool, error) {
	for _, f := range allFamilies() {
		rules, exists, err := forwardRules(c, f)
		if err != nil {
			return false, err
		}
		if !sameComments(ownForwardRules(rules, name), wantForward(n, f, exists)) {
			return false, nil
		}
	}
	return true, nil
}

// wantForward returns the comment of the forward rules the network needs in
// family f, or "" if it needs none (also when iptables-nft has no FORWARD
// chain in that family: then no iptables FORWARD policy can drop anything).
func wantForward(n *Network, f family, chainExists bool) string {
	if n == nil || !chainExists || !n.Forward || len(n.subnets(f)) == 0 {
		return ""
	}
	return jumpComment(n.Name, n.fingerprint())
}

// ownForwardRules picks the network's rules out of a FORWARD chain.
func ownForwardRules(rules []*nftables.Rule, name string) []*nftables.Rule {
	var mine []*nftables.Rule
	for _, r := range rules {
		if got, ok := parseComment(userDataComment(r.UserData)); ok && got == name {
			mine = append(mine, r)
		}
	}
	return mine
}

// sameComments reports whether rules are exactly the two forward rules
// carrying comment (or no rules, for comment "").
func sameComments(rules []*nftables.Rule, comment string) bool {
	if comment == "" {
		return len(rules) == 0
	}
	if len(rules) != 2 {
		return false
	}
	for _, r := range rules {
		if userDataComment(r.UserData) != comment {
			return false
		}
	}
	return true
}
