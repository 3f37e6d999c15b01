package integration

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// TestPortsConflictAcrossBackends: a host port published by a network of
// one ipMasqBackend fails the ADD of a container of a network of the other
// backend (nftables first, then iptables first) with code 11 naming the
// port, the holder and its network, before anything of the second network
// is made; the port keeps answering from the holder. Another port, or the
// same port of another protocol, is published by the second network.
func TestPortsConflictAcrossBackends(t *testing.T) {
	requireRoot(t)
	for _, c := range []struct{ first, second string }{{"nftables", "iptables"}, {"iptables", "nftables"}} {
		t.Run(c.first+"-first", func(t *testing.T) {
			node, remote := masqUplinkNode(t)
			removeNodeIndex(t, node)
			a := newPortsNet(t, node, portsNetConf{backend: c.first, subnets: portsSubnets, name: "xpa-" + uniq()})
			b := newPortsNet(t, node, portsNetConf{backend: c.second, subnets: portsSubnets2, name: "xpb-" + uniq()})
			holder := NewNetns(t, "xholder")
			portsServe(t, holder, "holder", 80)
			holderRT := portsRT(holder, portMap{HostPort: 9090, ContainerPort: 80, Protocol: "tcp"}, portMap{HostPort: 9091, ContainerPort: 80, Protocol: "udp"})
			a.add(t, holderRT)

			for _, pm := range []portMap{
				{HostPort: 9090, ContainerPort: 80, Protocol: "tcp"},
				{HostPort: 9091, ContainerPort: 80, Protocol: "udp"},
				{HostPort: 9090, ContainerPort: 80, Protocol: "tcp", HostIP: uplinkNode4},
			} {
				ns := NewNetns(t, "xsecond")
				rt := portsRT(ns, pm)
				_, err := b.tryAdd(t, rt)
				if err == nil {
					t.Errorf("ADD of %+v to %s (%s) succeeded; want a conflict with %s on %s (%s)", pm, b.name, c.second, holderRT.ContainerID, a.name, c.first)
					_ = b.tryDel(t, rt)
					continue
				}
				// Nothing of the second network was made.
				refusedForConflict(t, node, ns, rt, err, b.bridge, fmt.Sprintf(":%d/%s", pm.HostPort, pm.Protocol), holderRT.ContainerID, a.name, c.first)
				for _, cmd := range [][]string{{"nft", "list", "ruleset"}, {"iptables-save"}, {"ip6tables-save"}} {
					if out := node.MustRun(t, cmd...); strings.Contains(out, b.name) {
						t.Errorf("the failed ADD left rules of %s (%s):\n%s", b.name, cmd[0], out)
					}
				}
				if left, _ := filepath.Glob("/run/flatcni/net-" + b.name + ".*"); len(left) != 0 {
					t.Errorf("the failed ADD left files in /run/flatcni: %v", left)
				}
			}
			portsExpect(t, remote, "tcp", uplinkNode4, 9090, "holder", "", "the held port after the refused ADDs")

			// Another port, and the held port of another protocol.
			ok := NewNetns(t, "xok")
			portsServe(t, ok, "ok", 80)
			b.add(t, portsRT(ok, portMap{HostPort: 9092, ContainerPort: 80, Protocol: "tcp"}, portMap{HostPort: 9090, ContainerPort: 80, Protocol: "udp"}))
			portsExpect(t, remote, "tcp", uplinkNode4, 9092, "ok", "", "another port of the second network")
			portsExpect(t, remote, "udp", uplinkNode4, 9090, "ok", "", "the held port's other protocol, of the second network")
			portsExpect(t, remote, "tcp", uplinkNode4, 9090, "holder", "", "the held port")
		})
	}
}

// removeNodeIndex removes the node's ports claims indexes in /run/flatcni
// when the test ends (TestMain would, once the namespace is gone).
func removeNodeIndex(t *testing.T, node *Node) {
	t.Helper()
	var st syscall.Stat_t
	if err := syscall.Stat(node.Path, &st); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		index, _ := filepath.Glob(fmt.Sprintf("/run/flatcni/ports-index.*.%d-%d", st.Dev, st.Ino))
		for _, p := range index {
			if err := os.RemoveAll(p); err != nil {
				t.Error(err)
			}
		}
	})
}
