package integration

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/containernetworking/cni/pkg/types"
)

var (
	portsSubnets  = []string{"10.23.0.0/24", "fd23::/64"}
	portsSubnets2 = []string{"10.24.0.0/24", "fd24::/64"}
)

// TestPortsReach publishes a container's TCP and UDP port 80 on the node's
// port 8080, under a FORWARD DROP policy (iptables and ip6tables), with each
// backend, and reaches it: from a remote host through the node's uplink
// address (IPv4 and IPv6; the container sees the remote's own address),
// from the node itself (uplink address and 127.0.0.1), from the container
// itself (hairpin), from a neighbour on the same bridge, and from a
// container of another bridge network. DEL and GC leave nothing behind.
func TestPortsReach(t *testing.T) {
	eachBackendUplink(t, func(t *testing.T, backend string, node *Node, remote *Netns) {
		node.MustRun(t, "iptables", "-P", "FORWARD", "DROP")
		node.MustRun(t, "ip6tables", "-P", "FORWARD", "DROP")
		net := newPortsNet(t, node, portsNetConf{backend: backend, subnets: portsSubnets})
		other := newPortsNet(t, node, portsNetConf{backend: backend, subnets: portsSubnets2})

		web := NewNetns(t, "web")
		portsServe(t, web, "web", 80)
		webRT := portsRT(web, portMap{HostPort: 8080, ContainerPort: 80, Protocol: "tcp"}, portMap{HostPort: 8080, ContainerPort: 80, Protocol: "udp"})
		net.add(t, webRT)
		if err := net.check(t, webRT); err != nil {
			t.Errorf("CHECK: %v", err)
		}

		for _, proto := range []string{"tcp", "udp"} {
			portsExpect(t, remote, proto, uplinkNode4, 8080, "web", uplinkRemote4, "remote over IPv4")
			portsExpect(t, remote, proto, uplinkNode6, 8080, "web", uplinkRemote6, "remote over IPv6")
			portsExpect(t, node.Netns, proto, uplinkNode4, 8080, "web", "", "the node, its uplink address")
			portsExpect(t, node.Netns, proto, uplinkNode6, 8080, "web", "", "the node, its IPv6 uplink address")
			portsExpect(t, node.Netns, proto, "127.0.0.1", 8080, "web", "", "the node, 127.0.0.1")
			portsExpect(t, web, proto, uplinkNode4, 8080, "web", "", "hairpin over IPv4")
			portsExpect(t, web, proto, uplinkNode6, 8080, "web", "", "hairpin over IPv6")
		}

		neigh := NewNetns(t, "neigh")
		neighRT := portsRT(neigh)
		net.add(t, neighRT)
		far := NewNetns(t, "far")
		farRT := portsRT(far)
		other.add(t, farRT)
		for _, proto := range []string{"tcp", "udp"} {
			portsExpect(t, neigh, proto, uplinkNode4, 8080, "web", "", "a neighbour on the bridge")
			portsExpect(t, neigh, proto, uplinkNode6, 8080, "web", "", "a neighbour on the bridge, IPv6")
			portsExpect(t, far, proto, uplinkNode4, 8080, "web", "", "another bridge network's container")
			portsExpect(t, far, proto, uplinkNode6, 8080, "web", "", "another bridge network's container, IPv6")
		}

		// A remote packet to 127.0.0.1 is dropped, even with
		// route_localnet on the bridge.
		remote.MustRun(t, "ip", "route", "add", "127.100.0.0/16", "via", uplinkNode4)
		if got, err := portsDial(t, remote, "tcp", "127.100.0.1", 8080, 0); err == nil {
			t.Errorf("remote reached 127.100.0.1:8080 through the node: %q", got)
		}

		localnet := func() string {
			return strings.TrimSpace(node.MustRun(t, "sysctl", "-n", "net.ipv4.conf."+net.bridge+".route_localnet"))
		}
		if got := localnet(); got != "1" {
			t.Errorf("route_localnet on %s while a port is published: %s, want 1", net.bridge, got)
		}
		// DEL removes the container's mappings; the others' rules stay.
		net.del(t, webRT)
		// With the network's last mapping its rule set, and the drop of
		// packets to 127.0.0.0/8, went: route_localnet is off again,
		// though a neighbour stays attached.
		if got := localnet(); got != "0" {
			t.Errorf("route_localnet on %s after the last publisher's DEL: %s, want 0", net.bridge, got)
		}
		if got, err := portsDial(t, remote, "tcp", uplinkNode4, 8080, 0); err == nil {
			t.Errorf("published port still answers after DEL: %q", got)
		}
		if dump := masqFirewallDump(t, node.Netns); strings.Contains(dump, webRT.ContainerID) {
			t.Errorf("the node's firewall still names %s after its DEL:\n%s", webRT.ContainerID, dump)
		}
		// GC with no valid attachment removes the rest.
		net.gc(t)
		other.gc(t)
		net.del(t, neighRT)
		other.del(t, farRT)
		dump := masqFirewallDump(t, node.Netns)
		for _, s := range []string{"flatcni", "FLATCNI"} {
			if strings.Contains(dump, s) {
				t.Errorf("node firewall still mentions %q after DEL and GC:\n%s", s, dump)
			}
		}
		for _, n := range []*portsNet{net, other} {
			if left, _ := filepath.Glob("/run/flatcni/net-" + n.name + ".*"); len(left) != 0 {
				t.Errorf("left in /run/flatcni after the network's last DEL: %v", left)
			}
		}
	})
}

