package link

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"

	"github.com/containernetworking/plugins/pkg/ns"
	"github.com/vishvananda/netlink"
)

// CheckContainer verifies, inside the container netns, that ifName exists
// and is a veth, has wantMAC (when non-nil), carries every address in addrs,
// is up and has each address's subnet route when it has addresses (as the
// reference's CHECK requires the subnet routes: down, the interface keeps
// its addresses, not their routes), and that every route in routes goes
// through it (via its GW when set). The first difference found is returned,
// phrased as "eth0 in /var/run/netns/x: address 10.1.0.5/24 missing".
func CheckContainer(netnsPath, ifName string, wantMAC net.HardwareAddr, addrs []netip.Prefix, routes []Route) error {
	return inNetNS(netnsPath, func(ns.NetNS) error {
		if err := checkIface(ifName, wantMAC, addrs, routes); err != nil {
			return fmt.Errorf("%s in %s: %w", ifName, netnsPath, err)
		}
		return nil
	})
}

func checkIface(ifName string, wantMAC net.HardwareAddr, addrs []netip.Prefix, routes []Route) error {
	l, err := linkByName(ifName)
	if err != nil {
		if isNotFound(err) {
			return fmt.Errorf("interface %w", ErrNotFound)
		}
		return fmt.Errorf("look up interface: %w", err)
	}
	if _, ok := l.(*netlink.Veth); !ok {
		return fmt.Errorf("interface is a %s, not a veth", l.Type())
	}
	if wantMAC != nil && !bytes.Equal(wantMAC, l.Attrs().HardwareAddr) {
		return fmt.Errorf("MAC is %s, want %s", l.Attrs().HardwareAddr, wantMAC)
	}
	if len(addrs) > 0 {
		list, err := addrList(l, netlink.FAMILY_ALL)
		if err != nil {
			return fmt.Errorf("list addresses: %w", err)
		}
		have := make(map[netip.Prefix]bool, len(list))
		for _, a := range list {
			if p, ok := prefixOf(a.IPNet); ok {
				have[p] = true
			}
		}
		for _, p := range addrs {
			if !have[normPrefix(p)] {
				return fmt.Errorf("address %s missing", p)
			}
		}
		if l.Attrs().Flags&net.FlagUp == 0 {
			return errors.New("interface is down")
		}
		for _, p := range addrs {
			p = normPrefix(p)
			if p.IsSingleIP() {
				continue // the kernel makes no subnet route for it
			}
			// In any table, as routes below: sbr moves it too.
			ok, err := hasRoute(l.Attrs().Index, Route{Dst: p.Masked()})
			if err != nil {
				return fmt.Errorf("list routes: %w", err)
			}
			if !ok {
				return fmt.Errorf("route %s of address %s missing", p.Masked(), p)
			}
		}
	}
	for _, r := range routes {
		ok, err := hasRoute(l.Attrs().Index, r)
		if err != nil {
			return fmt.Errorf("list routes: %w", err)
		}
		if !ok {
			return fmt.Errorf("route %s missing", r)
		}
	}
	return nil
}

// CheckBridge compares the bridge br, as looked up, with the network: its
// promiscuous flag must be promisc (the configuration's promiscMode), and its
// MAC wantMAC unless wantMAC is nil. Errors name the bridge and both values.
func CheckBridge(br Bridge, promisc bool, wantMAC net.HardwareAddr) error {
	if br.Promisc != promisc {
		return fmt.Errorf("bridge %q: promiscuous mode is %s, but promiscMode is %v", br.Name, onOff(br.Promisc), promisc)
	}
	if wantMAC != nil && !bytes.Equal(wantMAC, br.MAC) {
		return fmt.Errorf("bridge %q: MAC is %s, prevResult has %s", br.Name, br.MAC, wantMAC)
	}
	return nil
}

func onOff(b bool) string {
	if b {
		return "on"
	}
	return "off"
}

// CheckHostVeth verifies, in the current netns, that hostVethName exists,
// is a veth, is a port of the bridge and, unless wantMAC is nil, has wantMAC.
func CheckHostVeth(br Bridge, hostVethName string, wantMAC net.HardwareAddr) error {
	l, err := linkByName(hostVethName)
	if err != nil {
		if isNotFound(err) {
			return fmt.Errorf("host veth %q: %w", hostVethName, ErrNotFound)
		}
		return fmt.Errorf("look up host veth %q: %w", hostVethName, err)
	}
	if _, ok := l.(*netlink.Veth); !ok {
		return fmt.Errorf("host interface %q is a %s, not a veth", hostVethName, l.Type())
	}
	if l.Attrs().MasterIndex != br.Index {
		return fmt.Errorf("host veth %q is not attached to bridge %q", hostVethName, br.Name)
	}
	if wantMAC != nil && !bytes.Equal(wantMAC, l.Attrs().HardwareAddr) {
		return fmt.Errorf("host veth %q: MAC is %s, prevResult has %s", hostVethName, l.Attrs().HardwareAddr, wantMAC)
	}
	return nil
}

// CheckGatewayAddrs verifies, in the current netns, that br (read by
// BridgeByName, so with its index) holds each gateway address of gws, as
// EnsureGatewayAddrs put them there: without it, the containers have no
// gateway.
func CheckGatewayAddrs(br Bridge, gws []netip.Prefix) error {
	if len(gws) == 0 {
		return nil
	}
	have, err := addrList(br.device(), netlink.FAMILY_ALL)
	if err != nil {
		return fmt.Errorf("list addresses of bridge %q: %w", br.Name, err)
	}
	for _, gw := range gws {
		gw = normPrefix(gw)
		if !slices.ContainsFunc(have, func(a netlink.Addr) bool { p, ok := prefixOf(a.IPNet); return ok && p == gw }) {
			return fmt.Errorf("bridge %q: gateway address %s is missing (isGateway)", br.Name, gw)
		}
	}
	return nil
}
