package firewall

import (
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
)

// TestIsolationConcurrent ensures several isolated networks at once, twice
// each: the shared part holds each network once; a network switched back
// to none leaves it; Networks lists them all; removing them all (at once)
// leaves nothing of ours.
func TestIsolationConcurrent(t *testing.T) {
	requireRoot(t)
	for _, b := range backendsForTest(t) {
		t.Run(b.Name(), func(t *testing.T) {
			n := newTestNS(t, "iso")
			var nets []Network
			for i := range 6 {
				net := testNetwork(fmt.Sprintf("iso%d", i), fmt.Sprintf("br%d", i), fmt.Sprintf("10.9.%d.0/24", i), fmt.Sprintf("fd09:%d::/64", i))
				net.Isolation = IsolationIsolated
				nets = append(nets, net)
			}
			all := func(fn func(Network) error) {
				t.Helper()
				var wg sync.WaitGroup
				errs := make(chan error, 2*len(nets))
				for range 2 {
					for _, net := range nets {
						wg.Add(1)
						go func() {
							defer wg.Done()
							errs <- n.do(t, func() error { return fn(net) })
						}()
					}
				}
				wg.Wait()
				close(errs)
				for err := range errs {
					if err != nil {
						t.Fatal(err)
					}
				}
			}
			all(b.Ensure)
			rs := n.ruleset(t)
			members := sharedMembers(t, n, b.Name())
			for _, net := range nets {
				if members[net.Bridge] != 1 {
					t.Errorf("bridge %s is %d times in the shared part, want once: %v", net.Bridge, members[net.Bridge], members)
				}
			}
			var got []string
			if err := n.do(t, func() (err error) { got, err = b.Networks(); return err }); err != nil {
				t.Fatal(err)
			}
			for _, net := range nets {
				if !slices.Contains(got, net.Name) {
					t.Errorf("Networks() = %v, lacks %s", got, net.Name)
				}
			}
			if err := n.do(t, func() error { return b.Ensure(nets[0]) }); err != nil {
				t.Fatal(err)
			}
			if again := n.ruleset(t); again != rs {
				t.Errorf("Ensure of an unchanged network changed the ruleset:\n%s\n---\n%s", rs, again)
			}

			none := nets[0]
			none.Isolation = IsolationNone
			if err := n.do(t, func() error { return b.Ensure(none) }); err != nil {
				t.Fatal(err)
			}
			if members := sharedMembers(t, n, b.Name()); members[none.Bridge] != 0 || len(members) != len(nets)-1 {
				t.Errorf("after switching %s to none the shared part holds %v", none.Name, members)
			}
			if rs := n.ruleset(t); !strings.Contains(rs, "10.9.0.0/24") {
				t.Errorf("network switched to none lost its masquerade rules:\n%s", rs)
			}

			all(func(net Network) error { return b.Remove(net.Name) })
			if rs := n.ruleset(t); strings.Contains(rs, "flatcni") || strings.Contains(rs, "FLATCNI") {
				t.Errorf("left after Remove:\n%s", rs)
			}
		})
	}
}

// sharedMembers counts how often each bridge is a member of the shared
// part: for nftables, a set element with a rule of its own; for iptables, a
// rule in FLATCNI-ISOLATED of iptables and of ip6tables (counted once).
func sharedMembers(t *testing.T, n *testNS, backend string) map[string]int {
	t.Helper()
	out := map[string]int{}
	if backend == NFTablesName {
		rs := n.ruleset(t)
		for _, l := range strings.Split(rs, "\n") {
			if strings.Contains(l, "oifname @isolated drop") {
				br := strings.Trim(strings.Fields(l)[1], `"`)
				if strings.Contains(rs, fmt.Sprintf("%q,", br)) || strings.Contains(rs, fmt.Sprintf("%q }", br)) {
					out[br]++
				}
			}
		}
		return out
	}
	per := map[string]map[string]int{}
	for _, cmd := range []string{"iptables", "ip6tables"} {
		per[cmd] = map[string]int{}
		for _, l := range strings.Split(n.exec(t, cmd, "-t", "mangle", "-S"), "\n") {
			if f := strings.Fields(l); len(f) > 3 && f[0] == "-A" && f[1] == iptIsolatedChain {
				per[cmd][f[3]]++
			}
		}
	}
	if fmt.Sprint(per["iptables"]) != fmt.Sprint(per["ip6tables"]) {
		t.Errorf("shared stage differs between families: %v", per)
	}
	return per["iptables"]
}