// TestPortsGCRemovesGone publishes for two containers, then GC with one of
// them valid: the other's mappings go, the valid one still answers.
func TestPortsGCRemovesGone(t *testing.T) {
	requireRoot(t)
	node, remote := masqUplinkNode(t)
	net := newPortsNet(t, node, portsNetConf{backend: "nftables", subnets: portsSubnets})
	aRT := portsWeb(t, "a", 8081)
	bRT := portsWeb(t, "b", 8082)
	net.add(t, aRT)
	net.add(t, bRT)
	net.gc(t, types.GCAttachment{ContainerID: aRT.ContainerID, IfName: aRT.IfName})
	portsExpect(t, remote, "tcp", uplinkNode4, 8081, "a", uplinkRemote4, "the valid attachment after GC")
	if got, err := portsDial(t, remote, "tcp", uplinkNode4, 8082, 0); err == nil {
		t.Errorf("the gone attachment's port still answers after GC: %q", got)
	}
}

// TestPortsBackendSwitch: a network's ipMasqBackend changed between two
// publishing ADDs; DEL with the configuration in force removes each
// container's mappings from the backend that published them (a mapping
// left behind would forward its host port to whichever container gets the
// address next), and the last DEL leaves nothing of the network.
func TestPortsBackendSwitch(t *testing.T) {
	requireRoot(t)
	for _, order := range [][2]string{{"iptables", "nftables"}, {"nftables", "iptables"}} {
		t.Run(order[0]+"-to-"+order[1], func(t *testing.T) {
			node, remote := masqUplinkNode(t)
			before := newPortsNet(t, node, portsNetConf{backend: order[0], subnets: portsSubnets})
			after := newPortsNet(t, node, portsNetConf{backend: order[1], subnets: portsSubnets, name: before.name, bridge: before.bridge})
			aRT := portsWeb(t, "a", 8081)
			bRT := portsWeb(t, "b", 8082)
			before.add(t, aRT)
			after.add(t, bRT)
			portsExpect(t, remote, "tcp", uplinkNode4, 8081, "a", uplinkRemote4, "published with "+order[0])
			portsExpect(t, remote, "tcp", uplinkNode4, 8082, "b", uplinkRemote4, "published with "+order[1])
			portsExpect(t, node.Netns, "tcp", "127.0.0.1", 8082, "b", "", "b from the node's 127.0.0.1")
			after.del(t, aRT)
			if got, err := portsDial(t, remote, "tcp", uplinkNode4, 8081, 0); err == nil {
				t.Errorf("a's port still answers after its DEL under %s: %q", order[1], got)
			}
			if dump := masqFirewallDump(t, node.Netns); strings.Contains(dump, aRT.ContainerID) {
				t.Errorf("the node's firewall still names %s after its DEL:\n%s", aRT.ContainerID, dump)
			}
			portsExpect(t, remote, "tcp", uplinkNode4, 8082, "b", uplinkRemote4, "b after a's DEL")
			// The old backend's rule set went with a's mapping; b's, with
			// its own 127.0.0.0/8 drop, still needs route_localnet.
			portsExpect(t, node.Netns, "tcp", "127.0.0.1", 8082, "b", "", "b from the node's 127.0.0.1 after a's DEL")
			after.del(t, bRT)
			if dump := masqFirewallDump(t, node.Netns); strings.Contains(dump, before.name) || strings.Contains(dump, bRT.ContainerID) {
				t.Errorf("the node's firewall still names the network after its last DEL:\n%s", dump)
			}
		})
	}
}

