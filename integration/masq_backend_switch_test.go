package integration

import "testing"

// TestMasqBackendSwitch: a network's ipMasqBackend is changed between two
// ADDs (one container attached with each); both containers reach the remote
// masqueraded, and once both are detached with the configuration in force
// nothing of the network is left in either backend, as the reference's DEL
// tears down both backends' rules.
func TestMasqBackendSwitch(t *testing.T) {
	requireRoot(t)
	for _, order := range [][2]string{{"iptables", "nftables"}, {"nftables", "iptables"}} {
		t.Run(order[0]+"-to-"+order[1], func(t *testing.T) {
			node, remote := masqUplinkNode(t)
			port := masqPeerServer(t, remote)
			before := newMasqNet(t, node, masqNetConf{backend: order[0], subnets: masqSubnets})
			after := newMasqNet(t, node, masqNetConf{backend: order[1], subnets: masqSubnets,
				name: before.name, extra: map[string]any{"bridge": before.bridge}})

			first, firstRT := masqContainer(t, "first")
			before.add(t, "", firstRT)
			second, secondRT := masqContainer(t, "second")
			after.add(t, "", secondRT)
			for _, c := range []*Netns{first, second} {
				masqExpectPeer(t, c, uplinkRemote4, port, uplinkNode4, c.Name+": IPv4 to the remote")
				masqExpectPeer(t, c, uplinkRemote6, port, uplinkNode6, c.Name+": IPv6 to the remote")
			}

			after.del(t, firstRT)
			after.del(t, secondRT)
			masqRequireNoTrace(t, node.Netns, before.name)
		})
	}
}
