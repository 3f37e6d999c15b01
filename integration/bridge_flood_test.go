package integration

import (
	"bytes"
	"errors"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// ICMPv6 types of the packets a new container's kernel sends by itself.
const (
	icmp6ListenerReportV1   = 131
	icmp6RouterSolicitation = 133
	icmp6ListenerReportV2   = 143
)

// A new container's interface comes up, and is configured, while its host
// end is not yet a port of the bridge, so the first IPv6 packets its kernel
// sends (router solicitation, listener reports) are not flooded to the other
// containers. The repeats do reach them through the bridge: the listener
// reports' within a second.
func TestBridgeNewContainerFirstPacketsStayOffBridge(t *testing.T) {
	_, mac, fd := addWatched(t, nil)
	// The kernel repeats the solicitation only after about 4 s.
	seen := icmp6From(t, fd, mac, 2*time.Second)
	if seen[icmp6RouterSolicitation] != 0 {
		t.Errorf("%d router solicitations of the new container reached another container's interface", seen[icmp6RouterSolicitation])
	}
	if seen[icmp6ListenerReportV2] == 0 {
		t.Errorf("no listener report of the new container reached another container within 2 s (seen: %v)", seen)
	}
}

// The listener reports a new container's kernel sends by itself (for its
// link-local and its IPv6 address, once each joins its group) are all sent
// before the port joins the bridge, none after ADD has returned: MLDv2 would
// send its first two scheduler ticks after each join, by then on the bridge,
// where its flood to every port landed on whatever the node did next. The
// container's repeat interval is an hour here, so that the repeats of the
// reports, at a random time within it, stay out of the observed half second.
func TestBridgeNoListenerReportAfterAdd(t *testing.T) {
	c, mac, fd := addWatched(t, func() error {
		return os.WriteFile("/proc/sys/net/ipv6/conf/default/mldv2_unsolicited_report_interval", []byte("3600000"), 0o644)
	})
	seen := icmp6From(t, fd, mac, 500*time.Millisecond)
	if r := seen[icmp6ListenerReportV1] + seen[icmp6ListenerReportV2]; r != 0 {
		t.Errorf("%d listener reports of the new container reached another container in the half second after ADD (by type: %v)", r, seen)
	}
	// What the kernel made, the interval included, is what ADD leaves.
	for key, want := range map[string]string{"force_mld_version": "0", "mldv1_unsolicited_report_interval": "10000", "mldv2_unsolicited_report_interval": "3600000"} {
		var got []byte
		if err := c.Do(t, func() (err error) {
			got, err = os.ReadFile("/proc/sys/net/ipv6/conf/eth0/" + key)
			return err
		}); err != nil {
			t.Fatal(err)
		}
		if g := strings.TrimSpace(string(got)); g != want {
			t.Errorf("container eth0 %s = %s after ADD, want %s", key, g, want)
		}
	}
}

// addWatched attaches a container to a new dual-stack network, then a second
// one, c (after prepare, if any, has run inside c): it returns c, the MAC
// of c's interface and a packet socket on the first container's interface
// opened before c's ADD. Both are detached at the end.
func addWatched(t *testing.T, prepare func() error) (*Netns, net.HardwareAddr, int) {
	t.Helper()
	b := newDualStack(t, NewNode(t))
	a, rtA := container(t, "a")
	b.MustAdd(t, rtA)
	t.Cleanup(func() { _ = b.Del(t, rtA) })
	c, rtC := container(t, "c")
	if prepare != nil {
		if err := c.Do(t, prepare); err != nil {
			t.Fatal(err)
		}
	}
	fd := openCapture(t, a, "eth0")
	res := b.MustAdd(t, rtC)
	t.Cleanup(func() { _ = b.Del(t, rtC) })
	mac, err := net.ParseMAC(res.Interfaces[2].Mac)
	if err != nil {
		t.Fatal(err)
	}
	return c, mac, fd
}

// openCapture opens a packet socket for the IPv6 frames dev receives in ns.
func openCapture(t *testing.T, ns *Netns, dev string) int {
	t.Helper()
	fd := -1
	err := ns.Do(t, func() error {
		ifi, err := net.InterfaceByName(dev)
		if err != nil {
			return err
		}
		proto := int(htons(unix.ETH_P_IPV6))
		if fd, err = unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, proto); err != nil {
			return err
		}
		return unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_IPV6), Ifindex: ifi.Index})
	})
	if fd >= 0 {
		t.Cleanup(func() { unix.Close(fd) })
	}
	if err != nil {
		t.Fatalf("packet socket on %s in %s: %v", dev, ns.Name, err)
	}
	return fd
}

// icmp6From counts, by ICMPv6 type, the frames from src received on fd
// until the deadline, beginning with those already queued.
func icmp6From(t *testing.T, fd int, src net.HardwareAddr, wait time.Duration) map[int]int {
	t.Helper()
	seen := map[int]int{}
	buf := make([]byte, 2048)
	for end := time.Now().Add(wait); time.Now().Before(end); {
		tv := unix.NsecToTimeval(time.Until(end).Nanoseconds())
		if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
			t.Fatal(err)
		}
		m, from, err := unix.Recvfrom(fd, buf, 0)
		if errors.Is(err, unix.EAGAIN) || errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		if ll, ok := from.(*unix.SockaddrLinklayer); ok && ll.Pkttype == unix.PACKET_OUTGOING {
			continue
		}
		if typ, ok := icmp6Type(buf[:m]); ok && bytes.Equal(buf[6:12], src) {
			seen[typ]++
		}
	}
	return seen
}

// icmp6Type is the ICMPv6 type of an Ethernet frame carrying IPv6, directly
// or after a hop-by-hop options header (listener reports).
func icmp6Type(f []byte) (int, bool) {
	const eth, ip6 = 14, 40
	if len(f) < eth+ip6+1 || f[12] != 0x86 || f[13] != 0xdd {
		return 0, false
	}
	next, off := f[eth+6], eth+ip6
	if next == 0 { // hop-by-hop options
		if len(f) < off+2 {
			return 0, false
		}
		next, off = f[off], off+(int(f[off+1])+1)*8
	}
	if next != 58 || len(f) <= off {
		return 0, false
	}
	return int(f[off]), true
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }
