package integration

import "testing"

// TestMasqSubnetChange: a network's IPv6 range is moved to another subnet
// while a container is attached (the bridge keeps the old gateway address,
// as with the reference, and takes the new one beside it). The ADD of a
// container under the new configuration rewrites the network's rules; the
// container attached before, in the old subnet, is still masqueraded (as
// with the reference, whose rules are the container's own), and so is the
// new one. The last DEL leaves nothing.
func TestMasqSubnetChange(t *testing.T) {
	eachBackendUplink(t, func(t *testing.T, backend string, node *Node, remote *Netns) {
		port := masqPeerServer(t, remote)
		before := newMasqNet(t, node, masqNetConf{backend: backend, subnets: masqSubnets})
		after := newMasqNet(t, node, masqNetConf{backend: backend, subnets: []string{"10.22.0.0/24", "fd23::/64"},
			name: before.name, extra: map[string]any{"bridge": before.bridge}})
		old, oldRT := masqContainer(t, "old")
		before.add(t, "", oldRT)
		c, rt := masqContainer(t, "new")
		after.add(t, "", rt)

		masqExpectPeer(t, old, uplinkRemote4, port, uplinkNode4, "IPv4 from the container attached before the change")
		masqExpectPeer(t, old, uplinkRemote6, port, uplinkNode6, "IPv6 from the container attached before the change (old subnet)")
		masqExpectPeer(t, c, uplinkRemote4, port, uplinkNode4, "IPv4 from the container added after the change")
		masqExpectPeer(t, c, uplinkRemote6, port, uplinkNode6, "IPv6 from the container added after the change (new subnet)")

		after.del(t, oldRT)
		after.del(t, rt)
		masqRequireNoTrace(t, node.Netns, before.name)
	})
}

// TestMasqFamilyDropped: a dual-stack network loses one family from its
// configuration (each way) while a container is attached. The ADD of a
// container under the new configuration rewrites the network's rules; the
// container attached before keeps the dropped family's egress through the
// gateway still on the bridge (as with the reference, whose rules are the
// container's own). The last DEL leaves nothing.
func TestMasqFamilyDropped(t *testing.T) {
	for _, tc := range []struct {
		name    string
		kept    []string
		dropped int // the family the old container must still reach the remote over
	}{{"v6 dropped", []string{"10.22.0.0/24"}, 6}, {"v4 dropped", []string{"fd22::/64"}, 4}} {
		t.Run(tc.name, func(t *testing.T) {
			eachBackendUplink(t, func(t *testing.T, backend string, node *Node, remote *Netns) {
				port := masqPeerServer(t, remote)
				before := newMasqNet(t, node, masqNetConf{backend: backend, subnets: masqSubnets})
				after := newMasqNet(t, node, masqNetConf{backend: backend, subnets: tc.kept,
					name: before.name, extra: map[string]any{"bridge": before.bridge}})
				old, oldRT := masqContainer(t, "old")
				before.add(t, "", oldRT)
				_, rt := masqContainer(t, "new")
				after.add(t, "", rt)

				if tc.dropped == 6 {
					masqExpectPeer(t, old, uplinkRemote6, port, uplinkNode6, "IPv6 from the container attached before IPv6 was dropped")
				} else {
					masqExpectPeer(t, old, uplinkRemote4, port, uplinkNode4, "IPv4 from the container attached before IPv4 was dropped")
				}

				after.del(t, oldRT)
				after.del(t, rt)
				masqRequireNoTrace(t, node.Netns, before.name)
			})
		})
	}
}

// TestMasqSharedBridgeOtherNetwork: two networks name one bridge (two
// configurations without a "bridge" key share cni0), each with an IPv6
// subnet of its own: A masquerades, B does not (its addresses are
// routable). The gateway of B's subnet on the bridge is not A's: A's rules
// do not masquerade B's container, which the remote sees from its own
// address, as with the reference (whose rules are A's containers' own).
func TestMasqSharedBridgeOtherNetwork(t *testing.T) {
	eachBackendUplink(t, func(t *testing.T, backend string, node *Node, remote *Netns) {
		remote.MustRun(t, "ip", "-6", "route", "add", "fd24::/64", "via", uplinkNode6)
		port := masqPeerServer(t, remote)
		b := newMasqNet(t, node, masqNetConf{backend: backend, subnets: []string{"fd24::/64"}, noMasq: true})
		a := newMasqNet(t, node, masqNetConf{backend: backend, subnets: []string{"fd22::/64"}, extra: map[string]any{"bridge": b.bridge}})
		bc, bRT := masqContainer(t, "b")
		bRes := b.add(t, "", bRT)
		t.Cleanup(func() { b.del(t, bRT) })
		ac, aRT := masqContainer(t, "a")
		a.add(t, "", aRT)
		t.Cleanup(func() { a.del(t, aRT) })

		masqExpectPeer(t, bc, uplinkRemote6, port, masqResultIP(t, bRes, 6), "B's container (ipMasq false) beside A's on the bridge")
		masqExpectPeer(t, ac, uplinkRemote6, port, uplinkNode6, "A's container, masqueraded")
	})
}
