package integration

import "testing"

// TestMasqLastDelBridgeWithOtherPorts: the network's bridge also holds ports
// that are no container's: an L2 uplink (a veth to the remote) and a veth
// pair within the node (as a VLAN's "<bridge>.<vlan>" gateway pair). The
// container is masqueraded while attached; its DEL, the network's last,
// removes every rule of the network (the reference's DEL removes its rules
// whatever else is on the bridge), and a new ADD brings them back.
func TestMasqLastDelBridgeWithOtherPorts(t *testing.T) {
	eachBackendUplink(t, func(t *testing.T, backend string, node *Node, remote *Netns) {
		port := masqPeerServer(t, remote)
		net := newMasqNet(t, node, masqNetConf{backend: backend, subnets: masqSubnets})
		for _, c := range [][]string{
			{"ip", "-n", node.Name, "link", "add", net.bridge, "type", "bridge"},
			{"ip", "-n", node.Name, "link", "set", net.bridge, "up"},
			{"ip", "-n", node.Name, "link", "add", "l2up", "type", "veth", "peer", "name", "l2", "netns", remote.Name},
			{"ip", "-n", node.Name, "link", "set", "l2up", "master", net.bridge, "up"},
			{"ip", "-n", node.Name, "link", "add", "veth" + uniq() + "00", "master", net.bridge, "up", "type", "veth", "peer", "name", net.bridge + ".7"},
		} {
			masqRun(t, c...)
		}
		for round := range 2 {
			ctr, rt := masqContainer(t, "ctr")
			net.add(t, "", rt)
			masqExpectPeer(t, ctr, uplinkRemote4, port, uplinkNode4, "IPv4 to the remote")
			masqExpectPeer(t, ctr, uplinkRemote6, port, uplinkNode6, "IPv6 to the remote")
			net.del(t, rt)
			if len(masqBridgePorts(t, node.Netns, net.bridge)) != 2 {
				t.Fatalf("round %d: bridge ports after DEL: %v, want the two of the node", round, masqBridgePorts(t, node.Netns, net.bridge))
			}
			masqRequireNoTrace(t, node.Netns, net.name)
		}
	})
}
