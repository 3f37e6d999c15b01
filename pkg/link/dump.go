package link

import (
	"errors"

	"github.com/vishvananda/netlink"
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
		if !errors.Is(err, netlink.ErrDumpInterrupted) {
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

func addrList(l netlink.Link, fam int) ([]netlink.Addr, error) {
	return retryDump(func() ([]netlink.Addr, error) { return netlink.AddrList(l, fam) })
}

func routeListFiltered(fam int, filter *netlink.Route, mask uint64) ([]netlink.Route, error) {
	return retryDump(func() ([]netlink.Route, error) { return netlink.RouteListFiltered(fam, filter, mask) })
}
