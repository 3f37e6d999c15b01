package l2

import (
	"errors"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netlink/nl"
)

// dumpAttempts bounds the retries of a netlink dump that the kernel reported
// as interrupted (the dumped table changed meanwhile).
const dumpAttempts = 5

// linkByName looks a link up, retrying an interrupted dump.
func linkByName(name string) (netlink.Link, error) {
	var link netlink.Link
	var err error
	for range dumpAttempts {
		link, err = netlink.LinkByName(name)
		if !errors.Is(err, netlink.ErrDumpInterrupted) {
			break
		}
	}
	return link, err
}

// bridgeVlanList lists the VLANs of every bridge port, retrying an
// interrupted dump.
func bridgeVlanList() (map[int32][]*nl.BridgeVlanInfo, error) {
	var vlans map[int32][]*nl.BridgeVlanInfo
	var err error
	for range dumpAttempts {
		vlans, err = netlink.BridgeVlanList()
		if !errors.Is(err, netlink.ErrDumpInterrupted) {
			break
		}
	}
	return vlans, err
}
