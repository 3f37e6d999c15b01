package rtnl

import (
	"net/netip"
	"slices"
	"syscall"
	"testing"

	"github.com/flatcni/plugins/internal/testns"
)

func TestAddrs(t *testing.T) {
	n := testns.New(t, "rtnladdr")
	n.MustRun(t, "ip", "link", "add", "a0", "type", "veth", "peer", "name", "a0p")
	n.MustRun(t, "ip", "link", "add", "b0", "type", "veth", "peer", "name", "b0p")
	n.MustRun(t, "ip", "addr", "add", "10.1.0.1/24", "dev", "a0")
	n.MustRun(t, "ip", "addr", "add", "10.1.1.1/16", "dev", "a0")
	n.MustRun(t, "ip", "addr", "add", "fd00:1::1/64", "dev", "a0", "nodad")
	n.MustRun(t, "ip", "addr", "add", "10.2.0.1/24", "dev", "b0")
	n.MustRun(t, "ip", "addr", "add", "fd00:2::1/64", "dev", "b0", "nodad")

	list := func(name string, family uint8) []string {
		t.Helper()
		var out []string
		if err := n.Do(func() error {
			l, err := LinkByName(name)
			if err != nil {
				return err
			}
			addrs, err := Addrs(l.Index, family)
			for _, a := range addrs {
				ip, ok := netip.AddrFromSlice(a.IP)
				if !ok || int(a.Family) == syscall.AF_INET != ip.Is4() {
					t.Errorf("%s: address %v of family %d", name, a.IP, a.Family)
				}
				out = append(out, netip.PrefixFrom(ip, int(a.PrefixLen)).String())
			}
			return err
		}); err != nil {
			t.Fatal(err)
		}
		slices.Sort(out)
		return out
	}
	for _, tc := range []struct {
		link   string
		family uint8
		want   []string
	}{
		{"a0", syscall.AF_INET, []string{"10.1.0.1/24", "10.1.1.1/16"}},
		{"a0", syscall.AF_INET6, []string{"fd00:1::1/64"}},
		{"a0", syscall.AF_UNSPEC, []string{"10.1.0.1/24", "10.1.1.1/16", "fd00:1::1/64"}},
		{"b0", syscall.AF_INET, []string{"10.2.0.1/24"}},
		{"b0", syscall.AF_UNSPEC, []string{"10.2.0.1/24", "fd00:2::1/64"}},
		{"lo", syscall.AF_INET, []string{"127.0.0.1/8"}},
	} {
		if got := list(tc.link, tc.family); !slices.Equal(got, tc.want) {
			t.Errorf("Addrs(%s, family %d) = %v, want %v", tc.link, tc.family, got, tc.want)
		}
	}
	// The IPv6 address was added without DAD: its flags say so.
	if err := n.Do(func() error {
		l, err := LinkByName("a0")
		if err != nil {
			return err
		}
		addrs, err := Addrs(l.Index, syscall.AF_INET6)
		if err == nil && (len(addrs) != 1 || addrs[0].Flags&syscall.IFA_F_NODAD == 0) {
			t.Errorf("Addrs(a0, AF_INET6) = %+v, want one address flagged IFA_F_NODAD", addrs)
		}
		if err != nil {
			return err
		}
		if addrs, err := Addrs(1<<30, syscall.AF_INET); err != nil || len(addrs) != 0 {
			t.Errorf("Addrs of a missing link = %v, %v; want none", addrs, err)
		}
		// The kernel sends a0's addresses only: filtered there, not here.
		c, err := dial()
		if err != nil {
			return err
		}
		defer c.close()
		foreign := 0
		err = c.dumpAddrs(l.Index, syscall.AF_UNSPEC, func(typ, _ uint16, data []byte) {
			if typ == syscall.RTM_NEWADDR && len(data) >= ifaddrmsgLen && int32(getU32(data[4:])) != l.Index {
				foreign++
			}
		})
		if foreign > 0 {
			t.Errorf("the kernel sent %d addresses of other links", foreign)
		}
		return err
	}); err != nil {
		t.Fatal(err)
	}
}
