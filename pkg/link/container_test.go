package link

import (
	"fmt"
	"net"
	"net/netip"
	"os/exec"
	"path/filepath"
	"slices"
	"syscall"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
)

// containerFixture wires a container to a bridge in a node netns (with DAD
// on the container end as dad says) and returns the node and container netns
// paths and the container end as SetupVeth returned it.
func containerFixture(t *testing.T, gws []netip.Prefix, dad bool) (node, cont string, ci Interface) {
	t.Helper()
	node, cont = newNetNS(t, "cnode"), newNetNS(t, "ccont")
	in(t, node, func() error {
		br, err := EnsureBridge(BridgeConfig{Name: "cbr"})
		if err != nil {
			return err
		}
		if _, err := EnsureGatewayAddrs(br, gws, false, false); err != nil {
			return err
		}
		_, ci, err = SetupVeth(VethConfig{ContainerNetNS: cont, IfName: "eth0", Bridge: br, EnableDAD: dad})
		return err
	})
	return node, cont, ci
}

func TestConfigureAndCheckContainer(t *testing.T) {
	requireRoot(t)
	pp, pa := netip.MustParsePrefix, netip.MustParseAddr
	addrs := []netip.Prefix{pp("10.1.0.5/24"), pp("fd00:1::5/64")}
	routes := []Route{
		{Dst: pp("0.0.0.0/0"), GW: pa("10.1.0.1")},
		{Dst: pp("::/0"), GW: pa("fd00:1::1")},
		{Dst: pp("192.168.7.0/24")},
	}
	node, cont, ci := containerFixture(t, []netip.Prefix{pp("10.1.0.1/24"), pp("fd00:1::1/64")}, false)
	mac := ci.MAC
	// As ADD calls it: the interface SetupVeth returned, addressed by its
	// index (TestConfigureContainerWithDAD names it instead).
	if ci.Index == 0 || ci.Sandbox != cont {
		t.Fatalf("SetupVeth returned %+v", ci)
	}
	if err := runIn(t, node, func() error { _, err := ConfigureContainer(ci, addrs, routes, false, false); return err }); err != nil {
		t.Fatal(err)
	}

	in(t, cont, func() error {
		// The addresses ADD gave are usable on return. The kernel makes the
		// link-local address itself, once its link watch has seen the
		// carrier, which may be after ConfigureContainer returned; with DAD
		// off it is tentative only until the kernel's DAD work has run
		// (DAD on would hold it for a second at least).
		deadline := time.Now().Add(500 * time.Millisecond)
		for {
			list, err := v6Addrs("eth0")
			if err != nil {
				return err
			}
			var unusable []string
			for _, a := range list {
				if a.Flags&(syscall.IFA_F_TENTATIVE|syscall.IFA_F_DADFAILED) == 0 {
					continue
				}
				msg := fmt.Sprintf("%s not usable, flags %#x", a.IPNet, a.Flags)
				if !a.IP.IsLinkLocalUnicast() {
					t.Error(msg)
				} else {
					unusable = append(unusable, msg)
				}
			}
			if len(unusable) == 0 {
				break
			}
			if time.Now().After(deadline) {
				t.Errorf("after 500 ms: %v", unusable)
				break
			}
			time.Sleep(10 * time.Millisecond)
		}
		for k, want := range map[string]string{
			"net/ipv6/conf/eth0/accept_dad":        "0",
			"net/ipv6/conf/eth0/keep_addr_on_down": "1",
			"net/ipv4/conf/eth0/arp_notify":        "1",
		} {
			if v, _ := readSysctl(k); v != want {
				t.Errorf("%s = %q, want %s", k, v, want)
			}
		}
		return nil
	})

	// Both gateways answer right away: IPv6 is usable on return.
	if _, err := exec.LookPath("ping"); err == nil {
		for _, gw := range []string{"10.1.0.1", "fd00:1::1"} {
			out, err := exec.Command("ip", "netns", "exec", filepath.Base(cont), "ping", "-c", "1", "-W", "5", gw).CombinedOutput()
			if err != nil {
				t.Errorf("ping %s from the container: %v: %s", gw, err, out)
			}
		}
	}

	wrongMAC, _ := net.ParseMAC("02:00:00:00:00:99")
	tests := []struct {
		name    string
		tamper  func() error // run in the container before checking
		ifName  string
		mac     net.HardwareAddr
		addrs   []netip.Prefix
		routes  []Route
		wantErr string
	}{
		{name: "all present", ifName: "eth0", mac: mac, addrs: addrs, routes: routes},
		{name: "missing interface", ifName: "eth9", wantErr: "eth9 in " + cont + ": interface not found"},
		{name: "wrong MAC", ifName: "eth0", mac: wrongMAC,
			wantErr: "eth0 in " + cont + ": MAC is " + mac.String() + ", want 02:00:00:00:00:99"},
		{name: "route with other gateway", ifName: "eth0", routes: []Route{{Dst: pp("0.0.0.0/0"), GW: pa("10.1.0.9")}},
			wantErr: "eth0 in " + cont + ": route 0.0.0.0/0 via 10.1.0.9 missing"},
		// A later chained plugin (sbr) moves the routes into a table of
		// its own: CHECK must allow it (CNI spec, CHECK).
		{name: "route moved to another table", ifName: "eth0", routes: routes,
			tamper: func() error {
				_, dst, _ := net.ParseCIDR("192.168.7.0/24")
				l, err := netlink.LinkByName("eth0")
				if err != nil {
					return err
				}
				if err := netlink.RouteDel(&netlink.Route{Dst: dst}); err != nil {
					return err
				}
				return netlink.RouteAdd(&netlink.Route{Dst: dst, LinkIndex: l.Attrs().Index, Table: 100})
			}},
		{name: "route removed", ifName: "eth0", routes: routes,
			tamper: func() error {
				// From table 100 (the case above moved it there), or main
				// when this case runs alone.
				_, dst, _ := net.ParseCIDR("192.168.7.0/24")
				if err := netlink.RouteDel(&netlink.Route{Dst: dst, Table: 100}); err != nil {
					return netlink.RouteDel(&netlink.Route{Dst: dst})
				}
				return nil
			},
			wantErr: "eth0 in " + cont + ": route 192.168.7.0/24 missing"},
		// Each address's subnet route must go through the interface, as
		// the reference's CHECK requires: without it the container reaches
		// nothing on the subnet. sbr moves it, as the routes above.
		{name: "subnet route moved to another table", ifName: "eth0", addrs: addrs, routes: routes[:2],
			tamper: func() error {
				return moveRoute("10.1.0.0/24", "10.1.0.5", 100)
			}},
		{name: "subnet route removed", ifName: "eth0", addrs: addrs,
			tamper: func() error {
				_, dst, _ := net.ParseCIDR("fd00:1::/64")
				return netlink.RouteDel(&netlink.Route{Dst: dst})
			},
			wantErr: "eth0 in " + cont + ": route fd00:1::/64 of address fd00:1::5/64 missing"},
		{name: "address removed", ifName: "eth0", mac: mac, addrs: addrs,
			tamper: func() error {
				l, err := netlink.LinkByName("eth0")
				if err != nil {
					return err
				}
				return netlink.AddrDel(l, &netlink.Addr{IPNet: ipNet(pp("10.1.0.5/24"))})
			},
			wantErr: "eth0 in " + cont + ": address 10.1.0.5/24 missing"},
		// Down, it keeps its IPv6 address (keep_addr_on_down) but has no
		// route: the container is cut off.
		{name: "interface down", ifName: "eth0", addrs: []netip.Prefix{pp("fd00:1::5/64")},
			tamper: func() error {
				l, err := netlink.LinkByName("eth0")
				if err != nil {
					return err
				}
				return netlink.LinkSetDown(l)
			},
			wantErr: "eth0 in " + cont + ": interface is down"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if tc.tamper != nil {
				in(t, cont, tc.tamper)
			}
			err := runIn(t, node, func() error { return CheckContainer(cont, tc.ifName, tc.mac, tc.addrs, tc.routes) })
			switch {
			case tc.wantErr == "" && err != nil:
				t.Errorf("unexpected error: %v", err)
			case tc.wantErr != "" && (err == nil || err.Error() != tc.wantErr):
				t.Errorf("error %v, want %q", err, tc.wantErr)
			}
		})
	}

	// DelVeth reports the remaining global addresses.
	in(t, node, func() error {
		_, got, err := DelVeth(cont, "eth0")
		if err != nil {
			return err
		}
		if want := []netip.Prefix{pp("fd00:1::5/64")}; !slices.Equal(got, want) {
			t.Errorf("DelVeth addresses %v, want %v", got, want)
		}
		return nil
	})
}

