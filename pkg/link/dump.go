package link

import (
	"errors"
	"net"

	"github.com/vishvananda/netlink"

	"github.com/flatcni/plugins/pkg/rtnl"
)

// dumpAttempts bounds retries of netlink dumps that the kernel interrupted
// because the table changed underneath them.
const dumpAttempts = 5

// retryDump runs f again while it reports an interrupted dump; the last
// interrupted result is returned as an error rather than used half-read.
func retryDump[T any](f func() (T, error)) (T, error) {
	var (
		v   T
		err error
	)
	for range dumpAttempts {
		v, err = f()
		if !errors.Is(err, netlink.ErrDumpInterrupted) && !errors.Is(err, rtnl.ErrDumpInterrupted) {
			return v, err
		}
	}
	return v, err
}

func linkByName(name string) (netlink.Link, error) {
	return retryDump(func() (netlink.Link, error) { return netlink.LinkByName(name) })
}

func linkList() ([]netlink.Link, error) {
	return retryDump(netlink.LinkList)
}

// addrList lists l's addresses of family fam (netlink.FAMILY_ALL, _V4, _V6)
// in the current netns. The kernel dumps l's addresses only (see
// rtnl.Addrs), not every address of the netns: on a node, that would walk
// every bridge port.
func addrList(l netlink.Link, fam int) ([]netlink.Addr, error) {
	idx := int32(l.Attrs().Index)
	list, err := retryDump(func() ([]rtnl.Addr, error) { return rtnl.Addrs(idx, uint8(fam)) })
	if err != nil {
		return nil, err
	}
	out := make([]netlink.Addr, 0, len(list))
	for _, a := range list {
		out = append(out, netlink.Addr{
			IPNet:     &net.IPNet{IP: net.IP(a.IP), Mask: net.CIDRMask(int(a.PrefixLen), 8*len(a.IP))},
			Flags:     int(a.Flags),
			Scope:     int(a.Scope),
			LinkIndex: int(idx),
		})
	}
	return out, nil
}

func routeListFiltered(fam int, filter *netlink.Route, mask uint64) ([]netlink.Route, error) {
	return retryDump(func() ([]netlink.Route, error) { return netlink.RouteListFiltered(fam, filter, mask) })
}
