package firewall

import (
	"fmt"

	"github.com/google/nftables"
)

// syncForward makes the network's port rules in iptables-nft's FORWARD
// chains (where a DROP policy lives, see the package documentation) match n
// (nil: none). Only a mismatch takes the lock and writes.
func (b *nftPorts) syncForward(c *nftables.Conn, network string, n *PortNetwork) error {
	want := ""
	if n != nil {
		want = portsFixedComment(*n, n.fingerprint())
	}
	var stale []*nftables.Rule
	var missing []family
	check := func() error {
		stale, missing = nil, nil
		for _, f := range allFamilies() {
			rules, exists, err := forwardRules(c, f)
			if err != nil {
				return err
			}
			have := 0
			for _, r := range rules {
				net, _, ok := parsePortsComment(userDataComment(r.UserData))
				switch {
				case !ok || net != network:
				case userDataComment(r.UserData) == want:
					have++
				default:
					stale = append(stale, r)
				}
			}
			if exists && want != "" && have != 2 {
				missing = append(missing, f)
			}
		}
		return nil
	}
	if err := check(); err != nil || len(stale)+len(missing) == 0 {
		return err
	}
	lock, err := b.opts.lock(nftablesLockName)
	if err != nil {
		return err
	}
	defer lock.unlock()
	if err := check(); err != nil || len(stale)+len(missing) == 0 {
		return err
	}
	for _, r := range stale {
		if err := c.DelRule(r); err != nil {
			return fmt.Errorf("delete port rule from iptables-nft FORWARD chain: %w", err)
		}
	}
	for _, f := range missing {
		// A family with only some of the rules: delete those first.
		rules, _, err := forwardRules(c, f)
		if err != nil {
			return err
		}
		for _, r := range rules {
			if userDataComment(r.UserData) == want {
				if err := c.DelRule(r); err != nil {
					return fmt.Errorf("delete port rule from iptables-nft %s FORWARD chain: %w", f, err)
				}
			}
		}
		t, ch := iptablesNFTForward(f)
		var add []*nftables.Rule
		for _, e := range nftPortsForwardRules(*n) {
			add = append(add, &nftables.Rule{Table: t, Chain: ch, Exprs: e, UserData: commentUserData(want)})
		}
		insertAfter(c, nftForwardAnchor(rules), add)
	}
	if err := c.Flush(); err != nil {
		return fmt.Errorf("update iptables-nft FORWARD chain for published ports: %w", err)
	}
	return nil
}
