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
