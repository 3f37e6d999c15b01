package link

import (
	"errors"
	"fmt"
	"net"
	"net/netip"

	"golang.org/x/sys/unix"

	"github.com/flatcni/plugins/pkg/rtnl"
)

// Why ADD announces the container's addresses itself.
//
// A container added with an address another container had before (a runtime
// keeping a container's address: CNI_ARGS IP=, runtimeConfig ips; a lease
// handed out again) has a new MAC, and the other containers of the bridge
// that talked to the old one hold the old MAC in their neighbour entries:
// the new one is unreachable from them until an entry goes stale and its
// probes fail, up to 45 s and more. Nothing the container's kernel sends by
// itself tells them: its interface comes up (SetupVeth) before it has
// addresses, and the gratuitous ARP of arp_notify goes out when it comes
// up; with IPAM its port joins the bridge only once it is configured
// (DeferAttach) anyway. (The reference plugin brings the interface up with
// its addresses, and its gratuitous ARP reaches the host end but not the
// other ports: the port joined the bridge without carrier, and the bridge
// forwards from it only once the kernel has handled the carrier change, in
// a worker, after. Checked with v1.9.1: the other containers keep the old
// MAC there too.) So once the port is on the bridge and the addresses are
// configured, the caller has the container's interface announce them
// (Announcer), without entering the container's namespace a second time:
// what that needs is opened while ConfigureContainer is in it, and sockets
// keep their namespace. (Our container end has had carrier since
// SetupVeth, before it is configured: the kernel has normally handled that
// when the port joins, which then forwards at once.)
//
// IPv4: the kernel's own gratuitous ARP. A request setting the interface's
// broadcast address to what it is makes the kernel announce a change of
// the link's addresses (NETDEV_CHANGEADDR), on which, with arp_notify
// (which SetupVeth sets), it sends a gratuitous ARP for each IPv4 address:
// the reference's packet, from the same code. The request goes on a netlink
// socket opened in the container. The other effects of that event in the
// container: its neighbour entries on the interface are flushed and its
// routing cache is invalidated (a fresh interface has nothing in either),
// and listeners in the container get an RTM_NEWLINK. A packet socket, which
// would send a frame made here, is not used: its close waits for an RCU
// grace period (synchronize_net in packet_release): milliseconds of every
// ADD on a kernel without rcu_expedited (40-60 us here, with it), where a
// netlink socket's close costs a few microseconds.
//
// IPv6: an unsolicited neighbour advertisement for each IPv6 address but
// link-local ones, to all nodes, with the override flag and the
// interface's MAC as target link-layer address, from the address itself,
// hop limit 255: what the kernel sends with ndisc_notify, which neither
// the reference nor flatcni sets. A neighbour that holds an entry for the
// address takes the new MAC (RFC 4861 7.2.5); one that holds none makes
// none. The router flag is clear, as the kernel's is in a fresh container
// (forwarding off). It goes on a raw ICMPv6 socket opened in the
// container (the kernel computes the checksum); it receives nothing.

// Announcer tells the hosts on the link of a container's interface the
// interface's MAC for each of its addresses (see above); made by
// ConfigureContainer.
type Announcer struct {
	index int
	mac   net.HardwareAddr
	arp   *rtnl.Conn // IPv4 addresses: nil for none
	nd    int        // raw ICMPv6 socket for v6: -1 for none
	v6    []netip.Addr
}

// ethernetBroadcast is the broadcast address of an Ethernet link, a
// veth's included.
var ethernetBroadcast = []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}

// ip6AllNodes is ff02::1.
var ip6AllNodes = netip.MustParseAddr("ff02::1").As16()

