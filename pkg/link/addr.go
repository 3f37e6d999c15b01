package link

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"syscall"

	"github.com/vishvananda/netlink"
)

// EnsureGatewayAddrs puts each gateway address (gateway IP with the subnet's
// prefix length) on the bridge. An address already present is left alone.
// IPv6 addresses are added with duplicate address detection only when dad
// is set (the network's enabledad), as the container's are.
//
// Conflicts follow the reference plugin: any other IPv4 address on the
// bridge, or an IPv6 address whose subnet overlaps the gateway's, conflicts.
// Without force a conflict is an error naming both addresses; with force the
// conflicting address is removed. Addresses listed in gws never conflict with
// each other.
// Once something was added, the bridge MAC is pinned to br.MAC (its value
// when br was read) so it no longer follows the lowest port MAC.
//
// It returns the subnets of the other global addresses it found on the
// bridge and left there: IPv6 gateways of subnets that gws no longer name
// (a range moved to another subnet keeps its old gateway, which the
// containers attached before still use), and the addresses of a family gws
// has none of (dropped from the configuration), read from the listing the
// conflict check makes anyway.
func EnsureGatewayAddrs(br Bridge, gws []netip.Prefix, force, dad bool) (others []netip.Prefix, err error) {
	if len(gws) == 0 {
		return nil, nil
	}
	// Usually the bridge; for a VLAN network, the VLAN's gateway veth.
	// Addressed by the index it was read with, else looked up.
	l := br.device()
	if br.Index == 0 {
		var err error
		if l, err = linkByName(br.Name); err != nil {
			if isNotFound(err) {
				return nil, fmt.Errorf("gateway device %q: %w", br.Name, ErrNotFound)
			}
			return nil, fmt.Errorf("look up gateway device %q: %w", br.Name, err)
		}
	}
	wanted := make(map[netip.Prefix]bool, len(gws))
	families := map[int]bool{}
	for _, gw := range gws {
		wanted[normPrefix(gw)] = true
		families[family(gw.Addr())] = true
	}
	// One dump for every family: what a gateway's removal of conflicts
	// changes is of its own family only.
	existing, err := addrList(l, netlink.FAMILY_ALL)
	if err != nil {
		return nil, fmt.Errorf("list addresses of bridge %q: %w", br.Name, err)
	}
	keep := func(p netip.Prefix) {
		if !slices.Contains(others, p) {
			others = append(others, p)
		}
	}
	added := false
	for _, gw := range gws {
		gw = normPrefix(gw)
		did, found, err := ensureGatewayAddr(l, gw, existing, wanted, force, dad)
		if err != nil {
			return nil, err
		}
		added = added || did
		for _, p := range found {
			keep(p)
		}
	}
	// The global addresses of a family no gateway is asked for (dropped
	// from the configuration) stay, as the gateways of the containers
	// attached before.
	for _, a := range existing {
		if p, ok := prefixOf(a.IPNet); ok && !families[family(p.Addr())] && p.Addr().IsGlobalUnicast() {
			keep(p.Masked())
		}
	}
	// Pinned to the MAC br was read with (EnsureBridge, before this
	// attachment's port joined), as the reference pins the MAC it read
	// then: a new bridge keeps the MAC it was made with (and its
	// link-local address stays the one derived from it) rather than
	// taking the first container's host veth MAC.
	mac := br.MAC
	if len(mac) == 0 {
		mac = l.Attrs().HardwareAddr
	}
	if added && len(mac) != 0 {
		if err := netlink.LinkSetHardwareAddr(l, mac); err != nil {
			return nil, fmt.Errorf("pin MAC of bridge %q: %w", br.Name, err)
		}
	}
	return others, nil
}

// ensureGatewayAddr puts gw on l (see EnsureGatewayAddrs; existing: l's
// addresses) and returns whether it added it, and the subnets of the other
// global addresses of its family that stay on l (none wanted, none in
// conflict).
func ensureGatewayAddr(l netlink.Link, gw netip.Prefix, existing []netlink.Addr, wanted map[netip.Prefix]bool, force, dad bool) (added bool, others []netip.Prefix, err error) {
	name := l.Attrs().Name
	fam := family(gw.Addr())
	present := false
	var conflicts []netlink.Addr
	for _, a := range existing {
		p, ok := prefixOf(a.IPNet)
		if !ok || family(p.Addr()) != fam {
			continue
		}
		switch {
		case p == gw:
			present = true
		case wanted[p]:
		case fam == netlink.FAMILY_V4 || p.Overlaps(gw):
			conflicts = append(conflicts, a)
		case p.Addr().IsGlobalUnicast():
			others = append(others, p.Masked())
		}
	}
	if present {
		return false, others, nil
	}
	for _, a := range conflicts {
		p, _ := prefixOf(a.IPNet)
		if !force {
			return false, nil, fmt.Errorf("bridge %q already has address %s, different from gateway %s", name, p, gw)
		}
		if err := netlink.AddrDel(l, &a); err != nil && !errors.Is(err, syscall.EADDRNOTAVAIL) {
			return false, nil, fmt.Errorf("remove address %s from bridge %q: %w", p, name, err)
		}
	}
	err = addAddr(l, gw, dad)
	if errors.Is(err, syscall.EACCES) && fam == netlink.FAMILY_V6 {
		// IPv6 is off on the device (net.ipv6.conf.default.disable_ipv6
		// was 1 when it was made): on, as the container's interface is,
		// since the network has IPv6 addresses.
		if serr := setSysctl("net/ipv6/conf/"+name+"/disable_ipv6", "0"); serr != nil {
			return false, nil, fmt.Errorf("add gateway %s to bridge %q: IPv6 is disabled there, and turning it on failed: %w", gw, name, serr)
		}
		err = addAddr(l, gw, dad)
	}
	if err != nil {
		return false, nil, fmt.Errorf("add gateway %s to bridge %q: %w", gw, name, err)
	}
	return true, others, nil
}

// addAddr adds p to l; an identical address already present is fine. IPv6
// addresses skip duplicate address detection unless dad is set.
func addAddr(l netlink.Link, p netip.Prefix, dad bool) error {
	a := &netlink.Addr{IPNet: ipNet(p)}
	if !p.Addr().Unmap().Is4() && !dad {
		a.Flags = syscall.IFA_F_NODAD
	}
	if err := netlink.AddrAdd(l, a); err != nil && !errors.Is(err, syscall.EEXIST) {
		return err
	}
	return nil
}

// normPrefix unmaps 4-in-6 addresses so comparisons with kernel data work.
func normPrefix(p netip.Prefix) netip.Prefix {
	a := p.Addr()
	if a.Is4In6() {
		bits := p.Bits() - 96
		if bits < 0 {
			bits = 0
		}
		return netip.PrefixFrom(a.Unmap(), bits)
	}
	return p
}

// ForgetNeighbours deletes dev's neighbour entries (ARP, NDP) of addrs,
// best effort: the node's entry of an address a container had before (a
// container added again with the same address and another MAC) would send
// it elsewhere until the entry went stale, 20-30 s, while the new
// container's own announcement, made as its interface came up, reaches
// no one (its host end joins the bridge after that). It reports whether
// it deleted one: the address was another MAC's recently.
func ForgetNeighbours(dev Bridge, addrs []netip.Addr) (forgot bool) {
	if dev.Index == 0 {
		return false
	}
	for _, a := range addrs {
		n := &netlink.Neigh{LinkIndex: dev.Index, Family: family(a), IP: a.Unmap().AsSlice()}
		forgot = netlink.NeighDel(n) == nil || forgot
	}
	return forgot
}
