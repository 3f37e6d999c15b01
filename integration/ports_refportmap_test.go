package integration

import (
	"crypto/sha512"
	"encoding/hex"
	"os/exec"
	"strings"
	"testing"

	"github.com/containernetworking/cni/pkg/types"
)

// TestPortsReferencePortmapLeftovers: containers attached through a
// conflist of our bridge and the reference portmap, which publishes their
// ports; the conflist is then switched to our bridge publishing them
// itself (docs/migration.md). DEL through the new conflist removes
// portmap's rules of the container (its iptables chain and jump, or its
// nftables rules), so that a new container publishing the same host port
// is reached; GC does the same for a container gone without DEL, with
// portmap's iptables backend (its nftables rules name no network: GC
// leaves them, see removeReferencePortmap). A container with the same ID
// on another network, whose conflist still chains portmap, keeps its rules
// and its port throughout.
func TestPortsReferencePortmapLeftovers(t *testing.T) {
	requireRoot(t)
	ref := refBinDir(t)
	if _, err := exec.LookPath(ref + "/portmap"); err != nil {
		t.Skipf("reference portmap not built in %s (make reference)", ref)
	}
	eachBackendUplink(t, func(t *testing.T, backend string, node *Node, remote *Netns) {
		chained := newPortsNet(t, node, portsNetConf{backend: backend, subnets: portsSubnets, chainRef: true, refDir: ref})
		other := newPortsNet(t, node, portsNetConf{backend: backend, subnets: portsSubnets2, chainRef: true, refDir: ref})
		oldRT := portsWeb(t, "old", 8080)
		chained.add(t, oldRT)
		goneNS := NewNetns(t, "gone")
		portsServe(t, goneNS, "gone", 80)
		goneRT := portsRT(goneNS, portMap{HostPort: 8081, ContainerPort: 80, Protocol: "tcp"})
		chained.add(t, goneRT)
		// Same container ID as old, on the other network.
		otherRT := portsWeb(t, "other", 8090)
		otherRT.ContainerID = oldRT.ContainerID
		other.add(t, otherRT)
		portsExpect(t, remote, "tcp", uplinkNode4, 8080, "old", "", "old through the reference portmap")
		portsExpect(t, remote, "tcp", uplinkNode4, 8081, "gone", "", "gone through the reference portmap")
		dump := masqFirewallDump(t, node.Netns)
		for _, id := range []string{oldRT.ContainerID, goneRT.ContainerID} {
			if !strings.Contains(dump, id) {
				t.Fatalf("the reference portmap left no rule naming %s:\n%s", id, dump)
			}
		}
		otherRules := strings.Count(dump, otherRT.ContainerID) / 2 // old's and other's

		// The conflist switched in place: same network, our bridge with
		// the capability, no portmap.
		switched := newPortsNet(t, node, portsNetConf{backend: backend, subnets: portsSubnets, name: chained.name, bridge: chained.bridge})
		switched.del(t, oldRT)
		dump = masqFirewallDump(t, node.Netns)
		if backend == "iptables" {
			if c := refPortmapChain(chained.name, oldRT.ContainerID); strings.Contains(dump, c) {
				t.Errorf("DEL left the reference portmap's chain %s of %s:\n%s", c, oldRT.ContainerID, dump)
			}
		}
		if got := strings.Count(dump, oldRT.ContainerID); got != otherRules {
			t.Errorf("after DEL: %d rules name %s, want the other network's %d:\n%s", got, oldRT.ContainerID, otherRules, dump)
		}
		newRT := portsWeb(t, "new", 8080)
		switched.add(t, newRT)
		portsExpect(t, remote, "tcp", uplinkNode4, 8080, "new", "", "a new container publishing old's port after its DEL")
		portsExpect(t, remote, "tcp", uplinkNode4, 8090, "other", "", "the other network's container after DEL")

		// gone vanishes without DEL; GC of the switched network.
		goneNS.Delete()
		switched.gc(t, types.GCAttachment{ContainerID: newRT.ContainerID, IfName: newRT.IfName})
		dump = masqFirewallDump(t, node.Netns)
		if left := strings.Contains(dump, goneRT.ContainerID); left != (backend == "nftables") {
			t.Errorf("after GC, rules of the reference portmap's nftables backend naming %s: %t, want %t:\n%s", goneRT.ContainerID, left, backend == "nftables", dump)
		}
		if got := strings.Count(dump, otherRT.ContainerID); got != otherRules {
			t.Errorf("after GC: %d rules name %s, want the other network's %d:\n%s", got, otherRT.ContainerID, otherRules, dump)
		}
		new2RT := portsWeb(t, "new2", 8081)
		switched.add(t, new2RT)
		portsExpect(t, remote, "tcp", uplinkNode4, 8081, "new2", "", "a new container publishing gone's port after GC")
		portsExpect(t, remote, "tcp", uplinkNode4, 8080, "new", "", "the valid container after GC")
		portsExpect(t, remote, "tcp", uplinkNode4, 8090, "other", "", "the other network's container after GC")
	})
}

// refPortmapChain is the name of the reference portmap's iptables chain of
// a container: "CNI-DN-" and the start of the SHA-512 of network and ID.
func refPortmapChain(network, containerID string) string {
	sum := sha512.Sum512([]byte(network + containerID))
	return ("CNI-DN-" + hex.EncodeToString(sum[:]))[:28]
}
