package integration

import (
	"strings"
	"testing"

	"github.com/containernetworking/cni/pkg/types"
)

// TestMasqTurnedOff: a network's configuration is edited, while a
// container is attached, so that it asks for no rules any more (ipMasq
// turned off; or the isolation key removed from a network without
// ipMasq). The next ADD, DEL or GC under the new configuration takes the
// network's rules away in either backend: a container added then is not
// masqueraded (the remote, which routes back to the network, sees its own
// address), nor is the one attached before (the rules were the network's,
// and apply its configuration in force), and no rule of the network stays
// for ever (the last DEL and GC only remove the rules of a network whose
// configuration asks for them).
func TestMasqTurnedOff(t *testing.T) {
	cases := []struct {
		name          string
		before, after masqNetConf
	}{
		{"ipMasq", masqNetConf{subnets: masqSubnets}, masqNetConf{subnets: masqSubnets, noMasq: true}},
		{"isolation", masqNetConf{subnets: masqSubnets, noMasq: true, extra: map[string]any{"isolation": "isolated"}},
			masqNetConf{subnets: masqSubnets, noMasq: true}},
	}
	requireRoot(t)
	for _, backend := range []string{"iptables", "nftables"} {
		for _, tc := range cases {
			for _, verb := range []string{"ADD", "DEL", "GC"} {
				t.Run(backend+"/"+tc.name+"/"+verb, func(t *testing.T) {
					node, remote := masqUplinkNode(t)
					// The remote routes back to the network: a connection
					// that is not masqueraded is seen from the container's
					// own address.
					remote.MustRun(t, "ip", "route", "add", "10.22.0.0/24", "via", uplinkNode4)
					remote.MustRun(t, "ip", "-6", "route", "add", "fd22::/64", "via", uplinkNode6)
					port := masqPeerServer(t, remote)
					tc.before.backend, tc.after.backend = backend, backend
					before := newMasqNet(t, node, tc.before)
					tc.after.name = before.name
					tc.after.extra = map[string]any{"bridge": before.bridge}
					after := newMasqNet(t, node, tc.after)
					old, oldRT := masqContainer(t, "old")
					oldRes := before.add(t, "", oldRT)
					t.Cleanup(func() { after.del(t, oldRT) })
					if dump := masqFirewallDump(t, node.Netns); !strings.Contains(dump, before.name) {
						t.Fatalf("the network has no rules before the change:\n%s", dump)
					}

					switch verb {
					case "ADD":
						c, rt := masqContainer(t, "new")
						res := after.add(t, "", rt)
						t.Cleanup(func() { after.del(t, rt) })
						masqRequireNoTrace(t, node.Netns, before.name)
						for _, fam := range []int{4, 6} {
							dst := map[int]string{4: uplinkRemote4, 6: uplinkRemote6}[fam]
							masqExpectPeer(t, c, dst, port, masqResultIP(t, res, fam), "container added after the change")
							masqExpectPeer(t, old, dst, port, masqResultIP(t, oldRes, fam), "container attached before the change")
						}
					case "DEL":
						after.del(t, oldRT)
						masqRequireNoTrace(t, node.Netns, before.name)
					case "GC":
						after.gc(t, types.GCAttachment{ContainerID: oldRT.ContainerID, IfName: oldRT.IfName})
						masqRequireNoTrace(t, node.Netns, before.name)
						if got := after.leases(t); len(got) != 2 {
							t.Errorf("leases after GC keeping the container: %v, want its two", got)
						}
					}
				})
			}
		}
	}
}
