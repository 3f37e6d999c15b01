package link

import (
	"fmt"
	"net"
	"net/netip"
	"os"
	"slices"
	"strings"
	"syscall"
	"testing"

	"github.com/vishvananda/netlink"
)

func TestEnsureGatewayAddrs(t *testing.T) {
	requireRoot(t)
	pp := netip.MustParsePrefix
	tests := []struct {
		name     string
		existing []netip.Prefix // put on the bridge first, with force
		gws      []netip.Prefix
		force    bool
		wantErr  []string
		want     []netip.Prefix // global addresses expected afterwards
		others   []netip.Prefix // the subnets returned
	}{
		{name: "fresh v4 and v6", gws: []netip.Prefix{pp("10.1.0.1/24"), pp("fd00:1::1/64")},
			want: []netip.Prefix{pp("10.1.0.1/24"), pp("fd00:1::1/64")}},
		{name: "already present", existing: []netip.Prefix{pp("10.1.0.1/24")}, gws: []netip.Prefix{pp("10.1.0.1/24")},
			want: []netip.Prefix{pp("10.1.0.1/24")}},
		{name: "v4 conflict without force", existing: []netip.Prefix{pp("10.1.0.1/24")}, gws: []netip.Prefix{pp("10.1.0.254/24")},
			wantErr: []string{`"gwbr"`, "10.1.0.1/24", "10.1.0.254/24"}, want: []netip.Prefix{pp("10.1.0.1/24")}},
		{name: "v4 conflict with force", existing: []netip.Prefix{pp("10.1.0.1/24")}, gws: []netip.Prefix{pp("10.1.0.254/24")}, force: true,
			want: []netip.Prefix{pp("10.1.0.254/24")}},
		{name: "two requested v4 gateways coexist", gws: []netip.Prefix{pp("10.1.0.1/24"), pp("10.2.0.1/24")},
			want: []netip.Prefix{pp("10.1.0.1/24"), pp("10.2.0.1/24")}},
		{name: "v6 disjoint subnets coexist", existing: []netip.Prefix{pp("fd00:1::1/64")}, gws: []netip.Prefix{pp("fd00:2::1/64")},
			want: []netip.Prefix{pp("fd00:1::1/64"), pp("fd00:2::1/64")}, others: []netip.Prefix{pp("fd00:1::/64")}},
		{name: "v6 disjoint subnets, gateway present", existing: []netip.Prefix{pp("fd00:1::1/64"), pp("fd00:2::1/64"), pp("10.1.0.1/24")},
			gws:  []netip.Prefix{pp("fd00:2::1/64"), pp("10.1.0.1/24")},
			want: []netip.Prefix{pp("10.1.0.1/24"), pp("fd00:1::1/64"), pp("fd00:2::1/64")}, others: []netip.Prefix{pp("fd00:1::/64")}},
		{name: "v6 overlap without force", existing: []netip.Prefix{pp("fd00:1::1/64")}, gws: []netip.Prefix{pp("fd00:1::2/64")},
			wantErr: []string{"fd00:1::1/64", "fd00:1::2/64"}, want: []netip.Prefix{pp("fd00:1::1/64")}},
		{name: "v6 overlap with force", existing: []netip.Prefix{pp("fd00:1::1/64")}, gws: []netip.Prefix{pp("fd00:1::2/64")}, force: true,
			want: []netip.Prefix{pp("fd00:1::2/64")}},
		// A family the configuration no longer has: its gateway stays for
		// the containers attached before, which still use it.
		{name: "v6 dropped", existing: []netip.Prefix{pp("10.1.0.1/24"), pp("fd00:1::1/64")}, gws: []netip.Prefix{pp("10.1.0.1/24")},
			want: []netip.Prefix{pp("10.1.0.1/24"), pp("fd00:1::1/64")}, others: []netip.Prefix{pp("fd00:1::/64")}},
		{name: "v4 dropped", existing: []netip.Prefix{pp("10.1.0.1/24"), pp("fd00:1::1/64")}, gws: []netip.Prefix{pp("fd00:1::1/64")},
			want: []netip.Prefix{pp("10.1.0.1/24"), pp("fd00:1::1/64")}, others: []netip.Prefix{pp("10.1.0.0/24")}},
	}
	// The device by the index EnsureBridge read (as ADD passes it), and by
	// its name alone (looked up).
	for _, tc := range tests {
		for _, byName := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/byName=%v", tc.name, byName), func(t *testing.T) {
				node := newNetNS(t, "gw")
				in(t, node, func() error {
					br, err := EnsureBridge(BridgeConfig{Name: "gwbr"})
					if err != nil {
						return err
					}
					if _, err := EnsureGatewayAddrs(br, tc.existing, true, false); err != nil {
						return err
					}
					if byName {
						br = Bridge{Name: br.Name}
					}
					others, err := EnsureGatewayAddrs(br, tc.gws, tc.force, false)
					if tc.wantErr != nil {
						wantErrContains(t, err, tc.wantErr...)
					} else if err != nil {
						return err
					} else if !slices.Equal(others, tc.others) {
						t.Errorf("returned subnets %v, want %v", others, tc.others)
					}
					l, err := netlink.LinkByName("gwbr")
					if err != nil {
						return err
					}
					list, err := netlink.AddrList(l, netlink.FAMILY_ALL)
					if err != nil {
						return err
					}
					var got []netip.Prefix
					for _, a := range list {
						p, _ := prefixOf(a.IPNet)
						if p.Addr().IsLinkLocalUnicast() {
							continue
						}
						if a.Flags&syscall.IFA_F_TENTATIVE != 0 {
							t.Errorf("%s is tentative", p)
						}
						got = append(got, p)
					}
					cmp := func(a, b netip.Prefix) int { return a.Addr().Compare(b.Addr()) }
					slices.SortFunc(got, cmp)
					want := slices.SortedFunc(slices.Values(tc.want), cmp)
					if !slices.Equal(got, want) {
						t.Errorf("bridge addresses %v, want %v", got, want)
					}
					return nil
				})
			})
		}
	}
}