// TestIsolationSharedChainFlushed: the iptables backend's shared isolation
// chain emptied by hand (a partial reload) while isolated networks' chains
// still jump to it: removing another network, or one of them, succeeds
// (the chain, still jumped to, stays; the kernel refuses its deletion),
// and the next Ensure of an isolated network puts its member rule back.
func TestIsolationSharedChainFlushed(t *testing.T) {
	requireRoot(t)
	b, err := New(IPTablesName, WithLockDir(t.TempDir()))
	if err != nil {
		t.Fatal(err)
	}
	n := newTestNS(t, "isoflush")
	prepareForward(t, n)
	var nets []Network
	for i := range 2 {
		net := testNetwork(fmt.Sprintf("isf%d", i), fmt.Sprintf("brf%d", i), fmt.Sprintf("10.19.%d.0/24", i), fmt.Sprintf("fd19:%d::/64", i))
		net.Isolation = IsolationIsolated
		nets = append(nets, net)
	}
	plain := testNetwork("isfplain", "brfp", "10.19.9.0/24", "fd19:9::/64")
	for _, net := range append(slices.Clone(nets), plain) {
		if err := n.do(t, func() error { return b.Ensure(net) }); err != nil {
			t.Fatal(err)
		}
	}
	flush := func() {
		n.exec(t, "iptables", "-t", "mangle", "-F", iptIsolatedChain)
		n.exec(t, "ip6tables", "-t", "mangle", "-F", iptIsolatedChain)
	}
	flush()
	if err := n.do(t, func() error { return b.Ensure(nets[0]) }); err != nil {
		t.Fatal(err)
	}
	if out := n.exec(t, "iptables", "-t", "mangle", "-S", iptIsolatedChain); !strings.Contains(out, "isf0") {
		t.Errorf("Ensure did not put the network's member rule back in the flushed shared chain:\n%s", out)
	}
	flush()
	for _, name := range []string{plain.Name, nets[1].Name} {
		if err := n.do(t, func() error { return b.Remove(name) }); err != nil {
			t.Errorf("Remove %s with the shared chain flushed by hand: %v", name, err)
		}
	}
}

// TestIsolationRewriteKeepsDrops: a change of the network's fingerprint
// that leaves a part's rules as they are (another part changed) does not
// flush that part's chain: the old jump still leads to it, and the
// isolation drops would be gone until the appends end. The mangle chain's
// rules keep their handles.
func TestIsolationRewriteKeepsDrops(t *testing.T) {
	requireRoot(t)
	requireIPTablesNFT(t, "rule handles are read with nft")
	b, err := New(IPTablesName, WithLockDir(t.TempDir()))
	if err != nil {
		t.Fatal(err)
	}
	n := newTestNS(t, "isokeep")
	prepareForward(t, n)
	net := testNetwork("isk", "brk", "10.19.7.0/24", "fd19:7::/64")
	net.Internal, net.Masquerade, net.Forward = true, false, false
	if err := n.do(t, func() error { return b.Ensure(net) }); err != nil {
		t.Fatal(err)
	}
	handles := func() string {
		return n.exec(t, "nft", "-a", "list", "chain", "ip", "mangle", iptChainName(net.Name))
	}
	before := handles()
	net.Forward = true // a filter part is added: a new fingerprint
	if err := n.do(t, func() error { return b.Ensure(net) }); err != nil {
		t.Fatal(err)
	}
	if after := handles(); after != before {
		t.Errorf("the mangle chain was rewritten though its rules did not change:\n%s\n---\n%s", before, after)
	}
}
