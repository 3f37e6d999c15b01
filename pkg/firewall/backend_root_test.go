package firewall

import (
	"time"

	"crypto/sha512"
	"encoding/hex"
	"fmt"
	"github.com/google/nftables"
	"slices"
	"strings"
	"sync"
	"testing"
)

func testNetwork(name, bridge string, v4, v6 string) Network {
	return Network{
		Name: name, Bridge: bridge, Masquerade: true, Forward: true,
		Subnets: pfx(v4, v6), NonMasquerade: pfx("10.200.0.0/16"),
	}
}

// prepareForward makes iptables' FORWARD chains exist (with policy ACCEPT),
// as on a node where anything has used iptables.
func prepareForward(t *testing.T, n *testNS) {
	n.exec(t, "iptables", "-P", "FORWARD", "ACCEPT")
	n.exec(t, "ip6tables", "-P", "FORWARD", "ACCEPT")
}

func TestEnsureIdempotent(t *testing.T) {
	requireRoot(t)
	for _, b := range backendsForTest(t) {
		t.Run(b.Name(), func(t *testing.T) {
			n := newTestNS(t, "idem")
			prepareForward(t, n)
			net := testNetwork("idem", "br0", "10.1.0.0/24", "fd01::/64")
			if err := n.do(t, func() error { return b.Ensure(net) }); err != nil {
				t.Fatal(err)
			}
			first := n.ruleset(t)
			for _, want := range []string{"10.1.0.0/24", "fd01::/64", "10.200.0.0/16", "224.0.0.0/4", "ff00::/8", `"br0"`, "masquerade"} {
				if !strings.Contains(first, want) {
					t.Errorf("ruleset lacks %q:\n%s", want, first)
				}
			}
			if err := n.do(t, func() error { return b.Ensure(net) }); err != nil {
				t.Fatal(err)
			}
			if second := n.ruleset(t); second != first {
				t.Errorf("second Ensure changed the ruleset:\n%s\n---\n%s", first, second)
			}
			// The hot path writes nothing: a rewrite, even of the same
			// rules, gives them new handles and bumps the generation.
			before := n.exec(t, "nft", "-a", "list", "ruleset")
			events := nftEvents(t, n)
			if err := n.do(t, func() error { return b.Ensure(net) }); err != nil {
				t.Fatal(err)
			}
			if after := n.exec(t, "nft", "-a", "list", "ruleset"); after != before {
				t.Errorf("an Ensure of an unchanged network rewrote rules:\n%s\n---\n%s", before, after)
			}
			if ev := events(); ev != "" {
				t.Errorf("an Ensure of an unchanged network changed nftables: %s", ev)
			}
			// Many concurrent Ensures, the first of a new configuration
			// among them, must not duplicate anything.
			changed := net
			changed.NonMasquerade = pfx("10.201.0.0/16")
			var wg sync.WaitGroup
			errs := make(chan error, 8)
			for range 8 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					errs <- n.do(t, func() error { return b.Ensure(changed) })
				}()
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				if err != nil {
					t.Fatal(err)
				}
			}
			third := n.ruleset(t)
			if strings.Count(third, "10.201.0.0/16") != 1 || strings.Contains(third, "10.200.0.0/16") {
				t.Errorf("after concurrent Ensures of a changed network the ruleset is:\n%s", third)
			}
			if got := strings.Count(third, `iifname "br0"`); got != 2 {
				t.Errorf("want the bridge accept once per family, found %d:\n%s", got, third)
			}
			if err := n.do(t, func() error { return b.Ensure(net) }); err != nil {
				t.Fatal(err)
			}
			if back := n.ruleset(t); back != first && b.Name() == NFTablesName {
				t.Errorf("returning to the first configuration gave:\n%s\nwant\n%s", back, first)
			}
			n.exec(t, "iptables", "-S")
			n.exec(t, "ip6tables", "-S")
		})
	}
}

