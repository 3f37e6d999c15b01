package integration

import (
	"regexp"
	"strings"
	"testing"

	"github.com/containernetworking/cni/pkg/types"
)

// masqLegacyChain matches the reference plugin's per-container masquerade
// chains in iptables-save output.
var masqLegacyChain = regexp.MustCompile(`CNI-[0-9a-f]{24}`)

// TestMasqReferenceLeftovers switches a node in place: containers were
// attached by the REFERENCE bridge plugin with ipMasq; two vanish without
// DEL. Our GC, run for the same network, removes the reference's
// per-container rules (iptables CNI-… chains and their POSTROUTING jumps, or
// its nftables rules) of the gone containers, keeps those of the live one,
// and removes them too once it is gone.
func TestMasqReferenceLeftovers(t *testing.T) {
	requireRoot(t)
	ref := refBinDir(t)
	for _, backend := range []string{"iptables", "nftables"} {
		t.Run(backend, func(t *testing.T) {
			node := NewNode(t)
			net := newMasqNet(t, node, masqNetConf{backend: backend, subnets: masqSubnets})
			live, liveRT := masqContainer(t, "live")
			net.add(t, ref, liveRT)
			var gone []*Netns
			var goneIDs []string
			for _, role := range []string{"gone0", "gone1"} {
				c, rt := masqContainer(t, role)
				net.add(t, ref, rt)
				gone = append(gone, c)
				goneIDs = append(goneIDs, rt.ContainerID)
			}
			before := masqFirewallDump(t, node.Netns)
			for _, id := range append(goneIDs, liveRT.ContainerID) {
				if !strings.Contains(before, id) {
					t.Fatalf("the reference plugin left no rule naming container %s:\n%s", id, before)
				}
			}
			if backend == "iptables" && len(masqLegacyChain.FindAllString(node.MustRun(t, "iptables-save", "-t", "nat"), -1)) == 0 {
				t.Fatalf("the reference plugin made no CNI- chain:\n%s", before)
			}
			for _, c := range gone {
				c.Delete()
			}

			net.gc(t, types.GCAttachment{ContainerID: liveRT.ContainerID, IfName: liveRT.IfName})
			after := masqFirewallDump(t, node.Netns)
			for _, id := range goneIDs {
				if strings.Contains(after, id) {
					t.Errorf("GC left the reference's rules of gone container %s:\n%s", id, after)
				}
			}
			if !strings.Contains(after, liveRT.ContainerID) {
				t.Errorf("GC removed the reference's rules of the live container %s:\n%s", liveRT.ContainerID, after)
			}
			if backend == "iptables" {
				masqRequireLegacyJumps(t, node)
			}
			if got := net.leases(t); len(got) != 2 {
				t.Errorf("leases after GC with the live attachment: %v, want the live container's two", got)
			}

			live.Delete()
			net.gc(t)
			masqRequireNoTrace(t, node.Netns, net.name)
			if backend == "iptables" {
				if chains := masqLegacyChain.FindAllString(node.MustRun(t, "iptables-save")+node.MustRun(t, "ip6tables-save"), -1); len(chains) > 0 {
					t.Errorf("reference chains left after GC: %v", chains)
				}
			}
			if got := net.leases(t); len(got) != 0 {
				t.Errorf("leases left after GC: %v", got)
			}
		})
	}
}

// masqRequireLegacyJumps fails when a reference CNI- chain is left
// without a POSTROUTING jump to it, or a jump without its chain.
func masqRequireLegacyJumps(t testing.TB, node *Node) {
	t.Helper()
	for _, cmd := range []string{"iptables-save", "ip6tables-save"} {
		dump := node.MustRun(t, cmd, "-t", "nat")
		chains, jumps := map[string]bool{}, map[string]bool{}
		for _, l := range strings.Split(dump, "\n") {
			if c, ok := strings.CutPrefix(l, ":"); ok && masqLegacyChain.MatchString(c) {
				chains[masqLegacyChain.FindString(c)] = true
			}
			if strings.HasPrefix(l, "-A POSTROUTING ") && masqLegacyChain.MatchString(l) {
				jumps[masqLegacyChain.FindString(l)] = true
			}
		}
		if len(chains) != len(jumps) || len(chains) == 0 {
			t.Errorf("%s: reference chains %v, POSTROUTING jumps to %v, want the live container's one:\n%s", cmd, chains, jumps, dump)
		}
	}
}

// TestMasqReferenceDel switches a node in place with a container still
// attached by the REFERENCE bridge plugin: the runtime's DEL now runs our
// plugin. Once the network's last container is deleted, nothing of the
// reference's rules for the network is left either.
func TestMasqReferenceDel(t *testing.T) {
	requireRoot(t)
	ref := refBinDir(t)
	for _, backend := range []string{"iptables", "nftables"} {
		t.Run(backend, func(t *testing.T) {
			node := NewNode(t)
			net := newMasqNet(t, node, masqNetConf{backend: backend, subnets: masqSubnets})
			_, refRT := masqContainer(t, "ref")
			net.add(t, ref, refRT)
			_, ourRT := masqContainer(t, "our")
			net.add(t, "", ourRT)

			net.del(t, refRT)
			net.del(t, ourRT)
			masqRequireNoTrace(t, node.Netns, net.name)
		})
	}
}

// TestMasqReferenceDelNotLast: on a node switched in place, our DEL of a
// container the REFERENCE attached, while others stay, removes that
// container's per-container masquerade rules (as the reference's DEL
// would): they would otherwise masquerade its released address, whoever
// gets it next and whatever the network's configuration says then, until
// the network's last DEL or a GC. The other reference container keeps its
// rules and its masquerade.
func TestMasqReferenceDelNotLast(t *testing.T) {
	ref := refBinDir(t)
	eachBackendUplink(t, func(t *testing.T, backend string, node *Node, remote *Netns) {
		port := masqPeerServer(t, remote)
		net := newMasqNet(t, node, masqNetConf{backend: backend, subnets: masqSubnets})
		_, goneRT := masqContainer(t, "gone")
		net.add(t, ref, goneRT)
		stay, stayRT := masqContainer(t, "stay")
		net.add(t, ref, stayRT)
		_, ourRT := masqContainer(t, "our")
		net.add(t, "", ourRT)

		net.del(t, goneRT)
		dump := masqFirewallDump(t, node.Netns)
		if strings.Contains(dump, goneRT.ContainerID) {
			t.Errorf("our DEL left the reference's rules of %s:\n%s", goneRT.ContainerID, dump)
		}
		if !strings.Contains(dump, stayRT.ContainerID) {
			t.Errorf("our DEL of %s removed the reference's rules of %s:\n%s", goneRT.ContainerID, stayRT.ContainerID, dump)
		}
		if backend == "iptables" {
			masqRequireLegacyJumps(t, node)
		}
		masqExpectPeer(t, stay, uplinkRemote4, port, uplinkNode4, "the other reference container, IPv4")
		masqExpectPeer(t, stay, uplinkRemote6, port, uplinkNode6, "the other reference container, IPv6")

		net.del(t, stayRT)
		net.del(t, ourRT)
		masqRequireNoTrace(t, node.Netns, net.name)
	})
}
