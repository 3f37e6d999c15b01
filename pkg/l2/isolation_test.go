package l2

import (
	"strings"
	"testing"

	"github.com/vishvananda/netlink"
)

func TestSetIsolated(t *testing.T) {
	requireRoot(t)
	const gw = "192.0.2.1"
	top := newTopology(t, "iso", gw, "192.0.2.2", "192.0.2.3")
	a, b := top.containers[0], top.containers[1]

	isolated := func(port string) bool {
		var on bool
		if err := inNetns(t, top.node, func() error {
			link, err := netlink.LinkByName(port)
			if err != nil {
				return err
			}
			info, err := netlink.LinkGetProtinfo(link)
			on = info.Isolated
			return err
		}); err != nil {
			t.Fatalf("read protinfo of %s: %v", port, err)
		}
		return on
	}
	setAll := func(on bool) {
		for _, c := range top.containers {
			if err := inNetns(t, top.node, func() error { return SetIsolated(c.hostVeth, on) }); err != nil {
				t.Fatalf("SetIsolated(%s, %v): %v", c.hostVeth, on, err)
			}
			if got := isolated(c.hostVeth); got != on {
				t.Fatalf("port %s isolated = %v after SetIsolated(%v)", c.hostVeth, got, on)
			}
		}
	}

	steps := []struct {
		name    string
		isolate bool
		aReachB bool
		bReachA bool
		reachGW bool
	}{
		{name: "not isolated", isolate: false, aReachB: true, bReachA: true, reachGW: true},
		{name: "isolated", isolate: true, aReachB: false, bReachA: false, reachGW: true},
		{name: "isolation lifted", isolate: false, aReachB: true, bReachA: true, reachGW: true},
	}
	for _, s := range steps {
		setAll(s.isolate)
		// Forget learned neighbours so that every step resolves afresh.
		for _, c := range top.containers {
			run(t, "ip", "-n", c.netns, "neigh", "flush", "all")
		}
		if got := pingOK(a.netns, b.addr); got != s.aReachB {
			t.Errorf("%s: A reaches B = %v, want %v", s.name, got, s.aReachB)
		}
		if got := pingOK(b.netns, a.addr); got != s.bReachA {
			t.Errorf("%s: B reaches A = %v, want %v", s.name, got, s.bReachA)
		}
		for _, c := range top.containers {
			if got := pingOK(c.netns, gw); got != s.reachGW {
				t.Errorf("%s: %s reaches the gateway on the bridge = %v, want %v", s.name, c.addr, got, s.reachGW)
			}
		}
	}

	err := inNetns(t, top.node, func() error { return SetIsolated("nosuchveth0", true) })
	if err == nil || !strings.Contains(err.Error(), `"nosuchveth0"`) {
		t.Errorf("SetIsolated on a missing port: got %v, want an error naming it", err)
	}
}
