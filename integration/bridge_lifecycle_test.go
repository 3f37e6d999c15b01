package integration

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/containernetworking/cni/libcni"
	"github.com/containernetworking/cni/pkg/types"
)

// 50 containers added, then deleted, in sequence leave the node as it was
// after a first ADD+DEL (which made the bridge, kept like the reference's).
func TestBridgeManyContainersLeaveNoTrace(t *testing.T) {
	const count = 50
	n := NewNode(t)
	plugin := dualStackPlugin("br"+uniq(), n.LeaseDir())
	plugin["ipMasq"] = true
	plugin["ipMasqBackend"] = "nftables" // as the default, iptables-nft, but without a process per rule
	b := newBridgeNet(t, n, plugin)

	_, warm := container(t, "warm")
	b.MustAdd(t, warm)
	b.MustDel(t, warm)
	before := settled(n.Snapshot(t))

	rts := make([]*libcni.RuntimeConf, count)
	for i := range rts {
		_, rts[i] = container(t, fmt.Sprintf("c%d", i))
		b.MustAdd(t, rts[i])
		t.Cleanup(func() { _ = b.Del(t, rts[i]) })
	}
	if l := b.Leases(t); len(l) != 2*count {
		t.Errorf("want %d leases with %d containers, got %d", 2*count, count, len(l))
	}
	if v := hostVeths(t, n); len(v) != count {
		t.Errorf("want %d host veths, got %d", count, len(v))
	}
	for _, rt := range rts {
		b.MustDel(t, rt)
	}
	RequireSame(t, before, settled(n.Snapshot(t)))
}

// A failed ADD leaves no lease and no link, whether it fails before IPAM ADD
// (the container interface name is taken: what was there is untouched) or
// after IPAM ADD, the veth and the container's addresses (the bridge carries
// another network's IPv4 gateway, which this one's conflicts with).
func TestBridgeFailedAddLeavesNothing(t *testing.T) {
	for _, tc := range []struct {
		name    string
		prepare func(t *testing.T, n *Node, b *bridgeNet, c *Netns)
		errHas  string
	}{
		{
			name: "interface name taken",
			prepare: func(t *testing.T, n *Node, b *bridgeNet, c *Netns) {
				c.MustRun(t, "ip", "link", "add", "eth0", "type", "veth", "peer", "name", "eth0peer")
			},
			errHas: `"eth0"`,
		},
		{
			name: "gateway conflict after IPAM",
			prepare: func(t *testing.T, n *Node, b *bridgeNet, c *Netns) {
				// Another network on the same bridge left its gateway there.
				other := newBridgeNet(t, n, map[string]any{
					"type": "bridge", "bridge": b.bridge, "isGateway": true,
					"ipam": map[string]any{"type": "host-local", "dataDir": n.LeaseDir(), "subnet": "10.98.0.0/24"},
				})
				_, rt := container(t, "other")
				other.MustAdd(t, rt)
				other.MustDel(t, rt)
			},
			errHas: "10.98.0.1/24",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n := NewNode(t)
			plugin := dualStackPlugin("br"+uniq(), n.LeaseDir())
			plugin["ipMasq"] = true
			plugin["ipMasqBackend"] = "nftables"
			b := newBridgeNet(t, n, plugin)
			c, rt := container(t, "c")
			tc.prepare(t, n, b, c)
			before := settled(n.Snapshot(t))
			contBefore := c.MustRun(t, "ip", "-o", "link", "show")

			_, err := b.Add(t, rt)
			if err == nil {
				b.MustDel(t, rt)
				t.Fatal("ADD succeeded")
			}
			t.Logf("ADD error: %v", err)
			if !strings.Contains(err.Error(), tc.errHas) {
				t.Errorf("error does not name %s: %v", tc.errHas, err)
			}
			RequireSame(t, before, settled(n.Snapshot(t)))
			if l := b.Leases(t); len(l) != 0 {
				t.Errorf("leases left: %v", l)
			}
			if got := c.MustRun(t, "ip", "-o", "link", "show"); got != contBefore {
				t.Errorf("container links changed:\nbefore:\n%s\nafter:\n%s", contBefore, got)
			}
		})
	}
}

