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
// fill GW in themselves. Priority, Table and Scope are those of a CNI
// result's route: 0 leaves the kernel's default metric, the main table and
// universe scope.
type Route struct {
	Dst      netip.Prefix
	GW       netip.Addr
	Priority int
	Table    int
	Scope    int
}

func (r Route) String() string {
	s := r.Dst.String()
	if r.GW.IsValid() {
		s += " via " + r.GW.String()
	}
	if r.Priority != 0 {
		s += fmt.Sprintf(" metric %d", r.Priority)
	}
	if r.Table != 0 {
		s += fmt.Sprintf(" table %d", r.Table)
	}
	if r.Scope != 0 {
		s += fmt.Sprintf(" scope %d", r.Scope)
	}
	return s
}

func (r Route) table() int {
	if r.Table == 0 {
		return syscall.RT_TABLE_MAIN
	}
	return r.Table
}

// addRoute installs r on l, with the reference plugin's request flags
// (create, neither exclusive nor replace): a second route to the same
// destination through another gateway becomes an IPv6 multipath route, an
// IPv4 alternative. A route identical to one already present is fine.
func addRoute(l netlink.Link, r Route) error {
	nr := &netlink.Route{
		LinkIndex: l.Attrs().Index,
		Dst:       ipNet(r.Dst.Masked()),
		Scope:     netlink.Scope(r.Scope),
		Priority:  r.Priority,
		Table:     r.Table,
	}
	if r.GW.IsValid() {
		nr.Gw = r.GW.Unmap().AsSlice()
	}
	if err := netlink.RouteAddEcmp(nr); err != nil && !errors.Is(err, syscall.EEXIST) {
		return err
	}
	return nil
}

// hasRoute reports whether r's table (or, failing that, any table) holds a
// route to r.Dst through the link with index ifIndex, with r's metric when
// set and, when r.GW is set, via that gateway.
func hasRoute(ifIndex int, r Route) (bool, error) {
	found, err := hasRouteIn(ifIndex, r, r.table())
	if found || err != nil {
		return found, err
	}
	// A later chained plugin may have moved it into a table of its own
	// (sbr does, for source-based routing), which CHECK must allow.
	return hasRouteIn(ifIndex, r, syscall.RT_TABLE_UNSPEC)
}

// hasRouteIn is hasRoute in one table, or in any (RT_TABLE_UNSPEC).
func hasRouteIn(ifIndex int, r Route, table int) (bool, error) {
	fam := family(r.Dst.Addr())
	routes, err := routeListFiltered(fam, &netlink.Route{Table: table}, netlink.RT_FILTER_TABLE)
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
		if dst != want || !routeUses(got, ifIndex, r.GW) || (r.Priority != 0 && got.Priority != r.Priority) {
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
