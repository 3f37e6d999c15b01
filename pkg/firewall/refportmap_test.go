package firewall

import (
	"net/netip"
	"testing"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
)

// The per-container chain is named as the reference portmap names it
// (expected names: "CNI-DN-" and the first 21 hex digits of
// `printf %s <network><id> | sha512sum`).
func TestPortmapChainName(t *testing.T) {
	for _, c := range [][3]string{
		{"net1", "c1", "CNI-DN-c2d892b58e87e28a12fe6"},
		{"podman", "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef", "CNI-DN-a57a867b11d1e93fb32cd"},
	} {
		if got := portmapChainName(c[0], c[1]); got != c[2] {
			t.Errorf("portmapChainName(%q, %q) = %s, want %s", c[0], c[1], got, c[2])
		}
	}
}

func TestParsePortmapComment(t *testing.T) {
	net, id, ok := parsePortmapComment(`dnat name: "net \"1\"" id: "c1"`)
	if !ok || net != `net "1"` || id != "c1" {
		t.Errorf("got %q %q %v", net, id, ok)
	}
	for _, c := range []string{`name: "net1" id: "c1"`, `dnat name: "net1"`, `CNI portfwd masquerade mark`, ``} {
		if _, _, ok := parsePortmapComment(c); ok {
			t.Errorf("parsed %q", c)
		}
	}
}

func TestPortmapSelectionStale(t *testing.T) {
	del := PortmapSelection{Network: "n", ContainerID: "c1"}
	gc := PortmapSelection{Network: "n", Keep: map[string]bool{"c2": true}}
	for _, c := range []struct {
		sel  PortmapSelection
		id   string
		want bool
	}{
		{del, "c1", true}, {del, "c2", false}, {del, "", false}, {del, "c", false},
		{gc, "c1", true}, {gc, "c2", false}, {gc, "", false},
	} {
		if got := c.sel.stale(c.id); got != c.want {
			t.Errorf("%+v stale(%q) = %v, want %v", c.sel, c.id, got, c.want)
		}
	}
}

// portmapRuleIn tells a rule's network by its DNAT target or masqueraded
// destination, as nft builds portmap's rules.
func TestPortmapRuleIn(t *testing.T) {
	sub4 := []netip.Prefix{netip.MustParsePrefix("10.1.0.0/24")}
	sub6 := []netip.Prefix{netip.MustParsePrefix("fd01::/64")}
	dnat := func(addr string) *nftables.Rule {
		a := netip.MustParseAddr(addr)
		return &nftables.Rule{Exprs: []expr.Any{
			&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: 2, Len: 2},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{0x1f, 0x90}},
			&expr.Immediate{Register: 1, Data: a.AsSlice()},
			&expr.Immediate{Register: 2, Data: []byte{0, 80}},
			&expr.NAT{Type: expr.NATTypeDestNAT, RegAddrMin: 1, RegProtoMin: 2},
		}}
	}
	masq := func(addr string, f family) *nftables.Rule {
		a := netip.MustParseAddr(addr)
		off := uint32(16)
		if f == ipv6 {
			off = 24
		}
		return &nftables.Rule{Exprs: []expr.Any{
			&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: off - uint32(a.BitLen()/8), Len: uint32(a.BitLen() / 8)},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: a.AsSlice()},
			&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: off, Len: uint32(a.BitLen() / 8)},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: a.AsSlice()},
			&expr.Masq{},
		}}
	}
	for _, c := range []struct {
		name string
		r    *nftables.Rule
		f    family
		sub  []netip.Prefix
		want bool
	}{
		{"dnat in", dnat("10.1.0.5"), ipv4, sub4, true},
		{"dnat out", dnat("10.2.0.5"), ipv4, sub4, false},
		{"dnat6 in", dnat("fd01::5"), ipv6, sub6, true},
		{"dnat6 out", dnat("fd02::5"), ipv6, sub6, false},
		{"masq in", masq("10.1.0.5", ipv4), ipv4, sub4, true},
		{"masq out", masq("10.2.0.5", ipv4), ipv4, sub4, false},
		{"masq6 in", masq("fd01::5", ipv6), ipv6, sub6, true},
		{"no subnets", dnat("10.1.0.5"), ipv4, nil, false},
	} {
		if got := portmapRuleIn(c.r, c.f, c.sub); got != c.want {
			t.Errorf("%s: %v, want %v", c.name, got, c.want)
		}
	}
}
