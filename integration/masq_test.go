package integration

import (
	"fmt"
	"strings"
	"testing"

	"github.com/containernetworking/cni/libcni"
	"github.com/containernetworking/cni/pkg/types"
)

// Addresses of the uplink between a node and its remote (documentation
// prefixes). The remote routes back to the node's uplink address only, never
// to a pod subnet, so a reply to an unmasqueraded connection has no route.
const (
	uplinkNode4   = "192.0.2.1"
	uplinkRemote4 = "192.0.2.2"
	uplinkNode6   = "2001:db8:1::1"
	uplinkRemote6 = "2001:db8:1::2"
)

var masqSubnets = []string{"10.22.0.0/24", "fd22::/64"}

// eachBackendUplink runs fn as a subtest per firewall backend, each with a
// fresh node that has an uplink to a remote namespace (masqUplinkNode).
func eachBackendUplink(t *testing.T, fn func(t *testing.T, backend string, node *Node, remote *Netns)) {
	t.Helper()
	requireRoot(t)
	for _, backend := range []string{"iptables", "nftables"} {
		t.Run(backend, func(t *testing.T) {
			node, remote := masqUplinkNode(t)
			fn(t, backend, node, remote)
		})
	}
}

// masqUplinkNode is a node namespace with a veth "up0" to a remote namespace.
func masqUplinkNode(t testing.TB) (*Node, *Netns) {
	t.Helper()
	node := NewNode(t)
	remote := NewNetns(t, "remote")
	for _, c := range [][]string{
		{"ip", "-n", node.Name, "link", "add", "up0", "type", "veth", "peer", "name", "eth0", "netns", remote.Name},
		{"ip", "-n", node.Name, "addr", "add", uplinkNode4 + "/24", "dev", "up0"},
		{"ip", "-n", node.Name, "addr", "add", uplinkNode6 + "/64", "dev", "up0", "nodad"},
		{"ip", "-n", node.Name, "link", "set", "up0", "up"},
		{"ip", "-n", remote.Name, "addr", "add", uplinkRemote4 + "/24", "dev", "eth0"},
		{"ip", "-n", remote.Name, "addr", "add", uplinkRemote6 + "/64", "dev", "eth0", "nodad"},
		{"ip", "-n", remote.Name, "link", "set", "eth0", "up"},
	} {
		masqRun(t, c...)
	}
	return node, remote
}

// TestMasqTraffic attaches a container with cnitool and connects to the
// remote: the remote sees the node's uplink address, with each backend (and
// the default), over IPv4 and IPv6, with the FORWARD policy ACCEPT and DROP
// (iptables and ip6tables) in the node; a neighbour on the same bridge sees
// the container's own address.
func TestMasqTraffic(t *testing.T) {
	requireRoot(t)
	// "" leaves ipMasqBackend unset: iptables, which this node has.
	for _, backend := range []string{"iptables", "nftables", ""} {
		for _, policy := range []string{"ACCEPT", "DROP"} {
			label := backend
			if label == "" {
				label = "default"
			}
			t.Run(label+"/FORWARD-"+policy, func(t *testing.T) {
				node, remote := masqUplinkNode(t)
				port := masqPeerServer(t, remote)
				node.MustRun(t, "iptables", "-P", "FORWARD", policy)
				node.MustRun(t, "ip6tables", "-P", "FORWARD", policy)

				net := newMasqNet(t, node, masqNetConf{backend: backend, subnets: masqSubnets})
				ctr := NewNetns(t, "ctr")
				if out, err := node.CNITool(t, "add", net.name, ctr.Path); err != nil {
					t.Fatalf("cnitool add: %v\n%s", err, out)
				}
				t.Cleanup(func() { _, _ = node.CNITool(t, "del", net.name, ctr.Path) })

				masqExpectPeer(t, ctr, uplinkRemote4, port, uplinkNode4, "IPv4 to the remote")
				masqExpectPeer(t, ctr, uplinkRemote6, port, uplinkNode6, "IPv6 to the remote")

				// A neighbour on the same bridge is reached with the
				// container's own address (bridged, and seen by the FORWARD
				// chain when br_netfilter calls iptables in the node).
				neigh, neighRT := masqContainer(t, "neigh")
				neighRes := net.add(t, "", neighRT)
				t.Cleanup(func() { net.del(t, neighRT) })
				neighPort := masqPeerServer(t, neigh)
				for _, fam := range []int{4, 6} {
					got, err := masqPeerSeen(t, ctr, masqResultIP(t, neighRes, fam), neighPort)
					if err != nil || !strings.HasPrefix(got, map[int]string{4: "10.22.0.", 6: "fd22::"}[fam]) {
						t.Errorf("IPv%d to a neighbour on the bridge: seen from %q (%v), want the container's own address", fam, got, err)
					}
				}

				if policy == "DROP" {
					// The accept rules live in the chain holding the policy.
					for _, cmd := range []string{"iptables", "ip6tables"} {
						fwd := node.MustRun(t, cmd, "-S", "FORWARD")
						if !strings.Contains(fwd, "-P FORWARD DROP") || !strings.Contains(fwd, "flatcni net="+net.name) {
							t.Errorf("%s FORWARD has no flatcni accept rule under policy DROP:\n%s", cmd, fwd)
						}
					}
				}
				requireMasqRules(t, node, backend)

				net.del(t, neighRT)
				if out, err := node.CNITool(t, "del", net.name, ctr.Path); err != nil {
					t.Fatalf("cnitool del: %v\n%s", err, out)
				}
				masqRequireNoTrace(t, node.Netns, net.name)
			})
		}
	}
}