// TestPortsDropPolicyLater: a FORWARD DROP policy set after a port was
// published (Docker starting after the network, say) cuts it off until the
// network's next ADD, which puts back what it needs even when that ADD
// publishes nothing itself, with each backend.
func TestPortsDropPolicyLater(t *testing.T) {
	eachBackendUplink(t, func(t *testing.T, backend string, node *Node, remote *Netns) {
		net := newPortsNet(t, node, portsNetConf{backend: backend, subnets: portsSubnets})
		web := NewNetns(t, "web")
		portsServe(t, web, "web", 80)
		net.add(t, portsRT(web, portMap{HostPort: 8080, ContainerPort: 80, Protocol: "tcp"}))
		portsExpect(t, remote, "tcp", uplinkNode4, 8080, "web", uplinkRemote4, "remote, before the DROP policy")

		node.MustRun(t, "iptables", "-P", "FORWARD", "DROP")
		node.MustRun(t, "ip6tables", "-P", "FORWARD", "DROP")
		neigh := NewNetns(t, "neigh")
		net.add(t, portsRT(neigh))
		portsExpect(t, remote, "tcp", uplinkNode4, 8080, "web", uplinkRemote4, "remote over IPv4, after the next ADD")
		portsExpect(t, remote, "tcp", uplinkNode6, 8080, "web", uplinkRemote6, "remote over IPv6, after the next ADD")
	})
}

// TestPortsSharedBridge: two networks name one bridge (two configurations
// without a "bridge" key share cni0), in two ranges of one subnet (one
// IPv4 gateway: two would be refused, as by the reference), and each
// publishes a port. The last
// DEL of one takes its rule set away but not route_localnet, which the
// other's mappings still need to be reached at 127.0.0.1 (beside that
// one's own drop of packets to 127.0.0.0/8); the other's last DEL turns it
// off, with each backend.
func TestPortsSharedBridge(t *testing.T) {
	eachBackendUplink(t, func(t *testing.T, backend string, node *Node, remote *Netns) {
		a := newPortsNet(t, node, portsNetConf{backend: backend, subnets: []string{"10.23.0.0/24 10.23.0.10-10.23.0.99"}})
		b := newPortsNet(t, node, portsNetConf{backend: backend, subnets: []string{"10.23.0.0/24 10.23.0.100-10.23.0.199"}, bridge: a.bridge})
		aRT := portsWeb(t, "a", 8081)
		bRT := portsWeb(t, "b", 8082)
		a.add(t, aRT)
		b.add(t, bRT)
		portsExpect(t, node.Netns, "tcp", "127.0.0.1", 8081, "a", "", "a from the node's 127.0.0.1")
		portsExpect(t, node.Netns, "tcp", "127.0.0.1", 8082, "b", "", "b from the node's 127.0.0.1")
		localnet := func() string {
			return strings.TrimSpace(node.MustRun(t, "sysctl", "-n", "net.ipv4.conf."+a.bridge+".route_localnet"))
		}
		a.del(t, aRT)
		if got := localnet(); got != "1" {
			t.Errorf("route_localnet on %s after the last DEL of %s: %s; %s still publishes there, want 1", a.bridge, a.name, got, b.name)
		}
		portsExpect(t, node.Netns, "tcp", "127.0.0.1", 8082, "b", "", "b from the node's 127.0.0.1 after a's DEL")
		portsExpect(t, remote, "tcp", uplinkNode4, 8082, "b", uplinkRemote4, "b from the remote after a's DEL")
		b.del(t, bRT)
		if got := localnet(); got != "0" {
			t.Errorf("route_localnet on %s after the last rule set on it went: %s, want 0", a.bridge, got)
		}
	})
}
