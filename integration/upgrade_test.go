package integration

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/containernetworking/cni/libcni"
	"github.com/containernetworking/cni/pkg/types"
)

// TestUpgradeFromReference: containers attached by the REFERENCE bridge
// and host-local (ipMasq, ports published by a chained reference portmap),
// then the two binaries replaced by ours, the portmap kept. Our CHECK
// passes for the old containers, their ports and masquerade keep working,
// and a new container's too; DEL of an old one (not the last) and GC of a
// gone one take their rules with them, and the last DEL leaves nothing of
// the network: no rule of ours, no per-container rule of the reference, no
// port mapping, no lease (as the reference alone would leave).
func TestUpgradeFromReference(t *testing.T) {
	ref := refBinDir(t)
	eachBackendUplink(t, func(t *testing.T, backend string, node *Node, remote *Netns) {
		port := masqPeerServer(t, remote)
		net := newPortsNet(t, node, portsNetConf{backend: backend, subnets: masqSubnets, chainRef: true, refDir: ref})
		refNet := *net
		refNet.binDir = ref
		var old []*Netns
		var oldRTs []*libcni.RuntimeConf
		for i := range 3 {
			c := NewNetns(t, fmt.Sprintf("old%d", i))
			if i != 1 {
				// (old1 goes without DEL below: a listening socket would
				// keep its namespace, and its veth, alive.)
				portsServe(t, c, fmt.Sprintf("old%d", i), 80)
			}
			rt := portsRT(c, portMap{HostPort: 8080 + i, ContainerPort: 80, Protocol: "tcp"})
			refNet.add(t, rt)
			old, oldRTs = append(old, c), append(oldRTs, rt)
		}

		// The binaries are replaced.
		for i, rt := range oldRTs {
			if err := net.check(t, rt); err != nil {
				t.Errorf("CHECK of old%d, attached by the reference: %v", i, err)
			}
		}
		c := NewNetns(t, "new")
		portsServe(t, c, "new", 80)
		newRT := portsRT(c, portMap{HostPort: 9080, ContainerPort: 80, Protocol: "tcp"})
		net.add(t, newRT)
		for i, o := range old {
			if i == 1 {
				continue
			}
			portsExpect(t, remote, "tcp", uplinkNode4, 8080+i, fmt.Sprintf("old%d", i), uplinkRemote4, "published port of an old container")
			masqExpectPeer(t, o, uplinkRemote6, port, uplinkNode6, fmt.Sprintf("old%d, masqueraded", i))
		}
		portsExpect(t, remote, "tcp", uplinkNode6, 9080, "new", uplinkRemote6, "published port of the new container")
		masqExpectPeer(t, c, uplinkRemote4, port, uplinkNode4, "the new container, masqueraded")

		// DEL of old0, old1 gone without DEL and collected.
		net.del(t, oldRTs[0])
		old[1].Delete()
		net.gc(t, types.GCAttachment{ContainerID: oldRTs[2].ContainerID, IfName: "eth0"},
			types.GCAttachment{ContainerID: newRT.ContainerID, IfName: "eth0"})
		dump := masqFirewallDump(t, node.Netns)
		if strings.Contains(dump, oldRTs[0].ContainerID) {
			t.Errorf("rules of old0 left after its DEL:\n%s", dump)
		}
		if !strings.Contains(dump, oldRTs[2].ContainerID) {
			t.Errorf("rules of old2 gone, though it is attached:\n%s", dump)
		}
		masqExpectPeer(t, old[2], uplinkRemote4, port, uplinkNode4, "old2 after the DEL and GC of others")

		net.del(t, oldRTs[1]) // the runtime's late DEL of the gone one
		net.del(t, oldRTs[2])
		net.del(t, newRT)
		dump = masqFirewallDump(t, node.Netns)
		for _, s := range []string{net.name, "FLATCNI", "flatcni", "dnat to", "--to-destination"} {
			if strings.Contains(dump, s) {
				t.Errorf("the node's firewall still holds %q after the last DEL:\n%s", s, dump)
			}
		}
		if chains := masqLegacyChain.FindAllString(dump, -1); len(chains) > 0 {
			t.Errorf("reference masquerade chains left: %v", chains)
		}
		if got := leaseFiles(t, filepath.Join(node.LeaseDir(), net.name)); len(got) != 0 {
			t.Errorf("leases left: %v", got)
		}
	})
}
