package integration

import (
	"testing"
)

// TestIsolationLifecycle: the node's rule count does not grow with the
// containers; rules flushed by hand come back with the network's next ADD;
// nothing of ours is left after the last DEL, nor after a GC without valid
// attachments.
func TestIsolationLifecycle(t *testing.T) {
	eachBackendUplink(t, func(t *testing.T, backend string, node *Node, _ *Netns) {
		nets := []*isoNet{
			newIsoNet(t, node, backend, "10.33.1.0/24", map[string]any{"isolation": "isolated"}),
			newIsoNet(t, node, backend, "10.33.2.0/24", map[string]any{"isolation": "isolated", "icc": false}),
			newIsoNet(t, node, backend, "10.33.3.0/24", map[string]any{"isolation": "strict"}),
			newIsoNet(t, node, backend, "10.33.4.0/24", map[string]any{"internal": true, "isolation": "isolated"}),
		}
		// Two rounds before counting: with iptables, the strict network
		// learns of the bridges made after its first ADD at its next one.
		ctrs := make([][]*isoCtr, len(nets))
		for range 2 {
			for i, n := range nets {
				ctrs[i] = append(ctrs[i], n.attach(t, "one"))
			}
		}
		base := masqRuleCount(t, node.Netns)
		for i, n := range nets {
			for range 3 {
				ctrs[i] = append(ctrs[i], n.attach(t, "more"))
			}
		}
		if got := masqRuleCount(t, node.Netns); got != base {
			t.Errorf("rules with 2 containers per network: %d, with 5: %d\n%s", base, got, masqFirewallDump(t, node.Netns))
		}

		// Flushed by hand: the next ADD of each network restores its rules.
		if backend == "nftables" {
			node.MustRun(t, "nft", "flush", "ruleset")
		} else {
			for _, cmd := range []string{"iptables", "ip6tables"} {
				node.MustRun(t, cmd, "-t", "mangle", "-F")
				node.MustRun(t, cmd, "-t", "mangle", "-X")
			}
		}
		a0, b0 := ctrs[0][0], ctrs[1][0]
		if _, err := masqPeerSeenN(t, a0.ns, b0.ip, b0.port, 1); err != nil {
			t.Errorf("after the flush, isolated networks should reach each other until their next ADD: %v", err)
		}
		for i, n := range nets {
			ctrs[i] = append(ctrs[i], n.attach(t, "again"))
		}
		if got := masqRuleCount(t, node.Netns); got != base {
			t.Errorf("rules after flush and ADD: %d, want %d\n%s", got, base, masqFirewallDump(t, node.Netns))
		}
		isoBlocked(t, a0.ns, b0.ip, b0.port, "isolated to isolated after the rules were restored")

		// The last DEL of each network takes its rules, shared ones last.
		for i, n := range nets {
			for _, c := range ctrs[i] {
				n.del(t, c.rt)
			}
		}
		for _, n := range nets {
			masqRequireNoTrace(t, node.Netns, n.name)
		}

		// GC without valid attachments takes them too.
		for _, n := range nets[:2] {
			n.attach(t, "gc")
		}
		for _, n := range nets[:2] {
			n.gc(t)
		}
		for _, n := range nets {
			masqRequireNoTrace(t, node.Netns, n.name)
		}
	})
}
