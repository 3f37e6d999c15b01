package link

import (
	"errors"
	"fmt"
	"net/netip"
	"syscall"

	"github.com/vishvananda/netlink"
)

// Route is a route through the container interface. A zero GW means the
// destination is on-link. Callers wanting the reference plugin's behaviour
// of defaulting a route's gateway to the address family's IPAM gateway must
// fill GW in themselves.
type Route struct {
	Dst netip.Prefix
	GW  netip.Addr
}

func (r Route) String() string {
	if r.GW.IsValid() {
		return fmt.Sprintf("%s via %s", r.Dst, r.GW)
	}
	return r.Dst.String()
}

// addRoute installs r on l in the main table; an identical route already
// present is fine.
func addRoute(l netlink.Link, r Route) error {
	nr := &netlink.Route{
		LinkIndex: l.Attrs().Index,
		Dst:       ipNet(r.Dst.Masked()),
		Scope:     netlink.SCOPE_UNIVERSE,
	}
	if r.GW.IsValid() {
		nr.Gw = r.GW.Unmap().AsSlice()
	}
	if err := netlink.RouteAdd(nr); err != nil && !errors.Is(err, syscall.EEXIST) {
		return err
	}
	return nil
}

// hasRoute reports whether the main table holds a route to r.Dst through
// the link with index ifIndex and, when r.GW is set, via that gateway.
func hasRoute(ifIndex int, r Route) (bool, error) {
	fam := family(r.Dst.Addr())
	filter := &netlink.Route{Table: syscall.RT_TABLE_MAIN}
	routes, err := routeListFiltered(fam, filter, netlink.RT_FILTER_TABLE)
	if err != nil {
		return false, err
	}
	want := normPrefix(r.Dst).Masked()
	for _, got := range routes {
		dst := netip.PrefixFrom(netip.IPv4Unspecified(), 0)
		if fam == netlink.FAMILY_V6 {
			dst = netip.PrefixFrom(netip.IPv6Unspecified(), 0)
		}
		if got.Dst != nil {
			p, ok := prefixOf(got.Dst)
			if !ok {
				continue
			}
			dst = p.Masked()
		}
		if dst != want || !routeUses(got, ifIndex, r.GW) {
			continue
		}
		return true, nil
	}
	return false, nil
}

// routeUses reports whether route (or one of its multipath hops) goes out
// through ifIndex, via gw when gw is set.
func routeUses(route netlink.Route, ifIndex int, gw netip.Addr) bool {
	match := func(idx int, via []byte) bool {
		if idx != ifIndex {
			return false
		}
		if !gw.IsValid() {
			return true
		}
		a, ok := netip.AddrFromSlice(via)
		return ok && a.Unmap() == gw.Unmap()
	}
	if match(route.LinkIndex, route.Gw) {
		return true
	}
	for _, hop := range route.MultiPath {
		if match(hop.LinkIndex, hop.Gw) {
			return true
		}
	}
	return false
}