func TestRemoveAndNetworks(t *testing.T) {
	requireRoot(t)
	for _, b := range backendsForTest(t) {
		t.Run(b.Name(), func(t *testing.T) {
			n := newTestNS(t, "rm")
			prepareForward(t, n)
			a := testNetwork("net-a", "bra", "10.1.0.0/24", "fd01::/64")
			c := testNetwork("net-c", "brc", "10.3.0.0/24", "fd03::/64")
			c.Forward = false
			var names []string
			err := n.do(t, func() error {
				if err := b.Ensure(a); err != nil {
					return err
				}
				if err := b.Ensure(c); err != nil {
					return err
				}
				var err error
				names, err = b.Networks()
				return err
			})
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(names, []string{"net-a", "net-c"}) {
				t.Errorf("Networks = %v, want [net-a net-c]", names)
			}
			err = n.do(t, func() error {
				for range 2 { // idempotent
					if err := b.Remove("net-a"); err != nil {
						return err
					}
				}
				var err error
				names, err = b.Networks()
				return err
			})
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(names, []string{"net-c"}) {
				t.Errorf("Networks after Remove = %v, want [net-c]", names)
			}
			rs := n.ruleset(t)
			if strings.Contains(rs, "10.1.0.0/24") || strings.Contains(rs, "bra") || strings.Contains(rs, "net-a") {
				t.Errorf("net-a left rules behind:\n%s", rs)
			}
			if !strings.Contains(rs, "10.3.0.0/24") || !strings.Contains(rs, "fd03::/64") {
				t.Errorf("net-c lost rules:\n%s", rs)
			}
			// Ensuring without any need for rules removes them.
			c.Masquerade = false
			err = n.do(t, func() error {
				if err := b.Ensure(c); err != nil {
					return err
				}
				var err error
				names, err = b.Networks()
				return err
			})
			if err != nil {
				t.Fatal(err)
			}
			if rs := n.ruleset(t); len(names) != 0 || strings.Contains(strings.ToLower(rs), "flatcni") {
				t.Errorf("after removing everything: Networks = %v, ruleset:\n%s", names, rs)
			}
		})
	}
}

