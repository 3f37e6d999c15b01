package firewall

import (
	"fmt"
	"io"
	"net"
	"net/netip"
	"testing"
	"time"
)

// topology is a node namespace with a bridge, a container behind it and a
// remote host reached over an uplink veth. The remote has routes back to
// the container subnets, so without masquerading it sees container addresses.
type topology struct {
	node, cont, remote *testNS
}

func newTopology(t *testing.T) *topology {
	t.Helper()
	tp := &topology{node: newTestNS(t, "node"), cont: newTestNS(t, "ctr"), remote: newTestNS(t, "rem")}
	node, cont, rem := tp.node.name, tp.cont.name, tp.remote.name
	cmds := [][]string{
		{"ip", "-n", node, "link", "add", "br0", "type", "bridge"},
		{"ip", "-n", node, "link", "add", "vc0", "type", "veth", "peer", "name", "eth0", "netns", cont},
		{"ip", "-n", node, "link", "set", "vc0", "master", "br0"},
		{"ip", "-n", node, "link", "add", "up0", "type", "veth", "peer", "name", "eth0", "netns", rem},
		{"ip", "-n", node, "addr", "add", "10.88.0.1/24", "dev", "br0"},
		{"ip", "-n", node, "addr", "add", "fd88::1/64", "dev", "br0", "nodad"},
		{"ip", "-n", node, "addr", "add", "192.0.2.1/24", "dev", "up0"},
		{"ip", "-n", node, "addr", "add", "2001:db8::1/64", "dev", "up0", "nodad"},
		{"ip", "-n", node, "link", "set", "br0", "up"},
		{"ip", "-n", node, "link", "set", "vc0", "up"},
		{"ip", "-n", node, "link", "set", "up0", "up"},
		{"ip", "netns", "exec", node, "sysctl", "-qw", "net.ipv4.ip_forward=1", "net.ipv6.conf.all.forwarding=1"},
		{"ip", "-n", cont, "addr", "add", "10.88.0.2/24", "dev", "eth0"},
		{"ip", "-n", cont, "addr", "add", "fd88::2/64", "dev", "eth0", "nodad"},
		{"ip", "-n", cont, "link", "set", "eth0", "up"},
		{"ip", "-n", cont, "route", "add", "default", "via", "10.88.0.1"},
		{"ip", "-n", cont, "-6", "route", "add", "default", "via", "fd88::1"},
		{"ip", "-n", rem, "addr", "add", "192.0.2.2/24", "dev", "eth0"},
		{"ip", "-n", rem, "addr", "add", "2001:db8::2/64", "dev", "eth0", "nodad"},
		{"ip", "-n", rem, "link", "set", "eth0", "up"},
		{"ip", "-n", rem, "route", "add", "10.88.0.0/24", "via", "192.0.2.1"},
		{"ip", "-n", rem, "-6", "route", "add", "fd88::/64", "via", "2001:db8::1"},
	}
	for _, c := range cmds {
		run(t, c...)
	}
	return tp
}

// startPeerServer listens in the remote namespace and answers every
// connection with the peer's address.
func (tp *topology) startPeerServer(t *testing.T) int {
	t.Helper()
	var ln net.Listener
	if err := tp.remote.do(t, func() error {
		var err error
		ln, err = net.Listen("tcp", ":0")
		return err
	}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			ap := c.RemoteAddr().(*net.TCPAddr).AddrPort()
			fmt.Fprint(c, ap.Addr().Unmap().String())
			c.Close()
		}
	}()
	return ln.Addr().(*net.TCPAddr).Port
}

// peerSeen connects from the container to the remote and returns the
// address the remote saw.
func (tp *topology) peerSeen(t *testing.T, dst string, port int) (string, error) {
	t.Helper()
	var seen string
	err := tp.cont.do(t, func() error {
		// The timeout only bounds a dropped connection; no timing is asserted.
		c, err := net.DialTimeout("tcp", net.JoinHostPort(dst, fmt.Sprint(port)), 5*time.Second)
		if err != nil {
			return err
		}
		defer c.Close()
		b, err := io.ReadAll(c)
		seen = string(b)
		return err
	})
	return seen, err
}

func TestTraffic(t *testing.T) {
	requireRoot(t)
	for _, policy := range []string{"ACCEPT", "DROP"} {
		for _, name := range []string{IPTablesName, NFTablesName} {
			t.Run(name+"/FORWARD-"+policy, func(t *testing.T) {
				b, err := New(name, WithLockDir(t.TempDir()))
				if err != nil {
					t.Fatal(err)
				}
				tp := newTopology(t)
				port := tp.startPeerServer(t)
				tp.node.exec(t, "iptables", "-P", "FORWARD", policy)
				tp.node.exec(t, "ip6tables", "-P", "FORWARD", policy)

				dests := []struct{ dst, container, uplink string }{
					{"192.0.2.2", "10.88.0.2", "192.0.2.1"},
					{"2001:db8::2", "fd88::2", "2001:db8::1"},
				}
				if policy == "ACCEPT" {
					// Without rules the remote sees the container itself.
					for _, d := range dests {
						if got, err := tp.peerSeen(t, d.dst, port); err != nil || got != d.container {
							t.Fatalf("before Ensure: remote saw %q (err %v), want %s", got, err, d.container)
						}
					}
				} else {
					if _, err := tp.peerSeen(t, "192.0.2.2", port); err == nil {
						t.Fatal("before Ensure: connection passed FORWARD policy DROP")
					}
				}

				nw := Network{Name: "traffic", Bridge: "br0", Masquerade: true, Forward: true,
					Subnets: []netip.Prefix{netip.MustParsePrefix("10.88.0.0/24"), netip.MustParsePrefix("fd88::/64")}}
				if err := tp.node.do(t, func() error { return b.Ensure(nw) }); err != nil {
					t.Fatal(err)
				}
				for _, d := range dests {
					if got, err := tp.peerSeen(t, d.dst, port); err != nil || got != d.uplink {
						t.Errorf("after Ensure: remote saw %q (err %v), want the node's uplink %s", got, err, d.uplink)
					}
				}

				// Destinations in NonMasquerade keep the container address.
				nw.NonMasquerade = []netip.Prefix{netip.MustParsePrefix("192.0.2.0/24"), netip.MustParsePrefix("2001:db8::/64")}
				if err := tp.node.do(t, func() error { return b.Ensure(nw) }); err != nil {
					t.Fatal(err)
				}
				for _, d := range dests {
					if got, err := tp.peerSeen(t, d.dst, port); err != nil || got != d.container {
						t.Errorf("with nonMasquerade: remote saw %q (err %v), want %s", got, err, d.container)
					}
				}
				if err := tp.node.do(t, func() error { return b.Remove(nw.Name) }); err != nil {
					t.Fatal(err)
				}
			})
		}
	}
}