func TestConfigureContainerWithDAD(t *testing.T) {
	requireRoot(t)
	pp := netip.MustParsePrefix
	node, cont, _ := containerFixture(t, []netip.Prefix{pp("fd00:2::1/64")}, true)
	// Named, without an index: ConfigureContainer looks the interface up.
	if err := runIn(t, node, func() error {
		_, err := ConfigureContainer(Interface{Name: "eth0", Sandbox: cont}, []netip.Prefix{pp("fd00:2::5/64")}, nil, true, false)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	in(t, cont, func() error {
		list, err := v6Addrs("eth0")
		if err != nil {
			return err
		}
		for _, a := range list {
			if a.Flags&syscall.IFA_F_TENTATIVE != 0 {
				t.Errorf("%s still tentative after ConfigureContainer", a.IPNet)
			}
		}
		if v, _ := readSysctl("net/ipv6/conf/eth0/accept_dad"); v != "1" {
			t.Errorf("accept_dad = %q, want 1", v)
		}
		return nil
	})
}

// moveRoute moves the route to dst through eth0 (with source address src)
// from the main table into table, as sbr does.
func moveRoute(dst, src string, table int) error {
	_, d, _ := net.ParseCIDR(dst)
	l, err := netlink.LinkByName("eth0")
	if err != nil {
		return err
	}
	if err := netlink.RouteDel(&netlink.Route{Dst: d, LinkIndex: l.Attrs().Index, Scope: netlink.SCOPE_LINK}); err != nil {
		return err
	}
	return netlink.RouteAdd(&netlink.Route{Dst: d, LinkIndex: l.Attrs().Index, Src: net.ParseIP(src), Scope: netlink.SCOPE_LINK, Table: table})
}

// v6Addrs lists the IPv6 addresses of ifName in the current netns.
func v6Addrs(ifName string) ([]netlink.Addr, error) {
	l, err := netlink.LinkByName(ifName)
	if err != nil {
		return nil, err
	}
	return netlink.AddrList(l, netlink.FAMILY_V6)
}

// runIn runs fn inside the netns at path and returns its error.
func runIn(t *testing.T, path string, fn func() error) error {
	t.Helper()
	return inErr(t, path, fn)
}
