package integration

import (
	"testing"
)

// twoNodeSite is one node of the two-node cluster: its underlay addresses
// and its pod subnets (one per family).
type twoNodeSite struct {
	underlay4, underlay6 string
	pods4, pods6         string
}

// Cluster 10.244.0.0/16 and fd44::/56, one pod subnet per node; the underlay
// 192.0.2.0/24 and 2001:db8:1::/64 is a bridge in a namespace of its own.
var (
	twoNodeCluster = []string{"10.244.0.0/16", "fd44::/56"}
	twoNodeA       = twoNodeSite{"192.0.2.1", "2001:db8:1::1", "10.244.1.0/24", "fd44:0:0:1::/64"}
	twoNodeB       = twoNodeSite{"192.0.2.2", "2001:db8:1::2", "10.244.2.0/24", "fd44:0:0:2::/64"}
	twoNodeRemote4 = "192.0.2.100"
	twoNodeRemote6 = "2001:db8:1::100"
)

// twoNodeUnderlay is a namespace holding a bridge that joins the nodes and a remote.
type twoNodeUnderlay struct {
	ns     *Netns
	bridge string
}

func newTwoNodeUnderlay(t testing.TB) *twoNodeUnderlay {
	t.Helper()
	u := &twoNodeUnderlay{ns: NewNetns(t, "underlay"), bridge: "ul0"}
	u.ns.MustRun(t, "ip", "link", "add", u.bridge, "type", "bridge")
	u.ns.MustRun(t, "ip", "link", "set", u.bridge, "up")
	return u
}

// plug connects ns to the underlay with a veth "ul0" carrying the addresses.
func (u *twoNodeUnderlay) plug(t testing.TB, ns *Netns, addr4, addr6 string) {
	t.Helper()
	port := "p" + uniq()
	for _, c := range [][]string{
		{"ip", "-n", u.ns.Name, "link", "add", port, "type", "veth", "peer", "name", "ul0", "netns", ns.Name},
		{"ip", "-n", u.ns.Name, "link", "set", port, "master", u.bridge, "up"},
		{"ip", "-n", ns.Name, "addr", "add", addr4 + "/24", "dev", "ul0"},
		{"ip", "-n", ns.Name, "addr", "add", addr6 + "/64", "dev", "ul0", "nodad"},
		{"ip", "-n", ns.Name, "link", "set", "ul0", "up"},
	} {
		masqRun(t, c...)
	}
}

// TestTwoNodes runs the plugin on two nodes of one cluster, as
// docs/cluster.md describes: one pod subnet per node, nonMasqueradeCIDRs set
// to the cluster CIDRs, routes between the nodes for each other's pod
// subnet. Pod to pod across nodes keeps the pod's own address; pod to a
// remote on the underlay is masqueraded to the pod's node's address. Both
// backends, IPv4 and IPv6, FORWARD policy ACCEPT, and DROP with the
// operator's accept rule for traffic towards the cluster CIDRs.
func TestTwoNodes(t *testing.T) {
	requireRoot(t)
	for _, tc := range []struct{ backend, policy string }{
		{"iptables", "ACCEPT"}, {"nftables", "ACCEPT"}, {"iptables", "DROP"}, {"nftables", "DROP"},
	} {
		backend := tc.backend
		t.Run(backend+"/FORWARD-"+tc.policy, func(t *testing.T) {
			ul := newTwoNodeUnderlay(t)
			remote := NewNetns(t, "remote")
			ul.plug(t, remote, twoNodeRemote4, twoNodeRemote6)
			remotePort := masqPeerServer(t, remote)

			nodeA, nodeB := NewNode(t), NewNode(t)
			ul.plug(t, nodeA.Netns, twoNodeA.underlay4, twoNodeA.underlay6)
			ul.plug(t, nodeB.Netns, twoNodeB.underlay4, twoNodeB.underlay6)
			for _, r := range []struct {
				node *Node
				peer twoNodeSite
			}{{nodeA, twoNodeB}, {nodeB, twoNodeA}} {
				r.node.MustRun(t, "ip", "route", "add", r.peer.pods4, "via", r.peer.underlay4)
				r.node.MustRun(t, "ip", "-6", "route", "add", r.peer.pods6, "via", r.peer.underlay6)
			}

			if tc.policy == "DROP" {
				// The plugin accepts what leaves its bridge and the replies;
				// connections from other nodes' pods are the cluster
				// operator's to accept, as docs/cluster.md says.
				for _, n := range []*Node{nodeA, nodeB} {
					n.MustRun(t, "iptables", "-P", "FORWARD", "DROP")
					n.MustRun(t, "ip6tables", "-P", "FORWARD", "DROP")
					n.MustRun(t, "iptables", "-A", "FORWARD", "-d", twoNodeCluster[0], "-j", "ACCEPT")
					n.MustRun(t, "ip6tables", "-A", "FORWARD", "-d", twoNodeCluster[1], "-j", "ACCEPT")
				}
			}

			// The same network (name and all) on both nodes, but for the
			// node's own pod subnet.
			name := "cluster-" + uniq()
			netA := newMasqNet(t, nodeA, masqNetConf{name: name, backend: backend, subnets: []string{twoNodeA.pods4, twoNodeA.pods6}, nonMasq: twoNodeCluster})
			netB := newMasqNet(t, nodeB, masqNetConf{name: name, backend: backend, subnets: []string{twoNodeB.pods4, twoNodeB.pods6}, nonMasq: twoNodeCluster})
			podA, rtA := masqContainer(t, "poda")
			resA := netA.add(t, "", rtA)
			t.Cleanup(func() { netA.del(t, rtA) })
			podB, rtB := masqContainer(t, "podb")
			resB := netB.add(t, "", rtB)
			t.Cleanup(func() { netB.del(t, rtB) })
			podBPort := masqPeerServer(t, podB)
			podAPort := masqPeerServer(t, podA)

			for _, fam := range []int{4, 6} {
				masqExpectPeer(t, podA, masqResultIP(t, resB, fam), podBPort, masqResultIP(t, resA, fam), "pod A to pod B across nodes")
				masqExpectPeer(t, podB, masqResultIP(t, resA, fam), podAPort, masqResultIP(t, resB, fam), "pod B to pod A across nodes")
			}
			masqExpectPeer(t, podA, twoNodeRemote4, remotePort, twoNodeA.underlay4, "pod A to the remote (IPv4)")
			masqExpectPeer(t, podA, twoNodeRemote6, remotePort, twoNodeA.underlay6, "pod A to the remote (IPv6)")
			masqExpectPeer(t, podB, twoNodeRemote4, remotePort, twoNodeB.underlay4, "pod B to the remote (IPv4)")
			masqExpectPeer(t, podB, twoNodeRemote6, remotePort, twoNodeB.underlay6, "pod B to the remote (IPv6)")
		})
	}
}
