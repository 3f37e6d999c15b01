// Package rtnl makes a few rtnetlink requests (deleting a link by name and
// alias, netns identity checks), and the ones github.com/vishvananda/netlink
// lacks:
// reading forwarding and per-interface IPv6 settings and writing IPv4
// per-interface settings, which would otherwise go through /proc/sys (see
// conf.go), listing one link's addresses with the kernel doing the
// filtering (addr.go), looking through a bridge's ports without reading
// them all (ports.go), and a connection kept open to act in a namespace
// without entering it again (conn.go). It imports only the standard
// library. Everything else uses vishvananda/netlink through pkg/link.
package rtnl

import (
	"errors"
	"runtime"
	"sync"
	"syscall"
)

const (
	nlmsgHdrLen   = 16 // struct nlmsghdr
	ifinfomsgLen  = 16 // struct ifinfomsg
	rtaHdrLen     = 4  // struct rtattr
	recvBufferLen = 32 << 10
)

// ErrNotFound is returned when no link has the name.
var ErrNotFound = errors.New("link not found")

// conn is one request/answer exchange with the kernel.
type conn struct {
	fd     int
	seq    uint32
	buf    []byte
	pooled *[]byte // buf's place in recvBuffers
}

func dial() (*conn, error) {
	fd, err := syscall.Socket(syscall.AF_NETLINK, syscall.SOCK_RAW|syscall.SOCK_CLOEXEC, syscall.NETLINK_ROUTE)
	if err != nil {
		return nil, wrap("netlink socket", err)
	}
	if err := syscall.Bind(fd, &syscall.SockaddrNetlink{Family: syscall.AF_NETLINK}); err != nil {
		syscall.Close(fd)
		return nil, wrap("netlink bind", err)
	}
	pooled := recvBuffers.Get().(*[]byte)
	return &conn{fd: fd, pooled: pooled, buf: *pooled}, nil
}

// close closes the socket and gives its receive buffer back: nothing read
// through a connection outlives it (answers are parsed, and what is kept
// copied, before it closes).
func (c *conn) close() {
	if c.pooled == nil {
		return // closed already
	}
	syscall.Close(c.fd)
	recvBuffers.Put(c.pooled)
	c.pooled, c.buf = nil, nil
}

// recvBuffers holds receive buffers between connections: a verb makes
// several requests, each on a connection of its own (in whichever netns its
// thread is in), and a fresh 32 KiB buffer for each was most of what an ADD
// allocated.
var recvBuffers = sync.Pool{New: func() any {
	b := make([]byte, recvBufferLen)
	return &b
}}

// withConn runs fn on a connection of its own, closed afterwards.
func withConn[T any](fn func(c *conn) (T, error)) (T, error) {
	c, err := dial()
	if err != nil {
		var zero T
		return zero, err
	}
	defer c.close()
	return fn(c)
}

// ifinfo is a struct ifinfomsg for the link with index: family AF_UNSPEC,
// flags and change 0.
func ifinfo(index int32) []byte {
	b := make([]byte, ifinfomsgLen)
	putU32(b[4:], uint32(index))
	return b
}

// request sends one message (type typ, the fixed header hdr such as an
// ifinfomsg, then the attributes in attrs, already encoded) and returns the
// payload of the answer: the RTM_NEWLINK or RTM_NEWNETCONF message's bytes
// after its netlink header, or nil for an ack.
func (c *conn) request(typ uint16, flags uint16, hdr, attrs []byte) ([]byte, error) {
	if err := c.send(typ, flags, hdr, attrs); err != nil {
		return nil, err
	}
	var data []byte
	err := c.receive(func(m syscall.NetlinkMessage) (bool, error) {
		switch m.Header.Type {
		case syscall.NLMSG_ERROR:
			return true, ackError(m)
		case syscall.RTM_NEWLINK:
			if len(m.Data) < ifinfomsgLen {
				return true, errors.New("netlink: short link message")
			}
			data = m.Data
			return true, nil
		case rtm_NEWNETCONF:
			if len(m.Data) < netconfmsgLen {
				return true, errors.New("netlink: short netconf message")
			}
			data = m.Data
			return true, nil
		}
		return false, nil
	})
	return data, err
}

// send sends one request message with the next sequence number.
func (c *conn) send(typ uint16, flags uint16, hdr, attrs []byte) error {
	c.seq++
	msg := make([]byte, nlmsgHdrLen+len(hdr)+len(attrs))
	putU32(msg[0:], uint32(len(msg)))
	putU16(msg[4:], typ)
	putU16(msg[6:], syscall.NLM_F_REQUEST|flags)
	putU32(msg[8:], c.seq)
	copy(msg[nlmsgHdrLen:], hdr)
	copy(msg[nlmsgHdrLen+len(hdr):], attrs)
	if err := syscall.Sendto(c.fd, msg, 0, &syscall.SockaddrNetlink{Family: syscall.AF_NETLINK}); err != nil {
		return wrap("netlink send", err)
	}
	return nil
}

// receive reads the answer to the last request, calling fn with each of its
// messages until fn reports the answer complete.
func (c *conn) receive(fn func(m syscall.NetlinkMessage) (done bool, err error)) error {
	for {
		n, _, err := syscall.Recvfrom(c.fd, c.buf, 0)
		if err == syscall.EINTR {
			continue
		}
		if err != nil {
			return wrap("netlink receive", err)
		}
		msgs, err := syscall.ParseNetlinkMessage(c.buf[:n])
		if err != nil {
			return wrap("netlink receive", err)
		}
		for _, m := range msgs {
			if m.Header.Seq != c.seq {
				continue // a late answer to an earlier request
			}
			if done, err := fn(m); done || err != nil {
				return err
			}
		}
	}
}