// GC through libcni releases the leases (and host veth) of an attachment
// that is no longer valid and keeps the valid one's; STATUS succeeds.
func TestBridgeGCAndStatus(t *testing.T) {
	n := NewNode(t)
	b := newDualStack(t, n)

	if err := b.Status(t); err != nil {
		t.Fatalf("STATUS: %v", err)
	}
	_, keep := container(t, "keep")
	kept := b.MustAdd(t, keep)
	t.Cleanup(func() { _ = b.Del(t, keep) })

	// The gone attachment was added without libcni, so its result is not in
	// libcni's cache: only the plugins' GC can release it.
	gone, goneRT := container(t, "gone")
	conf := b.pluginConf(t, "1.1.0")
	if out, err := n.Exec(t, "bridge", "ADD", goneRT.ContainerID, gone.Path, goneRT.IfName, conf); err != nil {
		t.Fatalf("ADD: %v\n%s", err, out)
	}
	t.Cleanup(func() { _, _ = n.Exec(t, "bridge", "DEL", goneRT.ContainerID, gone.Path, goneRT.IfName, conf) })
	if l := b.Leases(t); len(l) != 4 {
		t.Fatalf("want 4 leases, got %v", l)
	}
	gone.Delete()
	// The kernel dismantles the deleted namespace, and with it the gone
	// attachment's veth pair, later on a work queue; GC runs once it has
	// (up to 10 s), as a runtime's GC comes long after the container died.
	for deadline := time.Now().Add(10 * time.Second); len(hostVeths(t, n)) > 1 && time.Now().Before(deadline); {
		time.Sleep(20 * time.Millisecond)
	}

	if err := b.GC(t, types.GCAttachment{ContainerID: keep.ContainerID, IfName: keep.IfName}); err != nil {
		t.Fatalf("GC: %v", err)
	}
	var want []string
	for _, ip := range kept.IPs {
		want = append(want, ip.Address.IP.String())
	}
	got := b.Leases(t)
	slices.Sort(want)
	slices.Sort(got)
	if !slices.Equal(got, want) {
		t.Errorf("leases after GC %v, want the kept attachment's %v", got, want)
	}
	if v := hostVeths(t, n); len(v) != 1 {
		t.Errorf("want only the kept attachment's host veth, got %v", v)
	}
	if err := b.Check(t, keep); err != nil {
		t.Errorf("CHECK of the kept attachment after GC: %v", err)
	}
	if err := b.Status(t); err != nil {
		t.Errorf("STATUS after GC: %v", err)
	}
}

// GC of an attachment that is not valid while its netns lives on (a
// container the runtime lost track of): its veth goes with its lease, so
// it keeps no address another container may get; the valid one is kept.
func TestBridgeGCRemovesStaleAttachment(t *testing.T) {
	n := NewNode(t)
	b := newDualStack(t, n)
	_, keep := container(t, "keep")
	b.MustAdd(t, keep)
	t.Cleanup(func() { _ = b.Del(t, keep) })
	stale, staleRT := container(t, "stale")
	conf := b.pluginConf(t, "1.1.0")
	if out, err := n.Exec(t, "bridge", "ADD", staleRT.ContainerID, stale.Path, staleRT.IfName, conf); err != nil {
		t.Fatalf("ADD: %v\n%s", err, out)
	}
	t.Cleanup(func() { _, _ = n.Exec(t, "bridge", "DEL", staleRT.ContainerID, stale.Path, staleRT.IfName, conf) })
	if err := b.GC(t, types.GCAttachment{ContainerID: keep.ContainerID, IfName: keep.IfName}); err != nil {
		t.Fatalf("GC: %v", err)
	}
	if out := stale.MustRun(t, "ip", "-o", "link", "show"); strings.Contains(out, staleRT.IfName+"@") {
		t.Errorf("the stale attachment's interface is still in its netns after GC:\n%s", out)
	}
	if v := hostVeths(t, n); len(v) != 1 {
		t.Errorf("want only the kept attachment's host veth, got %v", v)
	}
	if l := b.Leases(t); len(l) != 2 {
		t.Errorf("leases after GC %v, want the kept attachment's two", l)
	}
	if err := b.Check(t, keep); err != nil {
		t.Errorf("CHECK of the kept attachment after GC: %v", err)
	}
}

// settled removes from a state what the kernel changes on its own schedule
// around a plugin's work, not the plugin: IPv6 link-local addresses and
// routes (the bridge gets one the first time it has carrier) and the
// bridge's carrier itself (link flags NO-CARRIER and LOWER_UP, operational
// state, "linkdown" routes). Carrier follows the ports through the kernel's
// link watch, up to a second late, and a quick ADD+DEL may leave a portless
// bridge with carrier on or off.
func settled(s State) State {
	carrier := strings.NewReplacer("NO-CARRIER,", "", ",LOWER_UP", "", " state UP ", " state * ", " state DOWN ", " state * ", " linkdown", "")
	drop := func(text string) string {
		var keep []string
		for _, l := range strings.Split(text, "\n") {
			if !strings.Contains(l, "fe80:") {
				keep = append(keep, carrier.Replace(l))
			}
		}
		return strings.Join(keep, "\n")
	}
	s.Links, s.Addrs, s.Routes = carrier.Replace(s.Links), drop(s.Addrs), drop(s.Routes)
	return s
}
