package rtnl

import "syscall"

// Conn is a netlink connection kept open between requests. Its socket
// belongs to the network namespace of the thread that opened it, and its
// requests act on that namespace from whichever thread makes them later:
// a caller that leaves a container's namespace keeps a way to act in it
// without entering it again. Closing it costs no RCU grace period (the
// kernel frees a netlink socket after one, in the background), unlike a
// packet socket's close, which waits for one.
type Conn struct{ c *conn }

// Dial opens a Conn in the current network namespace.
func Dial() (*Conn, error) {
	c, err := dial()
	if err != nil {
		return nil, err
	}
	return &Conn{c}, nil
}

// Close closes the connection; nil-safe, and a second Close does nothing.
func (c *Conn) Close() {
	if c != nil {
		c.c.close()
	}
}

// SetBroadcast sets the link-layer broadcast address of the link with
// index (IFLA_BROADCAST) and waits for the kernel's answer. Whether or not
// the address changes, the kernel then announces a change of the link's
// addresses (NETDEV_CHANGEADDR) to its own listeners: with arp_notify, the
// IPv4 stack sends a gratuitous ARP for each IPv4 address of the link.
func (c *Conn) SetBroadcast(index int32, brd []byte) error {
	_, err := c.c.request(syscall.RTM_SETLINK, syscall.NLM_F_ACK, ifinfo(index), attr(syscall.IFLA_BROADCAST, brd))
	return err
}
