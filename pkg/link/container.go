package link

import (
	"fmt"
	"net/netip"
	"syscall"
	"time"

	"github.com/containernetworking/plugins/pkg/ns"
	"github.com/vishvananda/netlink"
)

const (
	// dadTimeout bounds the wait for IPv6 addresses to leave the
	// tentative state.
	dadTimeout = 5 * time.Second
	// dadPoll is the interval between checks while waiting.
	dadPoll = 20 * time.Millisecond
)

// ConfigureContainer configures cont, the container end SetupVeth returned
// (or one named by Name and Sandbox), inside its netns: the reference
// plugin's sysctls (arp_notify, accept_dad, and for IPv6 disable_ipv6=0 on
// lo and the interface plus keep_addr_on_down=1), the addresses (IPv6
// without DAD unless enableDAD), link up, a wait until no IPv6 address is
// tentative, then the routes. IPv6 is usable when it returns. Then it puts
// back the MLD settings SetupVeth changed for DeferAttach (mld.go). With
// announce, last, it opens in the netns what the Announcer it returns needs
// to announce the addresses from the interface later (announce.go); nil
// when it could not (best effort) or without announce.
func ConfigureContainer(cont Interface, addrs []netip.Prefix, routes []Route, enableDAD, announce bool) (*Announcer, error) {
	var ann *Announcer
	err := inNetNS(cont.Sandbox, func(ns.NetNS) error {
		l, err := configureIface(cont, addrs, routes, enableDAD)
		if err == nil {
			if err = cont.mld.restore(); err != nil {
				err = fmt.Errorf("put back MLD settings: %w", err)
			}
		}
		if err != nil {
			return fmt.Errorf("%s in %s: %w", cont.Name, cont.Sandbox, err)
		}
		if announce {
			ann = openAnnouncer(l.Attrs().Index, l.Attrs().HardwareAddr, addrs)
		}
		return nil
	})
	return ann, err
}

// configureIface configures the interface and returns it.
func configureIface(cont Interface, addrs []netip.Prefix, routes []Route, enableDAD bool) (netlink.Link, error) {
	// Addressed by the index SetupVeth returned, else looked up.
	ifName := cont.Name
	l := device(cont.Index, ifName, cont.MAC)
	if cont.Index == 0 {
		var err error
		if l, err = linkByName(ifName); err != nil {
			return nil, fmt.Errorf("look up interface: %w", err)
		}
	}
	// DAD and ARP settings were made by SetupVeth on the fresh interface.

	hasV6 := false
	for _, p := range addrs {
		if !p.Addr().Unmap().Is4() {
			hasV6 = true
		}
	}
	if hasV6 {
		for _, dev := range []string{"lo", ifName} {
			if err := setSysctl("net/ipv6/conf/"+dev+"/disable_ipv6", "0"); err != nil {
				return nil, fmt.Errorf("enable IPv6: %w", err)
			}
		}
		if err := setSysctl("net/ipv6/conf/"+ifName+"/keep_addr_on_down", "1"); err != nil {
			return nil, fmt.Errorf("keep addresses on down: %w", err)
		}
	}
	for _, p := range addrs {
		if err := addAddr(l, normPrefix(p), enableDAD); err != nil {
			return nil, fmt.Errorf("add address %s: %w", p, err)
		}
	}
	if err := netlink.LinkSetUp(l); err != nil {
		return nil, fmt.Errorf("set up: %w", err)
	}
	if hasV6 {
		if err := settleV6(l); err != nil {
			return nil, err
		}
	}
	for _, r := range routes {
		if err := addRoute(l, r); err != nil {
			return nil, fmt.Errorf("add route %s: %w", r, err)
		}
	}
	return l, nil
}

// settleV6 waits until no IPv6 address on l is tentative. A failed DAD is
// an error; so is a timeout while the link is operationally up (with no
// carrier DAD cannot finish, which is not this call's failure).
func settleV6(l netlink.Link) error {
	deadline := time.Now().Add(dadTimeout)
	for {
		list, err := addrList(l, netlink.FAMILY_V6)
		if err != nil {
			return fmt.Errorf("list IPv6 addresses: %w", err)
		}
		tentative := false
		for _, a := range list {
			if a.Flags&syscall.IFA_F_DADFAILED != 0 {
				return fmt.Errorf("address %s failed duplicate address detection", a.IPNet)
			}
			if a.Flags&syscall.IFA_F_TENTATIVE != 0 {
				tentative = true
			}
		}
		if !tentative {
			return nil
		}
		if time.Now().After(deadline) {
			cur, err := netlink.LinkByIndex(l.Attrs().Index)
			if err == nil && cur.Attrs().OperState != netlink.OperUp {
				return nil
			}
			return fmt.Errorf("IPv6 addresses still tentative after %s", dadTimeout)
		}
		time.Sleep(dadPoll)
	}
}
