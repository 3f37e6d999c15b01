package integration

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"

	current "github.com/containernetworking/cni/pkg/types/100"
)

// cnitoolAdd attaches ctr to b's network with cnitool; a DEL is registered
// for cleanup so that cnitool's result cache (in /var/lib/cni) is emptied
// even when the test fails.
func cnitoolAdd(t *testing.T, b *bridgeNet, ctr *Netns, env ...string) *current.Result {
	t.Helper()
	t.Cleanup(func() { _, _ = b.node.CNITool(t, "del", b.name, ctr.Path, env...) })
	out, err := b.node.CNITool(t, "add", b.name, ctr.Path, env...)
	if err != nil {
		t.Fatalf("cnitool add %s %s: %v\n%s", b.name, ctr.Path, err, out)
	}
	var res current.Result
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatalf("cnitool add: result %q: %v", out, err)
	}
	return &res
}

// Two containers on a dual-stack network, one attached by cnitool and one
// by libcni, reach each other and the bridge gateway over IPv4 and IPv6.
func TestBridgeDualStackPing(t *testing.T) {
	n := NewNode(t)
	b := newDualStack(t, n)

	a := NewNetns(t, "a")
	resA := cnitoolAdd(t, b, a)
	c, rtC := container(t, "c")
	resC := b.MustAdd(t, rtC)
	t.Cleanup(func() { _ = b.Del(t, rtC) })

	for _, res := range []*current.Result{resA, resC} {
		if len(res.IPs) != 2 || len(res.Interfaces) != 3 {
			t.Fatalf("want 2 IPs and 3 interfaces, got %+v", res)
		}
		for _, ip := range res.IPs {
			if ip.Interface == nil || *ip.Interface != 2 || res.Interfaces[2].Sandbox == "" {
				t.Errorf("IP %s does not point at the container interface: %+v", ip.Address.String(), res)
			}
		}
	}
	if got := globalAddrs(t, n.Netns, b.bridge); !slices.Contains(got, testGW4+"/24") || !slices.Contains(got, testGW6+"/64") {
		t.Errorf("bridge %s addresses %v, want the gateways %s and %s", b.bridge, got, testGW4, testGW6)
	}

	for _, p := range []struct {
		from *Netns
		to   *current.Result
	}{{a, resC}, {c, resA}} {
		ping(t, p.from, resultAddr(t, p.to, 4))
		ping(t, p.from, resultAddr(t, p.to, 6))
		ping(t, p.from, testGW4)
		ping(t, p.from, testGW6)
	}
}

// CHECK passes on a fresh attachment and fails, naming the address, once an
// address was removed by hand in the container; through libcni and cnitool.
func TestBridgeCheck(t *testing.T) {
	n := NewNode(t)
	b := newDualStack(t, n)

	c, rt, res := b.Attached(t, "c")
	a := NewNetns(t, "a")
	resA := cnitoolAdd(t, b, a)

	if err := b.Check(t, rt); err != nil {
		t.Fatalf("CHECK after ADD: %v", err)
	}
	if out, err := n.CNITool(t, "check", b.name, a.Path); err != nil {
		t.Fatalf("cnitool check after ADD: %v\n%s", err, out)
	}

	for _, tc := range []struct {
		name  string
		ns    *Netns
		res   *current.Result
		fam   int
		check func() (string, error)
	}{
		{"libcni IPv4", c, res, 4, func() (string, error) { err := b.Check(t, rt); return errString(err), err }},
		{"cnitool IPv6", a, resA, 6, func() (string, error) { return n.CNITool(t, "check", b.name, a.Path) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var addr string
			for _, ip := range tc.res.IPs {
				if (ip.Address.IP.To4() != nil) == (tc.fam == 4) {
					addr = ip.Address.String()
				}
			}
			tc.ns.MustRun(t, "ip", "addr", "del", addr, "dev", "eth0")
			out, err := tc.check()
			if err == nil {
				t.Fatalf("CHECK passed after %s was removed", addr)
			}
			if !strings.Contains(out, addr) {
				t.Errorf("CHECK error does not name %s: %s", addr, out)
			}
			t.Logf("CHECK error: %s", strings.TrimSpace(out))
		})
	}
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// DEL removes the veth and the lease; a second DEL succeeds; DEL after the
// container netns was deleted succeeds, releases the lease and leaves no
// host veth.
func TestBridgeDel(t *testing.T) {
	n := NewNode(t)
	b := newDualStack(t, n)

	t.Run("twice", func(t *testing.T) {
		c, rt := container(t, "c")
		b.MustAdd(t, rt)
		if l := b.Leases(t); len(l) != 2 {
			t.Fatalf("after ADD want 2 leases, got %v", l)
		}
		b.MustDel(t, rt)
		if l := b.Leases(t); len(l) != 0 {
			t.Errorf("leases left after DEL: %v", l)
		}
		if v := hostVeths(t, n); len(v) != 0 {
			t.Errorf("host veths left after DEL: %v", v)
		}
		if out, err := c.Run("ip", "link", "show", "eth0"); err == nil {
			t.Errorf("eth0 left in the container after DEL:\n%s", out)
		}
		b.MustDel(t, rt)
	})

	t.Run("cnitool twice", func(t *testing.T) {
		a := NewNetns(t, "a")
		cnitoolAdd(t, b, a)
		for i := range 2 {
			if out, err := n.CNITool(t, "del", b.name, a.Path); err != nil {
				t.Fatalf("cnitool del #%d: %v\n%s", i+1, err, out)
			}
		}
		if l := b.Leases(t); len(l) != 0 {
			t.Errorf("leases left after DEL: %v", l)
		}
		if v := hostVeths(t, n); len(v) != 0 {
			t.Errorf("host veths left after DEL: %v", v)
		}
	})

	t.Run("without CNI_NETNS", func(t *testing.T) {
		c, rt := container(t, "c")
		b.MustAdd(t, rt)
		conf := b.pluginConf(t, "1.1.0")
		for i := range 2 {
			if out, err := n.Exec(t, "bridge", "DEL", rt.ContainerID, "", rt.IfName, conf); err != nil {
				t.Fatalf("DEL #%d without netns: %v %s", i+1, err, out)
			}
		}
		if l := b.Leases(t); len(l) != 0 {
			t.Errorf("leases left after DEL: %v", l)
		}
		if v := hostVeths(t, n); len(v) != 0 {
			t.Errorf("host veths left after DEL: %v", v)
		}
		if out, err := c.Run("ip", "link", "show", "eth0"); err == nil {
			t.Errorf("eth0 left in the container after DEL:\n%s", out)
		}
		b.MustDel(t, rt) // empties libcni's cache
	})

	t.Run("netns gone", func(t *testing.T) {
		c, rt := container(t, "c")
		b.MustAdd(t, rt)
		c.Delete()
		b.MustDel(t, rt)
		if l := b.Leases(t); len(l) != 0 {
			t.Errorf("leases left after DEL: %v", l)
		}
		if v := hostVeths(t, n); len(v) != 0 {
			t.Errorf("host veths left after DEL: %v", v)
		}
		b.MustDel(t, rt)
	})
}
