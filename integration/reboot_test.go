package integration

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"

	"github.com/containernetworking/cni/libcni"
	"github.com/containernetworking/cni/pkg/types"
)

// TestReboot: a node with containers (masquerade, published ports, MAC
// spoof checks) reboots: its links and rules are gone, and so is what the
// plugins keep for it in /run/flatcni (a tmpfs); the leases stay. Then the
// runtime's GC keeps the one container it restarts under the same ID, DEL
// of a lost one, the ADD of that one in a new namespace and of a new
// container all succeed: the restarted container gets its addresses back,
// the new one others (no address is handed out twice), ports and
// masquerade work, CHECK passes, and the last DELs leave nothing.
func TestReboot(t *testing.T) {
	eachBackendUplink(t, func(t *testing.T, backend string, node *Node, remote *Netns) {
		port := masqPeerServer(t, remote)
		net := newPortsNet(t, node, portsNetConf{backend: backend, subnets: masqSubnets,
			extra: map[string]any{"macspoofchk": true}})
		var rts []*libcni.RuntimeConf
		held := map[string]string{} // address: container ID
		for i := range 3 {
			c := NewNetns(t, "before")
			rt := portsRT(c, portMap{HostPort: 8080 + i, ContainerPort: 80, Protocol: "tcp"})
			r, err := net.tryAdd(t, rt)
			if err != nil {
				t.Fatal(err)
			}
			for _, fam := range []int{4, 6} {
				held[portsResultIP(t, r, fam)] = rt.ContainerID
			}
			rts = append(rts, rt)
		}

		// The reboot.
		for _, rt := range rts {
			if out, err := masqExec("ip", "netns", "del", filepath.Base(rt.NetNS)); err != nil {
				t.Fatalf("%v: %s", err, out)
			}
		}
		rebootNode(t, node, net.name)

		// The runtime restarts the first container (same ID, new netns),
		// collects, deletes the second, and starts a new one.
		again := NewNetns(t, "again")
		portsServe(t, again, "again", 80)
		againRT := portsRT(again, portMap{HostPort: 8080, ContainerPort: 80, Protocol: "tcp"})
		againRT.ContainerID = rts[0].ContainerID
		net.gc(t, types.GCAttachment{ContainerID: againRT.ContainerID, IfName: againRT.IfName})
		net.del(t, rts[1])
		r := net.add(t, againRT)
		for _, fam := range []int{4, 6} {
			if ip := portsResultIP(t, r, fam); held[ip] != againRT.ContainerID {
				t.Errorf("the restarted container got %s, held before by %q; want its own address back", ip, held[ip])
			}
		}
		fresh := NewNetns(t, "fresh")
		portsServe(t, fresh, "fresh", 80)
		freshRT := portsRT(fresh, portMap{HostPort: 8082, ContainerPort: 80, Protocol: "tcp"})
		rf := net.add(t, freshRT)
		for _, fam := range []int{4, 6} {
			if a, b := portsResultIP(t, rf, fam), portsResultIP(t, r, fam); a == b {
				t.Errorf("the new container got %s, the restarted one's address", a)
			}
		}
		for _, rt := range []*libcni.RuntimeConf{againRT, freshRT} {
			if err := net.check(t, rt); err != nil {
				t.Errorf("CHECK %s after the reboot: %v", rt.ContainerID, err)
			}
		}
		portsExpect(t, remote, "tcp", uplinkNode4, 8080, "again", uplinkRemote4, "port of the restarted container")
		portsExpect(t, remote, "tcp", uplinkNode6, 8082, "fresh", uplinkRemote6, "port of the new container")
		masqExpectPeer(t, again, uplinkRemote4, port, uplinkNode4, "the restarted container, masqueraded")
		masqExpectPeer(t, fresh, uplinkRemote6, port, uplinkNode6, "the new container, masqueraded")

		net.del(t, rts[2]) // lost, collected by the GC already
		net.del(t, againRT)
		net.del(t, freshRT)
		// The MAC spoof checks' table goes with the last check (design.md).
		if out, err := node.Run("nft", "list", "table", "bridge", "flatcni-macspoof"); err == nil {
			t.Errorf("table bridge flatcni-macspoof left after the last DEL:\n%s", out)
		}
		masqRequireNoTrace(t, node.Netns, net.name)
		if got := leaseFiles(t, filepath.Join(node.LeaseDir(), net.name)); len(got) != 0 {
			t.Errorf("leases left: %v", got)
		}
	})
}

// rebootNode takes from the node what a reboot takes: its links but the
// uplink, its rules, and what the plugins keep for it in /run/flatcni (the
// network's lock, the ports claims index of the node's namespace).
func rebootNode(t testing.TB, node *Node, network string) {
	t.Helper()
	// (Host veths whose peer's namespace was deleted may be going by
	// themselves.)
	if ok, left := masqWaitFor(func() (bool, string) {
		var left []string
		for _, l := range strings.Split(node.MustRun(t, "ip", "-o", "link", "show"), "\n") {
			f := strings.Fields(l)
			if len(f) < 2 {
				continue
			}
			name, _, _ := strings.Cut(strings.TrimSuffix(f[1], ":"), "@")
			if !slices.Contains([]string{"lo", "up0"}, name) {
				_, _ = node.Run("ip", "link", "del", name)
				left = append(left, name)
			}
		}
		return len(left) == 0, strings.Join(left, " ")
	}); !ok {
		t.Fatalf("links left in the node: %s", left)
	}
	for _, cmd := range []string{"iptables", "ip6tables"} {
		for _, table := range []string{"raw", "mangle", "nat", "filter"} {
			node.MustRun(t, cmd, "-t", table, "-F")
			node.MustRun(t, cmd, "-t", table, "-X")
		}
	}
	node.MustRun(t, "nft", "flush", "ruleset")
	var st syscall.Stat_t
	if err := syscall.Stat(node.Path, &st); err != nil {
		t.Fatal(err)
	}
	index, _ := filepath.Glob(fmt.Sprintf("/run/flatcni/ports-index.*.%d-%d", st.Dev, st.Ino))
	for _, p := range append(index, filepath.Join("/run/flatcni", "net-"+network+".lock"), filepath.Join("/run/flatcni", "net-"+network+".rules"), filepath.Join("/run/flatcni", "net-"+network+".ports")) {
		if err := os.RemoveAll(p); err != nil {
			t.Fatal(err)
		}
	}
}
