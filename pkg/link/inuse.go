package link

import (
	"errors"
	"fmt"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netlink/nl"
	"golang.org/x/sys/unix"

	"github.com/flatcni/plugins/pkg/rtnl"
)

// BridgeInUse reports whether the bridge has at least one attached port,
// up or down: a container may have set its interface down, its attachment is
// still there. A bridge with carrier and operationally up has a forwarding
// port, which answers at once (one request, whatever the number of ports); only a bridge without
// carrier costs a netlink dump, filtered by the kernel to the bridge's ports
// (each reply is checked too, in case the kernel ignores the filter). A
// missing bridge is not in use, nor is one whose name another kind of link
// took since (DEL and GC, which ask, must not fail for ever on it).
func BridgeInUse(name string) (bool, error) {
	br, err := bridgeLink(name)
	if errors.Is(err, ErrNotFound) || errors.Is(err, ErrNotBridge) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	// Carrier alone is not enough: a bridge that never had a port has
	// carrier too, in operational state "unknown"; a forwarding port makes
	// it "up".
	if br.Attrs().RawFlags&unix.IFF_LOWER_UP != 0 && br.Attrs().OperState == netlink.OperUp {
		return true, nil
	}
	idx := br.Attrs().Index
	return anyPort(name, idx, func(m []byte) bool {
		if len(m) < unix.SizeofIfInfomsg {
			return false
		}
		attrs, err := nl.ParseRouteAttr(m[unix.SizeofIfInfomsg:])
		if err != nil {
			return false
		}
		for _, a := range attrs {
			if a.Attr.Type == unix.IFLA_MASTER && len(a.Value) >= 4 && nl.NativeEndian().Uint32(a.Value[:4]) == uint32(idx) {
				return true
			}
		}
		return false
	})
}

// BridgeHasContainers reports whether a container is attached to the bridge:
// a port that is a host veth ("veth" and eight hex digits, ours or the
// reference's) whose peer is in another network namespace, up or down. Other
// ports do not count: an uplink, a VLAN's gateway pair, a veth never handed
// over or whose peer is gone. It is what tells a network's last DEL that its
// rules can go, where BridgeInUse (any port) tells whether the bridge itself
// can. A missing bridge, or a link of another kind under its name, has none.
// The ports are found by a netlink dump filtered by the kernel to the
// bridge's (each reply checked too).
func BridgeHasContainers(name string) (bool, error) {
	br, err := bridgeLink(name)
	if errors.Is(err, ErrNotFound) || errors.Is(err, ErrNotBridge) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	idx := br.Attrs().Index
	return anyPort(name, idx, func(m []byte) bool {
		l, err := netlink.LinkDeserialize(nil, m)
		if err != nil {
			return false
		}
		a := l.Attrs()
		_, veth := l.(*netlink.Veth)
		return veth && a.MasterIndex == idx && a.NetNsID >= 0 && isHostVethName(a.Name)
	})
}

// anyPort reports whether match holds for a link message of the dump of
// the ports of the bridge with index idx (filtered by the kernel; match
// checks the master too, in case the kernel ignores the filter); it stops
// at the first, leaving the rest of the dump unread (rtnl.AnyPort: a DEL
// among 1,000 containers reads a few ports, not all of them). A dump
// interrupted to the end (the ports kept changing) counts as a match: what
// depends on it (the network's rules, the bridge) stays for a later DEL or
// GC rather than go under a container.
func anyPort(name string, idx int, match func(m []byte) bool) (bool, error) {
	found, err := retryDump(func() (bool, error) { return rtnl.AnyPort(int32(idx), match) })
	if errors.Is(err, rtnl.ErrDumpInterrupted) {
		return true, nil
	}
	if err != nil {
		return false, fmt.Errorf("list ports of bridge %q: %w", name, err)
	}
	return found, nil
}

// UnattachedVeth reports whether a veth made after the link with index
// after (a larger index: the kernel counts up), whose alias ours says is
// ours, is a port of no bridge (see pkg/bridge's use: an ADD between the
// creation of its host veth and its attach). An interrupted dump counts as
// one.
func UnattachedVeth(ours func(alias string) bool, after int) (bool, error) {
	found, err := retryDump(func() (bool, error) {
		return rtnl.AnyUnattachedVeth(func(index int32, alias string) bool { return int(index) > after && ours(alias) })
	})
	if errors.Is(err, rtnl.ErrDumpInterrupted) {
		return true, nil
	}
	if err != nil {
		return false, fmt.Errorf("list veths: %w", err)
	}
	return found, nil
}