// requireMasqRules checks that multicast is excluded from masquerading in
// the node's rules of the backend, for both families.
func requireMasqRules(t testing.TB, node *Node, backend string) {
	t.Helper()
	var dump string
	if backend == "" {
		backend = "iptables"
	}
	if backend == "iptables" {
		dump = node.MustRun(t, "iptables-save", "-t", "nat") + node.MustRun(t, "ip6tables-save", "-t", "nat")
	} else {
		dump = node.MustRun(t, "nft", "list", "ruleset")
	}
	for _, s := range []string{"224.0.0.0/4", "ff00::/8", "masquerade", "MASQUERADE"} {
		if backend == "iptables" && s == "masquerade" || backend == "nftables" && s == "MASQUERADE" {
			continue
		}
		if !strings.Contains(dump, s) {
			t.Errorf("%s rules lack %q:\n%s", backend, s, dump)
		}
	}
}

// TestMasqControl proves the topology tells masquerading apart: without
// ipMasq the remote has no route back to the container, so the connection
// fails.
func TestMasqControl(t *testing.T) {
	requireRoot(t)
	node, remote := masqUplinkNode(t)
	port := masqPeerServer(t, remote)
	net := newMasqNet(t, node, masqNetConf{subnets: masqSubnets, noMasq: true})
	ctr, rt := masqContainer(t, "ctr")
	net.add(t, "", rt)
	t.Cleanup(func() { net.del(t, rt) })
	for _, dst := range []string{uplinkRemote4, uplinkRemote6} {
		if got, err := masqPeerSeenN(t, ctr, dst, port, 1); err == nil {
			t.Errorf("without ipMasq the connection to %s succeeded (seen from %s)", dst, got)
		}
	}
}

// TestMasqNonMasquerade: destinations in nonMasqueradeCIDRs keep the
// container's address (the remote is given a route back to the pod subnet).
func TestMasqNonMasquerade(t *testing.T) {
	eachBackendUplink(t, func(t *testing.T, backend string, node *Node, remote *Netns) {
		remote.MustRun(t, "ip", "route", "add", "10.22.0.0/24", "via", uplinkNode4)
		remote.MustRun(t, "ip", "-6", "route", "add", "fd22::/64", "via", uplinkNode6)
		port := masqPeerServer(t, remote)
		net := newMasqNet(t, node, masqNetConf{backend: backend, subnets: masqSubnets,
			nonMasq: []string{"192.0.2.0/28", "2001:db8:1::/64"}})
		ctr, rt := masqContainer(t, "ctr")
		res := net.add(t, "", rt)
		t.Cleanup(func() { net.del(t, rt) })
		masqExpectPeer(t, ctr, uplinkRemote4, port, masqResultIP(t, res, 4), "IPv4 to a nonMasquerade destination")
		masqExpectPeer(t, ctr, uplinkRemote6, port, masqResultIP(t, res, 6), "IPv6 to a nonMasquerade destination")
	})
}