// openAnnouncer opens, in the current network namespace, what Announce
// needs to announce addrs on the Ethernet interface (index, mac). Best
// effort: nil when there is nothing to announce or nothing could be
// opened.
func openAnnouncer(index int, mac net.HardwareAddr, addrs []netip.Prefix) *Announcer {
	if len(mac) != len(ethernetBroadcast) || index <= 0 {
		return nil
	}
	a := &Announcer{index: index, mac: mac, nd: -1}
	v4 := false
	for _, p := range addrs {
		switch ip := p.Addr().Unmap(); {
		case ip.Is4():
			v4 = true
		case ip.Is6() && !ip.IsLinkLocalUnicast() && !ip.IsMulticast() && !ip.IsUnspecified():
			a.v6 = append(a.v6, ip)
		}
	}
	if v4 {
		a.arp, _ = rtnl.Dial()
	}
	if len(a.v6) > 0 {
		a.nd, _ = openNDSocket()
	}
	if a.arp == nil && a.nd < 0 {
		return nil
	}
	return a
}

// openNDSocket opens a raw ICMPv6 socket that sends multicast with hop
// limit 255, does not loop it back, and receives nothing.
func openNDSocket() (int, error) {
	fd, err := unix.Socket(unix.AF_INET6, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.IPPROTO_ICMPV6)
	if err != nil {
		return -1, err
	}
	var none unix.ICMPv6Filter // a set bit blocks its type
	for i := range none.Data {
		none.Data[i] = ^uint32(0)
	}
	err = unix.SetsockoptICMPv6Filter(fd, unix.SOL_ICMPV6, unix.ICMPV6_FILTER, &none)
	if err == nil {
		err = unix.SetsockoptInt(fd, unix.IPPROTO_IPV6, unix.IPV6_MULTICAST_HOPS, 255)
	}
	if err == nil {
		err = unix.SetsockoptInt(fd, unix.IPPROTO_IPV6, unix.IPV6_MULTICAST_LOOP, 0)
	}
	if err != nil {
		unix.Close(fd)
		return -1, err
	}
	return fd, nil
}

// Announce sends the announcements, then closes a; nil-safe. It tries each
// and returns what failed.
func (a *Announcer) Announce() error {
	if a == nil {
		return nil
	}
	defer a.Close()
	var errs []error
	if a.arp != nil {
		if err := a.arp.SetBroadcast(int32(a.index), ethernetBroadcast); err != nil {
			errs = append(errs, fmt.Errorf("gratuitous ARP: %w", err))
		}
	}
	if a.nd >= 0 {
		to := &unix.SockaddrInet6{Addr: ip6AllNodes, ZoneId: uint32(a.index)}
		for _, ip := range a.v6 {
			from := unix.PktInfo6(&unix.Inet6Pktinfo{Addr: ip.As16(), Ifindex: uint32(a.index)})
			if err := unix.Sendmsg(a.nd, neighbourAdvert(ip, a.mac), from, to, 0); err != nil {
				errs = append(errs, fmt.Errorf("neighbour advertisement of %s: %w", ip, err))
			}
		}
	}
	return errors.Join(errs...)
}

// Close releases what a holds without sending; nil-safe, and a second
// Close does nothing.
func (a *Announcer) Close() {
	if a == nil {
		return
	}
	a.arp.Close()
	a.arp = nil
	if a.nd >= 0 {
		unix.Close(a.nd)
		a.nd = -1
	}
}

// ICMPv6 neighbour advertisement (RFC 4861 4.4).
const (
	icmp6NeighbourAdvert = 136
	naOverride           = 0x20 // the O flag, in the first byte of the flags
	ndOptTargetLLAddr    = 2
	naLen                = 4 + 4 + 16 + 8 // header, flags, target, one option of 8 bytes
)

// neighbourAdvert is an unsolicited neighbour advertisement of target at
// mac (Ethernet), override set; the checksum is left to the kernel.
func neighbourAdvert(target netip.Addr, mac net.HardwareAddr) []byte {
	b := make([]byte, naLen)
	b[0] = icmp6NeighbourAdvert
	b[4] = naOverride
	t := target.As16()
	copy(b[8:24], t[:])
	b[24], b[25] = ndOptTargetLLAddr, 1 // length in units of 8 bytes
	copy(b[26:32], mac)
	return b
}
