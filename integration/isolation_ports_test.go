package integration

import (
	"context"
	"testing"
)

// TestIsolationPublishedPorts: ports published with the bridge's own port
// publishing (not hand-written DNAT) stay reachable from networks that are
// isolated from the publishing one, while its containers' own addresses
// stay blocked; the node's other networks and the remote reach them too.
func TestIsolationPublishedPorts(t *testing.T) {
	eachBackendUplink(t, func(t *testing.T, backend string, node *Node, remote *Netns) {
		publishing := func(isolation string) map[string]any {
			return map[string]any{"isolation": isolation, "capabilities": map[string]bool{"portMappings": true}}
		}
		a := newIsoNet(t, node, backend, "10.33.1.0/24", publishing("isolated"))
		b := newIsoNet(t, node, backend, "10.33.2.0/24", map[string]any{"isolation": "isolated"})
		s := newIsoNet(t, node, backend, "10.33.4.0/24", publishing("strict"))
		a1 := a.attachPublishing(t, "a1", 18181)
		b1 := b.attach(t, "b1")
		s1 := s.attachPublishing(t, "s1", 18184)

		isoBlocked(t, b1.ns, a1.ip, a1.port, "isolated B to isolated A's own address")
		isoBlocked(t, b1.ns, s1.ip, s1.port, "isolated B to strict S's own address")
		isoReach(t, b1.ns, uplinkNode4, 18181, "isolated B to the port A publishes")
		isoReach(t, b1.ns, uplinkNode4, 18184, "isolated B to the port strict S publishes")
		isoReach(t, s1.ns, uplinkNode4, 18181, "strict S to the port A publishes")
		isoReach(t, a1.ns, uplinkNode4, 18184, "isolated A to the port strict S publishes")
		isoReach(t, remote, uplinkNode4, 18181, "the remote to the port A publishes")
		isoReach(t, remote, uplinkNode4, 18184, "the remote to the port strict S publishes")
	})
}

// attachPublishing attaches a container whose server port is published on
// the node as hostPort (runtimeConfig.portMappings; the network declares
// the capability); detached at cleanup.
func (m *isoNet) attachPublishing(t testing.TB, role string, hostPort int) *isoCtr {
	t.Helper()
	ns, rt := masqContainer(t, role)
	port := masqPeerServer(t, ns)
	rt.CapabilityArgs = map[string]any{"portMappings": []portMap{{HostPort: hostPort, ContainerPort: port, Protocol: "tcp"}}}
	res := m.add(t, "", rt)
	t.Cleanup(func() {
		_ = m.node.Do(t, func() error { return m.cni("", m.cache).DelNetworkList(context.Background(), m.list, rt) })
	})
	return &isoCtr{ns: ns, rt: rt, ip: masqResultIP(t, res, 4), port: port}
}

// TestICCOffPublishedPorts: with icc off and br_netfilter calling the
// firewall in the node (as on container hosts), a container's published
// port is reached from a remote host and from another network, while the
// containers of its own network reach neither each other's addresses nor
// each other's published ports: the node bridges their DNAT'd packets port
// to port, and the port isolation flag drops them (docs/isolation.md).
func TestICCOffPublishedPorts(t *testing.T) {
	eachBackendUplink(t, func(t *testing.T, backend string, node *Node, remote *Netns) {
		for _, k := range []string{"net.bridge.bridge-nf-call-iptables", "net.bridge.bridge-nf-call-ip6tables"} {
			if out, err := node.Run("sysctl", "-qw", k+"=1"); err != nil {
				t.Skipf("no br_netfilter here (%s: %v: %s)", k, err, out)
			}
		}
		icc := newIsoNet(t, node, backend, "10.33.5.0/24", map[string]any{"icc": false, "capabilities": map[string]bool{"portMappings": true}})
		other := newIsoNet(t, node, backend, "10.33.6.0/24", nil)
		p1 := icc.attachPublishing(t, "p1", 18191)
		n2 := icc.attach(t, "n2")
		o1 := other.attach(t, "o1")

		isoReach(t, remote, uplinkNode4, 18191, "the remote to the published port")
		isoReach(t, o1.ns, uplinkNode4, 18191, "another network's container to the published port")
		isoBlocked(t, n2.ns, p1.ip, p1.port, "icc off: neighbour to the publishing container's own address")
		isoTCPBlocked(t, n2.ns, uplinkNode4, 18191, "icc off, br_netfilter: neighbour to the published port")
	})
}