// TestMasqRuleCount: the node's rule count is the same with 2 and with 30
// containers, and nothing naming the network is left after the last DEL.
func TestMasqRuleCount(t *testing.T) {
	requireRoot(t)
	for _, backend := range []string{"iptables", "nftables"} {
		t.Run(backend, func(t *testing.T) {
			node := NewNode(t)
			net := newMasqNet(t, node, masqNetConf{backend: backend, subnets: masqSubnets})
			var rts []*libcni.RuntimeConf
			counts := map[int]int{}
			for i := 1; i <= 30; i++ {
				_, rt := masqContainer(t, fmt.Sprintf("c%d", i))
				net.add(t, "", rt)
				rts = append(rts, rt)
				if i == 2 || i == 30 {
					counts[i] = masqRuleCount(t, node.Netns)
				}
			}
			if counts[2] != counts[30] || counts[2] == 0 {
				t.Errorf("rules with 2 containers: %d, with 30: %d\n%s", counts[2], counts[30], masqFirewallDump(t, node.Netns))
			}
			for i, rt := range rts {
				net.del(t, rt)
				if i < len(rts)-1 && masqRuleCount(t, node.Netns) != counts[30] {
					t.Fatalf("rules changed after DEL %d of %d:\n%s", i+1, len(rts), masqFirewallDump(t, node.Netns))
				}
			}
			masqRequireNoTrace(t, node.Netns, net.name)
			if l := net.leases(t); len(l) != 0 {
				t.Errorf("leases left after the last DEL: %v", l)
			}
		})
	}
}

// TestMasqGC: containers vanish without DEL (their namespaces are deleted);
// GC with only the live attachments keeps the rules and the live lease and
// drops the rest; GC with no valid attachment cleans the network entirely.
func TestMasqGC(t *testing.T) {
	eachBackendUplink(t, func(t *testing.T, backend string, node *Node, remote *Netns) {
		port := masqPeerServer(t, remote)
		net := newMasqNet(t, node, masqNetConf{backend: backend, subnets: masqSubnets})
		live, liveRT := masqContainer(t, "live")
		liveRes := net.add(t, "", liveRT)
		var gone []*Netns
		for i := range 3 {
			c, rt := masqContainer(t, fmt.Sprintf("gone%d", i))
			net.add(t, "", rt)
			gone = append(gone, c)
		}
		// A host veth of ours (its alias) on the bridge whose peer never
		// reached a container. (A pair without it is someone else's:
		// pkg/link's TestOrphanVeths.)
		orphan := "veth" + uniq() + "00"
		node.MustRun(t, "ip", "link", "add", orphan, "type", "veth", "peer", "name", "tmp"+uniq())
		node.MustRun(t, "ip", "link", "set", orphan, "master", net.bridge, "up", "alias", "flatcni:gone/eth9")
		for _, c := range gone {
			c.Delete()
		}

		net.gc(t, types.GCAttachment{ContainerID: liveRT.ContainerID, IfName: liveRT.IfName})
		want := []string{masqResultIP(t, liveRes, 4), masqResultIP(t, liveRes, 6)}
		if got := net.leases(t); !masqSameSet(got, want) {
			t.Errorf("leases after GC with the live attachment: %v, want %v", got, want)
		}
		ok, ports := masqWaitFor(func() (bool, string) {
			p := masqBridgePorts(t, node.Netns, net.bridge)
			return len(p) == 1, strings.Join(p, " ")
		})
		if !ok {
			t.Errorf("bridge ports after GC: %s, want only the live container's", ports)
		}
		masqExpectPeer(t, live, uplinkRemote4, port, uplinkNode4, "live container after GC")

		live.Delete()
		net.gc(t)
		if got := net.leases(t); len(got) != 0 {
			t.Errorf("leases after GC without valid attachments: %v", got)
		}
		masqRequireNoTrace(t, node.Netns, net.name)
		ok, ports = masqWaitFor(func() (bool, string) {
			p := masqBridgePorts(t, node.Netns, net.bridge)
			return len(p) == 0, strings.Join(p, " ")
		})
		if !ok {
			t.Errorf("bridge ports after GC without valid attachments: %s", ports)
		}
	})
}

func masqSameSet(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	m := map[string]int{}
	for _, s := range a {
		m[s]++
	}
	for _, s := range b {
		if m[s] == 0 {
			return false
		}
		m[s]--
	}
	return true
}

// masqRun runs a command on the machine (ip -n … addresses namespaces).
func masqRun(t testing.TB, args ...string) {
	t.Helper()
	if out, err := masqExec(args...); err != nil {
		t.Fatalf("%s: %v\n%s", strings.Join(args, " "), err, out)
	}
}