// With dad (the network's enabledad), an IPv6 gateway address is added with
// duplicate address detection, as the reference adds it; without, it is
// added "nodad" and usable at once.
func TestEnsureGatewayAddrsDAD(t *testing.T) {
	requireRoot(t)
	gw := netip.MustParsePrefix("fd00:1::1/64")
	for _, dad := range []bool{false, true} {
		t.Run(fmt.Sprintf("dad=%v", dad), func(t *testing.T) {
			node := newNetNS(t, "gwdad")
			in(t, node, func() error {
				br, err := EnsureBridge(BridgeConfig{Name: "gwbr"})
				if err != nil {
					return err
				}
				if _, err := EnsureGatewayAddrs(br, []netip.Prefix{gw}, false, dad); err != nil {
					return err
				}
				list, err := netlink.AddrList(br.device(), netlink.FAMILY_V6)
				if err != nil {
					return err
				}
				for _, a := range list {
					if p, _ := prefixOf(a.IPNet); p == gw {
						if nodad := a.Flags&syscall.IFA_F_NODAD != 0; nodad == dad {
							t.Errorf("%s added with flags %#x: nodad %v, want %v", gw, a.Flags, nodad, !dad)
						}
						return nil
					}
				}
				t.Errorf("%s not on the bridge: %v", gw, list)
				return nil
			})
		})
	}
}

// A bridge made for an attachment keeps the MAC it was made with, as with
// the reference: the MAC is pinned to what EnsureBridge read, not to the
// lowest port MAC the bridge took when the attachment's port joined.
func TestEnsureGatewayAddrsPinsMACOfEnsureBridge(t *testing.T) {
	requireRoot(t)
	node := newNetNS(t, "gwmac")
	in(t, node, func() error {
		br, err := EnsureBridge(BridgeConfig{Name: "gwbr"})
		if err != nil {
			return err
		}
		port := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: "gwport", MasterIndex: br.Index, TxQLen: -1,
			HardwareAddr: net.HardwareAddr{0x02, 0, 0, 0, 0, 1}}, PeerName: "gwpeer", PeerTxQLen: -1}
		if err := netlink.LinkAdd(port); err != nil {
			return err
		}
		if _, err := EnsureGatewayAddrs(br, []netip.Prefix{netip.MustParsePrefix("10.1.0.1/24")}, false, false); err != nil {
			return err
		}
		l, err := netlink.LinkByName("gwbr")
		if err != nil {
			return err
		}
		if got := l.Attrs().HardwareAddr.String(); got != br.MAC.String() {
			t.Errorf("bridge MAC %s, want %s (its MAC before the port joined)", got, br.MAC)
		}
		return nil
	})
}

