package integration

import (
	"testing"
	"time"
)

// A container added again with the addresses an earlier one had (requested
// through CNI_ARGS, as a runtime keeping a container's address does), and so
// a new MAC, is announced to the other containers of the bridge by ADD
// itself: a gratuitous ARP for its IPv4 address and an unsolicited neighbour
// advertisement for its IPv6 one, sent once its port is on the bridge. The
// neighbour entries another container held for the addresses then name the
// new MAC as soon as ADD has returned, before the new container has sent
// anything, instead of keeping the old one for up to 45 s (and the probes
// after). Nothing the container's kernel sends by itself does it (its
// interface is up before it has addresses): not with the port joining the
// bridge after the interface is configured (DeferAttach), nor with
// enabledad, where it joins first.
func TestBridgeReAddSameAddressAnnounced(t *testing.T) {
	for name, dad := range map[string]bool{"deferred attach": false, "enabledad": true} {
		t.Run(name, func(t *testing.T) {
			node := NewNode(t)
			plugin := dualStackPlugin("br"+uniq(), node.LeaseDir())
			if dad {
				plugin["enabledad"] = true
			}
			testReAddSameAddress(t, newBridgeNet(t, node, plugin))
		})
	}
}

func testReAddSameAddress(t *testing.T, b *bridgeNet) {
	a, _, _ := b.Attached(t, "a")

	// Addresses of the test network, inside namespaces this test made.
	const v4, v6 = "10.99.0.50", "fd99:1::50"
	ips := [][2]string{{"IP", v4 + "," + v6}}
	bNS, rtB := container(t, "b")
	rtB.Args = ips
	resB := b.MustAdd(t, rtB)
	delB := func() { _ = b.Del(t, rtB) }
	t.Cleanup(delB)
	if got := resultAddr(t, resB, 4) + " " + resultAddr(t, resB, 6); got != v4+" "+v6 {
		t.Fatalf("first container's addresses %s, want %s %s", got, v4, v6)
	}
	macB := resB.Interfaces[2].Mac

	// The first container learns the second's MAC for both addresses.
	ping(t, a, v4)
	ping(t, a, v6)
	for _, ip := range []string{v4, v6} {
		if got := a.NeighLLAddr(t, "eth0", ip); got != macB {
			t.Fatalf("%s's neighbour entry of %s after ping: %q, want %s", a.Name, ip, got, macB)
		}
	}

	// The second container goes, and another takes its addresses.
	b.MustDel(t, rtB)
	bNS.Delete()
	_, rtC := container(t, "c")
	rtC.Args = ips
	resC := b.MustAdd(t, rtC)
	t.Cleanup(func() { _ = b.Del(t, rtC) })
	macC := resC.Interfaces[2].Mac
	if macC == macB {
		t.Fatalf("the new container got the old MAC %s", macB)
	}

	// No traffic from or to the new container yet: what the first
	// container knows of the addresses came from ADD's announcements.
	// (The bound only allows for the announcements' processing being
	// deferred to a kernel thread; without them the entries keep the old
	// MAC for seconds.)
	for _, ip := range []string{v4, v6} {
		got := a.NeighLLAddr(t, "eth0", ip)
		for end := time.Now().Add(500 * time.Millisecond); got != macC && time.Now().Before(end); got = a.NeighLLAddr(t, "eth0", ip) {
			time.Sleep(20 * time.Millisecond)
		}
		if got != macC {
			t.Errorf("%s's neighbour entry of %s right after the re-ADD: %q, want the new container's %s (the old one's was %s)", a.Name, ip, got, macC, macB)
		}
	}
	ping(t, a, v4)
	ping(t, a, v6)
}
