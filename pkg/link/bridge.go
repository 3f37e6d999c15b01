package link

import (
	"errors"
	"fmt"
	"net"
	"syscall"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/flatcni/plugins/pkg/rtnl"
)

// BridgeConfig describes the node bridge EnsureBridge creates or reuses.
type BridgeConfig struct {
	Name          string
	MTU           int // 0 keeps the kernel default
	PromiscMode   bool
	VlanFiltering bool
	// DAD is the network's enabledad. Without it, a bridge made here has
	// accept_dad 0 from before it goes up, so that its IPv6 link-local
	// address is usable at once (the gateway addresses skip DAD too):
	// else, for a second or two, the node sends no neighbour solicitation
	// for IPv6 it forwards to a container (published ports, routed
	// traffic), having no usable source address on the bridge.
	DAD bool
	// Found is the bridge as the caller has just read it (BridgeByName),
	// so that EnsureBridge does not read it again; nil, and EnsureBridge
	// looks it up.
	Found *Bridge
}

// Bridge identifies a bridge device in the node namespace.
type Bridge struct {
	Name  string
	Index int
	MAC   net.HardwareAddr
	// Promisc is whether promiscuous mode is turned on for the bridge
	// itself (promiscMode, "ip link set promisc on": IFF_PROMISC in the
	// link's flags). A capture in promiscuous mode (tcpdump) only raises the
	// kernel's promiscuity count, which does not show here.
	Promisc bool
	// Up is whether the bridge is administratively up.
	Up bool
	// Created is set by EnsureBridge when it made the bridge.
	Created bool
}

// device is b as the netlink library addresses a link: by its index.
func (b Bridge) device() netlink.Link { return device(b.Index, b.Name, b.MAC) }

// device is a link known by its index (and name, for messages), as the
// netlink library's calls that act on a link take it: they use the index.
func device(index int, name string, mac net.HardwareAddr) netlink.Link {
	return &netlink.Device{LinkAttrs: netlink.LinkAttrs{Index: index, Name: name, HardwareAddr: mac}}
}

// EnsureBridge creates the bridge cfg.Name if it does not exist, or reuses
// an existing one, then turns promiscuous mode on when asked, disables
// router advertisements on it (accept_ra=0, the plugin owns its routes) and
// brings it up. An existing link of another type is an error. The MTU and
// VLAN filtering settings only apply when the bridge is created here. The
// result says whether it was (Created), also with an error from a later
// step: the caller removes the bridge it made when no port is on it (another
// ADD may have found it meanwhile).
func EnsureBridge(cfg BridgeConfig) (Bridge, error) {
	// Looked up first (or read by the caller): the bridge exists for every
	// ADD but a network's first, which then pays a second lookup. A bridge
	// the caller read is asked for its accept_ra setting by its index,
	// which also tells whether it is still there: gone (or replaced) since,
	// it is looked up again, and made again when missing.
	var br Bridge
	var err error
	raDone := false
	if cfg.Found != nil {
		br = *cfg.Found
		if raDone = disableAcceptRA(br); !raDone {
			br, err = BridgeByName(cfg.Name)
		}
	} else {
		br, err = BridgeByName(cfg.Name)
	}
	created := false
	if errors.Is(err, ErrNotFound) {
		attrs := netlink.NewLinkAttrs()
		attrs.Name = cfg.Name
		attrs.MTU = cfg.MTU
		want := &netlink.Bridge{LinkAttrs: attrs}
		if cfg.VlanFiltering {
			on := true
			want.VlanFiltering = &on
		}
		// EEXIST: a concurrent creator; the re-fetch below decides whether
		// what it made is usable.
		switch err := netlink.LinkAdd(want); {
		case err == nil:
			created = true
			if !cfg.DAD {
				// Best effort, as IPv6 may be off on the node.
				_ = writeSysctl("net/ipv6/conf/"+cfg.Name+"/accept_dad", "0")
			}
		case !errors.Is(err, syscall.EEXIST):
			return Bridge{}, fmt.Errorf("create bridge %q: %w", cfg.Name, err)
		}
		br, err = BridgeByName(cfg.Name)
	}
	failed := Bridge{Name: cfg.Name, Created: created}
	if err != nil {
		return failed, err
	}
	// The flag, not the promiscuity count: a capture running on the bridge
	// raises the count, and ends.
	if cfg.PromiscMode && !br.Promisc {
		if err := netlink.SetPromiscOn(br.device()); err != nil {
			return failed, fmt.Errorf("set promiscuous mode on bridge %q: %w", cfg.Name, err)
		}
		br.Promisc = true
	}
	if !raDone {
		disableAcceptRA(br)
	}
	if !br.Up {
		if err := netlink.LinkSetUp(br.device()); err != nil {
			return failed, fmt.Errorf("set bridge %q up: %w", cfg.Name, err)
		}
		br.Up = true
	}
	br.Created = created
	return br, nil
}

// disableAcceptRA sets the bridge's accept_ra to 0 unless it is already:
// read through netlink (see pkg/rtnl), so /proc/sys is opened in practice
// once, when the bridge is made. Best effort, as IPv6 may be off on the node.
// It reports false when no link has br's index any more (nothing is
// written then).
func disableAcceptRA(br Bridge) bool {
	ra, err := rtnl.IPv6Conf(int32(br.Index), rtnl.IPv6AcceptRA)
	switch {
	case errors.Is(err, syscall.ENODEV):
		return false
	case errors.Is(err, rtnl.ErrNoIPv6) || err == nil && ra == 0:
		return true
	}
	_ = writeSysctl("net/ipv6/conf/"+br.Name+"/accept_ra", "0")
	return true
}

// BridgeByName looks up an existing bridge. A missing link yields an error
// matching ErrNotFound; a link of another type is an error naming its type.
func BridgeByName(name string) (Bridge, error) {
	br, err := bridgeLink(name)
	if err != nil {
		return Bridge{}, err
	}
	return bridgeFrom(br), nil
}

func bridgeLink(name string) (*netlink.Bridge, error) {
	l, err := linkByName(name)
	if err != nil {
		if isNotFound(err) {
			return nil, fmt.Errorf("bridge %q: %w", name, ErrNotFound)
		}
		return nil, fmt.Errorf("look up bridge %q: %w", name, err)
	}
	br, ok := l.(*netlink.Bridge)
	if !ok {
		return nil, fmt.Errorf("link %q %w (type %s)", name, ErrNotBridge, l.Type())
	}
	return br, nil
}

func bridgeFrom(br *netlink.Bridge) Bridge {
	a := br.Attrs()
	return Bridge{Name: a.Name, Index: a.Index, MAC: a.HardwareAddr, Promisc: a.RawFlags&unix.IFF_PROMISC != 0, Up: a.Flags&net.FlagUp != 0}
}
