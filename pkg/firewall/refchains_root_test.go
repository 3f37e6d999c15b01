package firewall

import (
	"strings"
	"testing"
)

// TestForwardBelowReferenceFirewall: with the reference firewall plugin's
// jumps first in filter FORWARD (ingressPolicy and CNI-FORWARD, where
// CNI-ADMIN hangs), a network's forwarding accepts and its published
// ports' accepts go right below them, written fresh or rewritten, with
// either backend, so that the plugin's drops and an administrator's still
// apply.
func TestForwardBelowReferenceFirewall(t *testing.T) {
	requireRoot(t)
	requireIPTablesNFT(t, "the nftables backend writes its accepts into iptables-nft's FORWARD chain")
	for _, name := range []string{IPTablesName, NFTablesName} {
		t.Run(name, func(t *testing.T) {
			b, p := newBackends(t, name)
			n := newTestNS(t, "refjumps")
			for _, cmd := range []string{"iptables", "ip6tables"} {
				for _, ch := range []string{"CNI-FORWARD", "CNI-ISOLATION-STAGE-1"} {
					n.exec(t, cmd, "-N", ch)
					n.exec(t, cmd, "-I", "FORWARD", "1", "-j", ch)
				}
				n.exec(t, cmd, "-A", "FORWARD", "-j", "ACCEPT") // someone else's, stays last
			}
			net := testNetwork("refj", "brj", "10.46.0.0/24", "fd46::/64")
			pnet := PortNetwork{Name: "refj", Bridge: "brj", Subnets: net.Subnets}
			check := func(when string) {
				t.Helper()
				for _, cmd := range []string{"iptables", "ip6tables"} {
					var jumps []string
					for _, l := range strings.Split(n.exec(t, cmd, "-S", "FORWARD"), "\n") {
						if _, spec, ok := splitRuleLine(l); ok {
							jumps = append(jumps, specValue(spec, "-j"))
						}
					}
					// The network's chain (iptables) or its two accepts
					// (nftables), and the ports' two accepts (IPv4 only:
					// the mappings are IPv4).
					least := 1
					if cmd == "iptables" {
						least = 3
					}
					if len(jumps)-3 < least || jumps[0] != "CNI-ISOLATION-STAGE-1" || jumps[1] != "CNI-FORWARD" || jumps[len(jumps)-1] != "ACCEPT" {
						t.Errorf("%s: %s FORWARD jumps to %v, want the reference firewall's first, ours, the other rule last", when, cmd, jumps)
					}
				}
			}
			err := n.do(t, func() error {
				if err := b.Ensure(net); err != nil {
					return err
				}
				return p.Publish(pnet, Attachment{ContainerID: "c1", IfName: "eth0"}, []Mapping{mp("tcp", "", 8080, "10.46.0.2", 80)})
			})
			if err != nil {
				t.Fatal(err)
			}
			check("written fresh")
			// A changed configuration rewrites the rules.
			net.NonMasquerade = pfx("10.201.0.0/16")
			pnet.Subnets = pfx("10.46.0.0/24")
			err = n.do(t, func() error {
				if err := b.Ensure(net); err != nil {
					return err
				}
				return p.Publish(pnet, Attachment{ContainerID: "c2", IfName: "eth0"}, []Mapping{mp("tcp", "", 8081, "10.46.0.3", 80)})
			})
			if err != nil {
				t.Fatal(err)
			}
			check("rewritten")
		})
	}
}
