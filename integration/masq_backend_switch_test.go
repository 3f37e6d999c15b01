package integration

import (
	"strings"
	"testing"
)

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
			// The first ADD under the new backend took the old backend's
			// rules away: the new ones cover the whole subnet, and the old
			// would keep applying the old configuration until the last DEL.
			old := map[string]string{"iptables": "FLATCNI-", "nftables": "table inet flatcni-" + before.name}[order[0]]
			if dump := masqFirewallDump(t, node.Netns); strings.Contains(dump, old) {
				t.Errorf("the %s rules of the network are still there after the first ADD under %s:\n%s", order[0], order[1], dump)
			}
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
