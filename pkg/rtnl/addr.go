package rtnl

import (
	"errors"
	"syscall"
)

// Addr is one address of a link, as the kernel reports it.
type Addr struct {
	Family    uint8  // AF_INET or AF_INET6
	PrefixLen uint8  // the prefix length
	Flags     uint32 // IFA_F_*
	Scope     uint8  // RT_SCOPE_*
	IP        []byte // 4 or 16 bytes: the local address
}

// ErrDumpInterrupted is returned when the kernel's table (addresses, links) changed
// during the dump; asking again gives a consistent answer.
var ErrDumpInterrupted = errors.New("netlink: dump interrupted")

const (
	sol_NETLINK            = 270 // SOL_NETLINK
	netlink_GET_STRICT_CHK = 12  // NETLINK_GET_STRICT_CHK
	ifaddrmsgLen           = 8   // struct ifaddrmsg
	ifa_FLAGS              = 8   // IFA_FLAGS
	nlm_F_DUMP_INTR        = 0x10
)

// Addrs lists the addresses of family (AF_INET, AF_INET6, or AF_UNSPEC for
// both) on the link with index, in the current network namespace.
//
// The kernel is asked to dump that link's addresses only (strict checking,
// Linux 4.20 and later): github.com/vishvananda/netlink asks for every
// address of the namespace and filters them itself, and the kernel then walks
// every link, a cost that grows with the number of bridge ports on a node.
// Older kernels ignore the filter; the answers are filtered here as well.
func Addrs(index int32, family uint8) ([]Addr, error) {
	return withConn(func(c *conn) ([]Addr, error) { return c.addrs(index, family) })
}

func (c *conn) addrs(index int32, family uint8) ([]Addr, error) {
	var out []Addr
	interrupted := false
	err := c.dumpAddrs(index, family, func(typ, flags uint16, data []byte) {
		if flags&nlm_F_DUMP_INTR != 0 {
			interrupted = true
		}
		if typ != syscall.RTM_NEWADDR || len(data) < ifaddrmsgLen {
			return
		}
		if int32(getU32(data[4:])) != index || family != syscall.AF_UNSPEC && data[0] != family {
			return
		}
		a := Addr{Family: data[0], PrefixLen: data[1], Flags: uint32(data[2]), Scope: data[3]}
		var local, address []byte
		eachAttr(data[ifaddrmsgLen:], func(typ uint16, v []byte) {
			switch typ {
			case syscall.IFA_LOCAL:
				local = v
			case syscall.IFA_ADDRESS:
				address = v
			case ifa_FLAGS:
				if len(v) >= 4 {
					a.Flags = getU32(v)
				}
			}
		})
		// IPv4 reports the local address in IFA_LOCAL (IFA_ADDRESS is the
		// peer's on point-to-point links); IPv6 only in IFA_ADDRESS.
		if local == nil {
			local = address
		}
		if len(local) != 4 && len(local) != 16 {
			return
		}
		a.IP = append([]byte(nil), local...)
		out = append(out, a)
	})
	if errors.Is(err, syscall.ENODEV) {
		// A missing link (strict checking ends the dump with it): no
		// addresses, as older kernels, which ignore the filter, answer.
		return nil, nil
	}
	if err == nil && interrupted {
		err = ErrDumpInterrupted
	}
	return out, err
}

// dumpAddrs asks for the addresses of family on the link with index only.
func (c *conn) dumpAddrs(index int32, family uint8, fn func(typ, flags uint16, data []byte)) error {
	// Best effort: without strict checking the dump covers every link.
	_ = syscall.SetsockoptInt(c.fd, sol_NETLINK, netlink_GET_STRICT_CHK, 1)
	hdr := make([]byte, ifaddrmsgLen)
	hdr[0] = family
	putU32(hdr[4:], uint32(index))
	return c.dump(syscall.RTM_GETADDR, hdr, fn)
}

// dump sends one dump request and calls fn with the type, flags and payload
// of every message of the answer; NLMSG_DONE's flags are passed on too (with
// no payload), for NLM_F_DUMP_INTR.
func (c *conn) dump(typ uint16, hdr []byte, fn func(typ, flags uint16, data []byte)) error {
	if err := c.send(typ, syscall.NLM_F_DUMP, hdr, nil); err != nil {
		return err
	}
	return c.receive(func(m syscall.NetlinkMessage) (bool, error) {
		switch m.Header.Type {
		case syscall.NLMSG_DONE:
			fn(m.Header.Type, m.Header.Flags, nil)
			return true, dumpError(m)
		case syscall.NLMSG_ERROR:
			return true, ackError(m)
		}
		fn(m.Header.Type, m.Header.Flags, m.Data)
		return false, nil
	})
}