// CheckGatewayAddrs finds the gateway addresses EnsureGatewayAddrs put on
// the bridge, and names one that went away.
func TestCheckGatewayAddrs(t *testing.T) {
	requireRoot(t)
	node := newNetNS(t, "gwcheck")
	gws := []netip.Prefix{netip.MustParsePrefix("10.1.0.1/24"), netip.MustParsePrefix("fd00:1::1/64")}
	in(t, node, func() error {
		br, err := EnsureBridge(BridgeConfig{Name: "gwbr"})
		if err != nil {
			return err
		}
		if err := CheckGatewayAddrs(br, gws); err == nil || !strings.Contains(err.Error(), "10.1.0.1/24") {
			t.Errorf("CheckGatewayAddrs before any address: %v", err)
		}
		if _, err := EnsureGatewayAddrs(br, gws, false, false); err != nil {
			return err
		}
		if err := CheckGatewayAddrs(br, gws); err != nil {
			t.Errorf("CheckGatewayAddrs: %v", err)
		}
		l, err := netlink.LinkByName("gwbr")
		if err != nil {
			return err
		}
		if err := netlink.AddrDel(l, &netlink.Addr{IPNet: ipNet(gws[1])}); err != nil {
			return err
		}
		if err := CheckGatewayAddrs(br, gws); err == nil || !strings.Contains(err.Error(), `bridge "gwbr": gateway address fd00:1::1/64 is missing`) {
			t.Errorf("CheckGatewayAddrs without the IPv6 gateway: %v", err)
		}
		return nil
	})
}

// TestForgetNeighbours: the bridge's neighbour entries of the addresses
// given go (IPv4 and IPv6), the others stay; a missing one is no error.
func TestForgetNeighbours(t *testing.T) {
	requireRoot(t)
	node := newNetNS(t, "neigh")
	in(t, node, func() error {
		br, err := EnsureBridge(BridgeConfig{Name: "nbr"})
		if err != nil {
			return err
		}
		if _, err := EnsureGatewayAddrs(br, []netip.Prefix{netip.MustParsePrefix("10.1.0.1/24"), netip.MustParsePrefix("fd00:1::1/64")}, false, false); err != nil {
			return err
		}
		mac, _ := net.ParseMAC("02:00:00:00:00:05")
		for _, ip := range []string{"10.1.0.5", "10.1.0.6", "fd00:1::5"} {
			a := netip.MustParseAddr(ip)
			if err := netlink.NeighAdd(&netlink.Neigh{LinkIndex: br.Index, Family: family(a), IP: a.AsSlice(), HardwareAddr: mac, State: netlink.NUD_REACHABLE}); err != nil {
				return err
			}
		}
		ForgetNeighbours(br, []netip.Addr{netip.MustParseAddr("10.1.0.5"), netip.MustParseAddr("fd00:1::5"), netip.MustParseAddr("10.1.0.9")})
		got := map[string]bool{}
		for _, fam := range []int{netlink.FAMILY_V4, netlink.FAMILY_V6} {
			list, err := netlink.NeighList(br.Index, fam)
			if err != nil {
				return err
			}
			for _, n := range list {
				if n.HardwareAddr.String() == mac.String() {
					got[n.IP.String()] = true
				}
			}
		}
		if got["10.1.0.5"] || got["fd00:1::5"] || !got["10.1.0.6"] {
			t.Errorf("neighbour entries left: %v; want 10.1.0.6 only", got)
		}
		return nil
	})
}

// TestEnsureGatewayAddrsIPv6Disabled: on a node whose new links have IPv6
// off (net.ipv6.conf.default.disable_ipv6=1), an IPv6 gateway turns it on
// on the bridge, as the container's interface has it on, instead of
// failing with "permission denied".
func TestEnsureGatewayAddrsIPv6Disabled(t *testing.T) {
	requireRoot(t)
	node := newNetNS(t, "v6off")
	in(t, node, func() error {
		if err := os.WriteFile("/proc/sys/net/ipv6/conf/default/disable_ipv6", []byte("1"), 0o644); err != nil {
			return err
		}
		br, err := EnsureBridge(BridgeConfig{Name: "v6off"})
		if err != nil {
			return err
		}
		gw := netip.MustParsePrefix("fd00:51::1/64")
		if _, err := EnsureGatewayAddrs(br, []netip.Prefix{netip.MustParsePrefix("10.51.0.1/24"), gw}, false, false); err != nil {
			t.Fatalf("EnsureGatewayAddrs with IPv6 off on the bridge: %v", err)
		}
		l, err := netlink.LinkByName("v6off")
		if err != nil {
			return err
		}
		list, err := netlink.AddrList(l, netlink.FAMILY_V6)
		if err != nil {
			return err
		}
		if !slices.ContainsFunc(list, func(a netlink.Addr) bool { p, _ := prefixOf(a.IPNet); return p == gw }) {
			t.Errorf("IPv6 addresses of the bridge: %v; want %s", list, gw)
		}
		return nil
	})
}
