package integration

import (
	"testing"
)

// TestIsolationTraffic builds a node with an uplink to a remote and four
// networks: A and B isolated, C without isolation, S strict. Isolated pairs
// and S against anyone cannot connect or ping; A and C can; everyone reaches
// the node, the remote, and ports published (by hand-written DNAT rules)
// into A and S from the networks they are isolated from.
func TestIsolationTraffic(t *testing.T) {
	eachBackendUplink(t, func(t *testing.T, backend string, node *Node, remote *Netns) {
		remotePort := masqPeerServer(t, remote)
		a := newIsoNet(t, node, backend, "10.31.1.0/24", map[string]any{"isolation": "isolated"})
		b := newIsoNet(t, node, backend, "10.31.2.0/24", map[string]any{"isolation": "isolated"})
		c := newIsoNet(t, node, backend, "10.31.3.0/24", nil)
		s := newIsoNet(t, node, backend, "10.31.4.0/24", map[string]any{"isolation": "strict"})
		a1, b1, c1 := a.attach(t, "a1"), b.attach(t, "b1"), c.attach(t, "c1")
		// Last: with iptables, strict lists the bridges present when
		// its rules are written (docs/isolation.md).
		s1 := s.attach(t, "s1")

		isoBlocked(t, a1.ns, b1.ip, b1.port, "isolated A to isolated B")
		isoBlocked(t, b1.ns, a1.ip, a1.port, "isolated B to isolated A")
		isoReach(t, a1.ns, c1.ip, c1.port, "isolated A to non-isolated C")
		isoReach(t, c1.ns, a1.ip, a1.port, "non-isolated C to isolated A")
		for _, o := range []*isoCtr{a1, b1, c1} {
			isoBlocked(t, s1.ns, o.ip, o.port, "strict S to "+o.ns.Name)
			isoBlocked(t, o.ns, s1.ip, s1.port, o.ns.Name+" to strict S")
		}
		for _, ctr := range []*isoCtr{a1, b1, c1, s1} {
			isoReach(t, ctr.ns, uplinkRemote4, remotePort, ctr.ns.Name+" to the remote")
			isoPing(t, ctr.ns, uplinkNode4, ctr.ns.Name+" to the node's uplink address")
			isoPing(t, ctr.ns, c.gateway, ctr.ns.Name+" to another network's gateway (the node)")
		}

		isoPublish(t, node, 18081, a1)
		isoPublish(t, node, 18084, s1)
		isoReach(t, b1.ns, uplinkNode4, 18081, "isolated B to a port published into A")
		isoReach(t, s1.ns, uplinkNode4, 18081, "strict S to a port published into A")
		isoReach(t, c1.ns, uplinkNode4, 18084, "C to a port published into strict S")
		isoReach(t, a1.ns, uplinkNode4, 18084, "isolated A to a port published into strict S")
		isoReach(t, remote, uplinkNode4, 18084, "the remote to a port published into strict S")
		// Still only the published port.
		isoBlocked(t, b1.ns, a1.ip, a1.port, "isolated B to A beside the published port")
	})
}

// TestIsolationInternalAndICC: an internal network's containers reach each
// other and the gateway, but not the remote (even with a route) nor other
// networks, nor do they get a default route; with icc false containers
// reach the gateway and the remote but not each other.
func TestIsolationInternalAndICC(t *testing.T) {
	eachBackendUplink(t, func(t *testing.T, backend string, node *Node, remote *Netns) {
		remotePort := masqPeerServer(t, remote)
		in := newIsoNet(t, node, backend, "10.32.1.0/24", map[string]any{"internal": true})
		icc := newIsoNet(t, node, backend, "10.32.2.0/24", map[string]any{"icc": false})
		other := newIsoNet(t, node, backend, "10.32.3.0/24", nil)
		i1, i2 := in.attach(t, "i1"), in.attach(t, "i2")
		n1, n2 := icc.attach(t, "n1"), icc.attach(t, "n2")
		o1 := other.attach(t, "o1")

		if out := i1.ns.MustRun(t, "ip", "route", "show", "default"); out != "" {
			t.Errorf("internal container has a default route: %s", out)
		}
		isoReach(t, i1.ns, i2.ip, i2.port, "internal to internal")
		isoPing(t, i1.ns, in.gateway, "internal to its gateway")
		// A route by hand: the firewall, not the missing route, keeps it in.
		i1.ns.MustRun(t, "ip", "route", "add", "default", "via", in.gateway)
		isoBlocked(t, i1.ns, uplinkRemote4, remotePort, "internal to the remote")
		isoBlocked(t, i1.ns, o1.ip, o1.port, "internal to another network")
		isoBlocked(t, o1.ns, i1.ip, i1.port, "another network to internal")

		isoBlocked(t, n1.ns, n2.ip, n2.port, "icc off: container to container")
		isoPing(t, n1.ns, icc.gateway, "icc off: container to its gateway")
		isoReach(t, n1.ns, uplinkRemote4, remotePort, "icc off: container to the remote")
		isoReach(t, n1.ns, o1.ip, o1.port, "icc off: container to another network")
		// Through the gateway (routed, not bridged): the L3 rule.
		n1.ns.MustRun(t, "ip", "route", "add", n2.ip+"/32", "via", icc.gateway)
		isoBlocked(t, n1.ns, n2.ip, n2.port, "icc off: container to container through the gateway")

		// Under a FORWARD DROP policy (br_netfilter hands bridged frames
		// to it), internal containers still reach each other: the
		// network's forward accepts (the nftables backend's, in
		// iptables-nft's FORWARD, written by the network's next ADD);
		// its isolation, earlier in the path, still keeps it in.
		node.MustRun(t, "iptables", "-P", "FORWARD", "DROP")
		node.MustRun(t, "ip6tables", "-P", "FORWARD", "DROP")
		i3 := in.attach(t, "i3")
		isoReach(t, i3.ns, i1.ip, i1.port, "internal to internal under FORWARD DROP")
		isoReach(t, i1.ns, i3.ip, i3.port, "internal to internal under FORWARD DROP (the other way)")
		i3.ns.MustRun(t, "ip", "route", "add", "default", "via", in.gateway)
		isoBlocked(t, i3.ns, uplinkRemote4, remotePort, "internal to the remote under FORWARD DROP")
		isoBlocked(t, i3.ns, o1.ip, o1.port, "internal to another network under FORWARD DROP")
	})
}