// Holds sees, through netlink alone, a network's rules in its backend
// (iptables: on this iptables-nft node), and nothing before or after.
func TestHolds(t *testing.T) {
	requireRoot(t)
	for _, b := range backendsForTest(t) {
		t.Run(b.Name(), func(t *testing.T) {
			n := newTestNS(t, "holds")
			prepareForward(t, n)
			net := testNetwork("net-h", "brh", "10.1.0.0/24", "fd01::/64")
			var got []bool
			err := n.do(t, func() error {
				got = append(got, b.Holds(net.Name))
				if err := b.Ensure(net); err != nil {
					return err
				}
				got = append(got, b.Holds(net.Name), b.Holds("net-other"))
				if err := b.Remove(net.Name); err != nil {
					return err
				}
				got = append(got, b.Holds(net.Name))
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			if want := []bool{false, true, false, false}; !slices.Equal(got, want) {
				t.Errorf("Holds before Ensure, after it, of another network, after Remove: %v, want %v", got, want)
			}
		})
	}
}

// Holder names the backend whose rules of the network netlink shows, so
// that the default backend resolves without starting iptables; "" when
// none shows any. PortsHolder likewise for port rule sets.
func TestHolder(t *testing.T) {
	requireRoot(t)
	for _, name := range Names("") {
		t.Run(name, func(t *testing.T) {
			n := newTestNS(t, "holder")
			prepareForward(t, n)
			b, p := newBackends(t, name)
			net := testNetwork("net-holder", "brh", "10.1.0.0/24", "fd01::/64")
			pn := PortNetwork{Name: net.Name, Bridge: "brh", Subnets: pfx("10.1.0.0/24")}
			var got []string
			err := n.do(t, func() error {
				got = append(got, Holder(net.Name), PortsHolder(net.Name))
				if err := b.Ensure(net); err != nil {
					return err
				}
				if err := p.Publish(pn, Attachment{ContainerID: "c1", IfName: "eth0"}, []Mapping{mp("tcp", "", 8080, "10.1.0.2", 80)}); err != nil {
					return err
				}
				got = append(got, Holder(net.Name), PortsHolder(net.Name), Holder("other"))
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			if want := []string{"", "", name, name, ""}; !slices.Equal(got, want) {
				t.Errorf("Holder, PortsHolder before, after, of another network: %q, want %q", got, want)
			}
		})
	}
}

func TestFamilyAndFeatureChanges(t *testing.T) {
	requireRoot(t)
	for _, b := range backendsForTest(t) {
		t.Run(b.Name(), func(t *testing.T) {
			n := newTestNS(t, "chg")
			prepareForward(t, n)
			full := testNetwork("chg", "br0", "10.1.0.0/24", "fd01::/64")
			v4only := Network{Name: "chg", Bridge: "br0", Masquerade: true, Subnets: pfx("10.1.0.0/24")}
			err := n.do(t, func() error {
				if err := b.Ensure(full); err != nil {
					return err
				}
				return b.Ensure(v4only)
			})
			if err != nil {
				t.Fatal(err)
			}
			rs := n.ruleset(t)
			if strings.Contains(rs, "fd01::/64") || strings.Contains(rs, `"br0"`) || !strings.Contains(rs, "10.1.0.0/24") {
				t.Errorf("after dropping IPv6 and forwarding the ruleset is:\n%s", rs)
			}
			if err := n.do(t, func() error { return b.Remove("chg") }); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// legacyChain is the reference plugin's chain name for a container.
func legacyChain(network, id string) string {
	sum := sha512.Sum512([]byte(network + id))
	return "CNI-" + hex.EncodeToString(sum[:])[:24]
}

func TestRemoveLegacyIPTables(t *testing.T) {
	requireRoot(t)
	n := newTestNS(t, "legipt")
	type entry struct {
		cmd, network, id, ip, subnet, mcast string
		jump                                bool
	}
	entries := []entry{
		{"iptables", "legnet", "gone1", "10.5.0.2", "10.5.0.0/24", "224.0.0.0/4", true},
		{"iptables", "legnet", "kept", "10.5.0.3", "10.5.0.0/24", "224.0.0.0/4", true},
		{"iptables", "legnet", "orphan", "10.5.0.4", "10.5.0.0/24", "224.0.0.0/4", false},
		{"iptables", "othernet", "gone1", "10.6.0.2", "10.6.0.0/24", "224.0.0.0/4", true},
		{"ip6tables", "legnet", "gone1", "fd05::2", "fd05::/64", "ff00::/8", true},
	}
	// Write the rules the way the reference's SetupIPMasq does.
	for _, e := range entries {
		chain := legacyChain(e.network, e.id)
		comment := fmt.Sprintf("name: %q id: %q", e.network, e.id)
		n.exec(t, e.cmd, "-t", "nat", "-N", chain)
		n.exec(t, e.cmd, "-t", "nat", "-A", chain, "-d", e.subnet, "-j", "ACCEPT", "-m", "comment", "--comment", comment)
		n.exec(t, e.cmd, "-t", "nat", "-A", chain, "!", "-d", e.mcast, "-j", "MASQUERADE", "-m", "comment", "--comment", comment)
		if e.jump {
			n.exec(t, e.cmd, "-t", "nat", "-A", "POSTROUTING", "-s", e.ip, "-j", chain, "-m", "comment", "--comment", comment)
		}
	}
	// A portmap-like chain with the same comment format must survive.
	n.exec(t, "iptables", "-t", "nat", "-N", "CNI-DN-0123456789abcdef0123")
	n.exec(t, "iptables", "-t", "nat", "-A", "CNI-DN-0123456789abcdef0123", "-m", "comment", "--comment", `name: "legnet" id: "gone1"`, "-j", "RETURN")

	b, err := New(IPTablesName, WithLockDir(t.TempDir()))
	if err != nil {
		t.Fatal(err)
	}
	if err := n.do(t, func() error { return b.RemoveLegacy("legnet", map[string]bool{"kept": true}) }); err != nil {
		t.Fatal(err)
	}
	v4 := n.exec(t, "iptables", "-t", "nat", "-S")
	v6 := n.exec(t, "ip6tables", "-t", "nat", "-S")
	for _, e := range entries {
		out := v4
		if e.cmd == "ip6tables" {
			out = v6
		}
		chain := legacyChain(e.network, e.id)
		wantKept := e.network != "legnet" || e.id == "kept"
		if got := strings.Contains(out, chain); got != wantKept {
			t.Errorf("%s %s/%s: chain %s present=%v, want %v\n%s", e.cmd, e.network, e.id, chain, got, wantKept, out)
		}
	}
	if !strings.Contains(v4, "CNI-DN-0123456789abcdef0123") {
		t.Errorf("portmap-like chain removed:\n%s", v4)
	}
	// Idempotent.
	if err := n.do(t, func() error { return b.RemoveLegacy("legnet", map[string]bool{"kept": true}) }); err != nil {
		t.Fatal(err)
	}
}

// legacyNFTComment is the reference's nftables comment for an attachment.
func legacyNFTComment(network, ifname, id string) string {
	sum := sha512.Sum512([]byte(ifname + ":" + id))
	c := fmt.Sprintf("%s-%s, net: %s, if: %s, id: %s", legacyNFTNetworkHash(network), hex.EncodeToString(sum[:])[:16], network, ifname, id)
	return c[:min(len(c), legacyNFTCommentMax)]
}

func TestRemoveLegacyNFTables(t *testing.T) {
	requireRoot(t)
	n := newTestNS(t, "legnft")
	script := fmt.Sprintf(`table inet cni_plugins_masquerade {
	chain masq_checks {
		ip saddr 10.5.0.2 ip daddr != 10.5.0.0/24 masquerade comment %q
		ip saddr 10.5.0.3 ip daddr != 10.5.0.0/24 masquerade comment %q
		ip6 saddr fd05::2 ip6 daddr != fd05::/64 masquerade comment %q
		ip saddr 10.6.0.2 ip daddr != 10.6.0.0/24 masquerade comment %q
	}
	chain postrouting {
		type nat hook postrouting priority srcnat; policy accept;
		ip daddr 224.0.0.0/4 return
		ip6 daddr ff00::/8 return
		goto masq_checks
	}
}
`, legacyNFTComment("legnet", "eth0", "gone1"), legacyNFTComment("legnet", "eth0", "kept"),
		legacyNFTComment("legnet", "eth0", "gone1"), legacyNFTComment("othernet", "eth0", "gone1"))
	f := t.TempDir() + "/legacy.nft"
	if err := writeFile(f, script); err != nil {
		t.Fatal(err)
	}
	n.exec(t, "nft", "-f", f)
	b, err := New(NFTablesName)
	if err != nil {
		t.Fatal(err)
	}
	if err := n.do(t, func() error { return b.RemoveLegacy("legnet", map[string]bool{"kept": true}) }); err != nil {
		t.Fatal(err)
	}
	rs := n.ruleset(t)
	for _, tc := range []struct {
		addr string
		want bool
	}{{"10.5.0.2 ", false}, {"fd05::2 ", false}, {"10.5.0.3 ", true}, {"10.6.0.2 ", true}} {
		if got := strings.Contains(rs, tc.addr); got != tc.want {
			t.Errorf("rule for %s present=%v, want %v:\n%s", tc.addr, got, tc.want, rs)
		}
	}
	if err := n.do(t, func() error { return b.RemoveLegacy("legnet", nil) }); err != nil {
		t.Fatal(err)
	}
	if rs := n.ruleset(t); strings.Contains(rs, "10.5.0.3 ") || !strings.Contains(rs, "10.6.0.2 ") {
		t.Errorf("after removing all of legnet:\n%s", rs)
	}
	// Without the reference's table there is nothing to do.
	empty := newTestNS(t, "legnone")
	if err := empty.do(t, func() error { return b.RemoveLegacy("legnet", nil) }); err != nil {
		t.Fatal(err)
	}
}

// nftEvents starts watching the namespace's nftables changes; the returned
// function stops and says what changed ("" for nothing). A transaction's
// notifications are queued before its commit returns; the wait only bounds
// how long the watcher may take to read them.
func nftEvents(t *testing.T, n *testNS) func() string {
	t.Helper()
	mon := nftables.NewMonitor()
	var events chan *nftables.MonitorEvent
	if err := n.do(t, func() error {
		c, err := nftables.New()
		if err != nil {
			return err
		}
		events, err = c.AddMonitor(mon)
		return err
	}); err != nil {
		t.Fatalf("nftables monitor: %v", err)
	}
	return func() string {
		defer mon.Close()
		select {
		case ev := <-events:
			return fmt.Sprintf("event type %v: %+v", ev.Type, ev.Data)
		case <-time.After(300 * time.Millisecond):
			return ""
		}
	}
}

// newBackends returns the masquerade and the ports backend called name,
// each with a lock directory of its own.
func newBackends(t *testing.T, name string) (Backend, Ports) {
	t.Helper()
	b, err := New(name, WithLockDir(t.TempDir()))
	if err != nil {
		t.Fatal(err)
	}
	p, err := NewPorts(name, WithLockDir(t.TempDir()))
	if err != nil {
		t.Fatal(err)
	}
	return b, p
}
