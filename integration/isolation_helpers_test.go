package integration

import (
	"context"
	"fmt"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/containernetworking/cni/libcni"
)

// isoNet is one network of the isolation tests, with the keys that differ.
type isoNet struct {
	*masqNet
	gateway string // the bridge's IPv4 address
}

// newIsoNet writes a bridge network with host-local on subnet (IPv4 /24,
// its gateway at .1) and the keys in extra (isolation, internal, icc...).
// Without "internal", it has ipMasq and a default route.
func newIsoNet(t testing.TB, n *Node, backend, subnet string, extra map[string]any) *isoNet {
	t.Helper()
	internal := extra["internal"] == true
	if internal {
		extra["isDefaultGateway"] = false
	}
	m := newMasqNet(t, n, masqNetConf{backend: backend, subnets: []string{subnet}, noMasq: internal, name: "iso-" + uniq(), extra: extra})
	return &isoNet{masqNet: m, gateway: strings.TrimSuffix(subnet, "0/24") + "1"}
}

// isoCtr is a container attached to an isoNet, serving masqPeerServer.
type isoCtr struct {
	ns   *Netns
	rt   *libcni.RuntimeConf
	ip   string
	port int
}

// attach adds a container to the network; it is detached at cleanup
// (already detached is fine).
func (m *isoNet) attach(t testing.TB, role string) *isoCtr {
	t.Helper()
	ns, rt := masqContainer(t, role)
	res := m.add(t, "", rt)
	t.Cleanup(func() {
		_ = m.node.Do(t, func() error { return m.cni("", m.cache).DelNetworkList(context.Background(), m.list, rt) })
	})
	return &isoCtr{ns: ns, rt: rt, ip: masqResultIP(t, res, 4), port: masqPeerServer(t, ns)}
}

// isoReach fails unless a TCP connection from ns to dst:port completes.
func isoReach(t testing.TB, ns *Netns, dst string, port int, why string) {
	t.Helper()
	if _, err := masqPeerSeen(t, ns, dst, port); err != nil {
		t.Errorf("%s: %v", why, err)
	}
}

// isoBlocked fails if a TCP connection from ns to dst:port completes or a
// ping gets an answer. One attempt each: the timeouts only bound how long a
// dropped packet is waited for.
func isoBlocked(t testing.TB, ns *Netns, dst string, port int, why string) {
	t.Helper()
	isoTCPBlocked(t, ns, dst, port, why)
	if out, err := ns.Run("ping", "-c1", "-W1", dst); err == nil {
		t.Errorf("%s: %s pinged %s:\n%s", why, ns.Name, dst, out)
	}
}

// isoTCPBlocked fails if a TCP connection from ns to dst:port completes (a
// published port on an address that answers pings: the node's).
func isoTCPBlocked(t testing.TB, ns *Netns, dst string, port int, why string) {
	t.Helper()
	err := ns.Do(t, func() error {
		c, err := net.DialTimeout("tcp", net.JoinHostPort(dst, fmt.Sprint(port)), 2*time.Second)
		if err != nil {
			return err
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(2 * time.Second))
		_, err = io.ReadAll(c)
		return err
	})
	if err == nil {
		t.Errorf("%s: %s connected to %s port %d", why, ns.Name, dst, port)
	}
}

// isoPing fails unless ns gets an answer from dst.
func isoPing(t testing.TB, ns *Netns, dst, why string) {
	t.Helper()
	var out string
	var err error
	for range 3 { // the first may wait for neighbour discovery
		if out, err = ns.Run("ping", "-c1", "-W1", dst); err == nil {
			return
		}
	}
	t.Errorf("%s: ping %s from %s: %v\n%s", why, dst, ns.Name, err, out)
}

// isoPublish makes port of the node's uplink address lead to ctr (a DNAT
// rule written by hand, as port publishing would), removed at cleanup.
func isoPublish(t testing.TB, node *Node, port int, ctr *isoCtr) {
	t.Helper()
	rule := []string{"PREROUTING", "-p", "tcp", "-d", uplinkNode4, "--dport", fmt.Sprint(port),
		"-j", "DNAT", "--to-destination", net.JoinHostPort(ctr.ip, fmt.Sprint(ctr.port))}
	node.MustRun(t, append([]string{"iptables", "-t", "nat", "-A"}, rule...)...)
	t.Cleanup(func() { _, _ = node.Run(append([]string{"iptables", "-t", "nat", "-D"}, rule...)...) })
}