// ackError is the error an NLMSG_ERROR message carries, nil for an ack.
func ackError(m syscall.NetlinkMessage) error {
	if len(m.Data) < 4 {
		return errors.New("netlink: short error message")
	}
	if errno := -int32(getU32(m.Data)); errno != 0 {
		return syscall.Errno(errno)
	}
	return nil
}

// dumpError is the error an NLMSG_DONE message carries: a dump that failed
// on the way (its callback's errno) ends with a DONE holding it, not an
// NLMSG_ERROR, and must not be taken for a complete answer.
func dumpError(m syscall.NetlinkMessage) error {
	if len(m.Data) < 4 {
		return nil
	}
	return ackError(m)
}

// attr encodes one rtnetlink attribute: its header, the payload, padding.
func attr(typ uint16, payload []byte) []byte {
	l := rtaHdrLen + len(payload)
	b := make([]byte, (l+3)&^3)
	putU16(b[0:], uint16(l))
	putU16(b[2:], typ)
	copy(b[rtaHdrLen:], payload)
	return b
}

// stringAttr encodes one attribute holding a NUL-terminated string.
func stringAttr(typ uint16, s string) []byte { return attr(typ, append([]byte(s), 0)) }

// u32Attr encodes one attribute holding a 32-bit value.
func u32Attr(typ uint16, v uint32) []byte {
	return attr(typ, putU32(make([]byte, 4), v))
}

// eachAttr calls fn with the type (nesting flag cleared) and payload of
// every attribute in b, in order; a malformed tail ends the walk.
func eachAttr(b []byte, fn func(typ uint16, payload []byte)) {
	for len(b) >= rtaHdrLen {
		n := int(getU16(b[0:]))
		if n < rtaHdrLen || n > len(b) {
			return
		}
		fn(getU16(b[2:])&^syscall.NLA_F_NESTED, b[rtaHdrLen:n])
		b = b[min((n+3)&^3, len(b)):]
	}
}

// Link is what LinkByName reports of a link.
type Link struct {
	Index  int32
	Alias  string
	Master int32 // the index of the bridge it is a port of, 0 if none
}

// linkByName asks the kernel for the link called name in the current
// network namespace.
func (c *conn) linkByName(name string) (Link, error) {
	data, err := c.request(syscall.RTM_GETLINK, 0, ifinfo(0), stringAttr(syscall.IFLA_IFNAME, name))
	if errors.Is(err, syscall.ENODEV) {
		return Link{}, ErrNotFound
	}
	if err != nil {
		return Link{}, err
	}
	if data == nil {
		return Link{}, errors.New("netlink: no link message in the answer")
	}
	l := Link{Index: int32(getU32(data[4:8]))}
	eachAttr(data[ifinfomsgLen:], func(typ uint16, v []byte) {
		switch {
		case typ == ifla_IFALIAS:
			l.Alias = cString(v)
		case typ == syscall.IFLA_MASTER && len(v) >= 4:
			l.Master = int32(getU32(v))
		}
	})
	return l, nil
}

// ifla_IFALIAS is IFLA_IFALIAS (absent from package syscall).
const ifla_IFALIAS = 20

// LinkByName reports the index and alias of the link called name in the
// current network namespace; ErrNotFound when there is none.
func LinkByName(name string) (Link, error) {
	return withConn(func(c *conn) (Link, error) { return c.linkByName(name) })
}

// DelLinkWithAlias deletes the link called name in the current network
// namespace if its alias is alias. It reports whether it deleted it; a link
// that is missing, or that has another alias (not ours), is not an error.
func DelLinkWithAlias(name, alias string) (deleted bool, err error) {
	return withConn(func(c *conn) (bool, error) { return c.delLinkWithAlias(name, alias, 0) })
}

// DelPortWithAlias is DelLinkWithAlias for a port of the bridge with index
// master only: a link of that name and alias elsewhere is left alone.
func DelPortWithAlias(name, alias string, master int32) (deleted bool, err error) {
	return withConn(func(c *conn) (bool, error) { return c.delLinkWithAlias(name, alias, master) })
}

func (c *conn) delLinkWithAlias(name, alias string, master int32) (bool, error) {
	l, err := c.linkByName(name)
	if errors.Is(err, ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, wrap("look up "+quote(name), err)
	}
	if l.Alias != alias || (master != 0 && l.Master != master) {
		return false, nil
	}
	if _, err := c.request(syscall.RTM_DELLINK, syscall.NLM_F_ACK, ifinfo(l.Index), nil); err != nil && !errors.Is(err, syscall.ENODEV) {
		return false, wrap("delete "+quote(name), err)
	}
	return true, nil
}

// IsOwnNetNS tells whether the netns at path is the one the calling
// goroutine's thread is in (the node's, for an unlocked goroutine).
func IsOwnNetNS(path string) (bool, error) {
	var target, own syscall.Stat_t
	if err := syscall.Stat(path, &target); err != nil {
		return false, wrap("stat netns "+quote(path), err)
	}
	runtime.LockOSThread()
	err := syscall.Stat("/proc/thread-self/ns/net", &own)
	runtime.UnlockOSThread()
	if err != nil {
		return false, wrap("stat own netns", wrap("stat", err))
	}
	return target.Dev == own.Dev && target.Ino == own.Ino, nil
}
