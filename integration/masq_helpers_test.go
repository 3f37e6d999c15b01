package integration

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/containernetworking/cni/libcni"
	"github.com/containernetworking/cni/pkg/types"
	current "github.com/containernetworking/cni/pkg/types/100"
)

// masqNet is one ipMasq bridge network of a node, driven through libcni with
// an attachment cache private to the test (nothing lands in /var/lib/cni).
type masqNet struct {
	node     *Node
	name     string
	bridge   string
	list     *libcni.NetworkConfigList
	conflist []byte
	cache    string
	binDir   string // where libcni looks for the plugins: ours, then refDir's
}

// masqNetConf describes what differs between the networks of these tests.
type masqNetConf struct {
	backend string         // ipMasqBackend ("" = not set)
	subnets []string       // one range set per subnet
	nonMasq []string       // nonMasqueradeCIDRs
	noMasq  bool           // ipMasq false
	name    string         // network name ("" = a random one)
	extra   map[string]any // further plugin keys, set last
	chain   []any          // plugins chained after the bridge, from refDir
	refDir  string         // with chain: where the reference plugins are
}

// newMasqNet writes the network's conflist into the node (so cnitool finds
// it too) and removes the network's lock file at cleanup.
func newMasqNet(t testing.TB, n *Node, c masqNetConf) *masqNet {
	t.Helper()
	name := c.name
	if name == "" {
		name = "masq-" + uniq()
	}
	plugin := gatewayBridgePlugin(n, "fcm"+uniq(), c.subnets, !c.noMasq)
	if c.backend != "" {
		plugin["ipMasqBackend"] = c.backend
	}
	if len(c.nonMasq) > 0 {
		plugin["nonMasqueradeCIDRs"] = c.nonMasq
	}
	for k, v := range c.extra {
		plugin[k] = v
	}
	conflist, err := json.Marshal(map[string]any{"cniVersion": "1.1.0", "name": name, "plugins": append([]any{plugin}, c.chain...)})
	if err != nil {
		t.Fatal(err)
	}
	list, err := libcni.ConfListFromBytes(conflist)
	if err != nil {
		t.Fatalf("conflist %s: %v", conflist, err)
	}
	n.WriteConfList(t, name, conflist)
	t.Cleanup(func() {
		for _, ext := range []string{".lock", ".rules", ".ports"} {
			_ = os.Remove(filepath.Join("/run/flatcni", "net-"+name+ext))
		}
	})
	binDir := n.Bin
	if len(c.chain) > 0 {
		// Our bridge and host-local first, the chained plugins from refDir.
		binDir += string(os.PathListSeparator) + c.refDir
	}
	return &masqNet{node: n, name: name, bridge: plugin["bridge"].(string), list: list, conflist: conflist,
		cache: filepath.Join(n.Dir, "cache"), binDir: binDir}
}

// gatewayBridgePlugin is the bridge entry of these tests: the bridge as the
// containers' default gateway, host-local with one range set per subnet.
func gatewayBridgePlugin(n *Node, bridge string, subnets []string, ipMasq bool) map[string]any {
	ranges := make([][]map[string]string, 0, len(subnets))
	for _, s := range subnets {
		// "<subnet> <rangeStart>-<rangeEnd>": part of the subnet only.
		subnet, span, ok := strings.Cut(s, " ")
		r := map[string]string{"subnet": subnet}
		if ok {
			r["rangeStart"], r["rangeEnd"], _ = strings.Cut(span, "-")
		}
		ranges = append(ranges, []map[string]string{r})
	}
	return map[string]any{
		"type":             "bridge",
		"bridge":           bridge,
		"isGateway":        true,
		"isDefaultGateway": true,
		"ipMasq":           ipMasq,
		"ipam":             map[string]any{"type": "host-local", "dataDir": n.LeaseDir(), "ranges": ranges},
	}
}

// cni returns a libcni runtime for the plugins in binDir (ours, and the
// chained ones, when "") with the given attachment cache.
func (m *masqNet) cni(binDir, cacheDir string) *libcni.CNIConfig {
	if binDir == "" {
		binDir = m.binDir
	}
	return libcni.NewCNIConfigWithCacheDir(filepath.SplitList(binDir), cacheDir, nil)
}

// add attaches a container with the plugins in binDir (ours when "").
func (m *masqNet) add(t testing.TB, binDir string, rt *libcni.RuntimeConf) *current.Result {
	t.Helper()
	var res types.Result
	err := m.node.Do(t, func() error {
		var err error
		res, err = m.cni(binDir, m.cache).AddNetworkList(context.Background(), m.list, rt)
		return err
	})
	if err != nil {
		t.Fatalf("ADD %s to %s: %v", rt.ContainerID, m.name, err)
	}
	r, err := current.NewResultFromResult(res)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// del detaches a container.
func (m *masqNet) del(t testing.TB, rt *libcni.RuntimeConf) {
	t.Helper()
	if err := m.node.Do(t, func() error {
		return m.cni("", m.cache).DelNetworkList(context.Background(), m.list, rt)
	}); err != nil {
		t.Fatalf("DEL %s from %s: %v", rt.ContainerID, m.name, err)
	}
}

// gc runs GC with an empty attachment cache, so libcni issues no DEL of its
// own: what gets cleaned is cleaned by the plugins' GC verb.
func (m *masqNet) gc(t testing.TB, valid ...types.GCAttachment) {
	t.Helper()
	empty := t.TempDir()
	if err := m.node.Do(t, func() error {
		return m.cni("", empty).GCNetworkList(context.Background(), m.list, &libcni.GCArgs{ValidAttachments: valid})
	}); err != nil {
		t.Fatalf("GC of %s: %v", m.name, err)
	}
}

// leases returns the addresses host-local holds for the network.
func (m *masqNet) leases(t testing.TB) []string {
	t.Helper()
	entries, err := os.ReadDir(filepath.Join(m.node.LeaseDir(), m.name))
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	var out []string
	for _, e := range entries {
		if net.ParseIP(e.Name()) != nil {
			out = append(out, e.Name())
		}
	}
	return out
}

// masqContainer makes a container namespace and its runtime configuration.
func masqContainer(t testing.TB, role string) (*Netns, *libcni.RuntimeConf) {
	t.Helper()
	c := NewNetns(t, role)
	return c, &libcni.RuntimeConf{ContainerID: "ctr-" + c.Name, NetNS: c.Path, IfName: "eth0"}
}

// masqResultIP returns the container's address of the family (4 or 6).
func masqResultIP(t testing.TB, r *current.Result, family int) string {
	t.Helper()
	for _, ip := range r.IPs {
		if (ip.Address.IP.To4() != nil) == (family == 4) {
			return ip.Address.IP.String()
		}
	}
	t.Fatalf("result has no IPv%d address: %v", family, r)
	return ""
}

// masqPeerServer listens on every address of ns and answers each connection with
// the address of its peer. It is closed at cleanup.
func masqPeerServer(t testing.TB, ns *Netns) int {
	t.Helper()
	var ln net.Listener
	if err := ns.Do(t, func() error {
		var err error
		ln, err = net.Listen("tcp", ":0")
		return err
	}); err != nil {
		t.Fatalf("listen in %s: %v", ns.Name, err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			fmt.Fprint(c, c.RemoteAddr().(*net.TCPAddr).AddrPort().Addr().Unmap().String())
			c.Close()
		}
	}()
	return ln.Addr().(*net.TCPAddr).Port
}

// masqPeerSeen connects from ns to dst:port and returns the address the server
// saw. A few attempts absorb neighbour discovery; the timeouts only bound a
// dropped connection, nothing about timing is asserted.
func masqPeerSeen(t testing.TB, ns *Netns, dst string, port int) (string, error) {
	t.Helper()
	return masqPeerSeenN(t, ns, dst, port, 3)
}

// masqPeerSeenN is masqPeerSeen with the given number of attempts.
func masqPeerSeenN(t testing.TB, ns *Netns, dst string, port, attempts int) (string, error) {
	t.Helper()
	var seen string
	var err error
	for range attempts {
		err = ns.Do(t, func() error {
			c, err := net.DialTimeout("tcp", net.JoinHostPort(dst, fmt.Sprint(port)), 3*time.Second)
			if err != nil {
				return err
			}
			defer c.Close()
			_ = c.SetDeadline(time.Now().Add(3 * time.Second))
			b, err := io.ReadAll(c)
			seen = string(b)
			return err
		})
		if err == nil {
			return seen, nil
		}
	}
	return "", fmt.Errorf("connect from %s to %s: %w", ns.Name, net.JoinHostPort(dst, fmt.Sprint(port)), err)
}

// masqExpectPeer fails unless a connection from ns to dst is seen from want.
func masqExpectPeer(t testing.TB, ns *Netns, dst string, port int, want, why string) {
	t.Helper()
	got, err := masqPeerSeen(t, ns, dst, port)
	if err != nil {
		t.Errorf("%s: %v", why, err)
		return
	}
	if got != want {
		t.Errorf("%s: %s saw the connection from %s, want %s", why, dst, got, want)
	}
}

// masqFirewallDump is the node's whole firewall configuration as text.
func masqFirewallDump(t testing.TB, n *Netns) string {
	t.Helper()
	var b strings.Builder
	for _, cmd := range [][]string{{"iptables-save"}, {"ip6tables-save"}, {"nft", "list", "ruleset"}} {
		out, err := n.Run(cmd...)
		if err != nil {
			t.Fatalf("%s in %s: %v\n%s", cmd[0], n.Name, err, out)
		}
		b.WriteString(out)
	}
	return b.String()
}

var masqNFTNonRule = regexp.MustCompile(`^\s*(table |chain |type |policy |set |map |elements |flags |\}|$)`)

// masqRuleCount counts the node's rules: "-A" lines of iptables-save and
// ip6tables-save, and rule lines of nft list ruleset (iptables-nft rules are
// therefore counted twice, the same way each time).
func masqRuleCount(t testing.TB, n *Netns) int {
	t.Helper()
	count := 0
	for _, cmd := range []string{"iptables-save", "ip6tables-save"} {
		for _, l := range strings.Split(n.MustRun(t, cmd), "\n") {
			if strings.HasPrefix(l, "-A ") {
				count++
			}
		}
	}
	inChain := false
	for _, l := range strings.Split(n.MustRun(t, "nft", "list", "ruleset"), "\n") {
		s := strings.TrimSpace(l)
		switch {
		case strings.HasPrefix(s, "chain "):
			inChain = true
		case s == "}":
			inChain = false
		case inChain && !masqNFTNonRule.MatchString(l):
			count++
		}
	}
	return count
}

// masqRequireNoTrace fails when the node's firewall still names the network or
// holds a chain or table of ours.
func masqRequireNoTrace(t testing.TB, n *Netns, network string) {
	t.Helper()
	dump := masqFirewallDump(t, n)
	for _, s := range []string{network, "FLATCNI", "flatcni"} {
		if strings.Contains(dump, s) {
			t.Errorf("node firewall still mentions %q:\n%s", s, dump)
		}
	}
}

// masqBridgePorts returns the interfaces attached to the node's bridge.
func masqBridgePorts(t testing.TB, n *Netns, bridge string) []string {
	t.Helper()
	out := n.MustRun(t, "ip", "-o", "link", "show", "master", bridge)
	var ports []string
	for _, l := range strings.Split(out, "\n") {
		f := strings.Fields(l)
		if len(f) > 1 {
			name, _, _ := strings.Cut(strings.TrimSuffix(f[1], ":"), "@")
			ports = append(ports, name)
		}
	}
	return ports
}

// masqWaitFor polls cond until it holds or a generous bound passes (kernel
// clean-up of a deleted namespace is asynchronous); it reports the last state.
func masqWaitFor(cond func() (bool, string)) (bool, string) {
	var last string
	for deadline := time.Now().Add(15 * time.Second); ; {
		ok, state := cond()
		if ok {
			return true, state
		}
		last = state
		if time.Now().After(deadline) {
			return false, last
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// masqExec runs a command and returns its combined output.
func masqExec(args ...string) (string, error) {
	out, err := exec.Command(args[0], args[1:]...).CombinedOutput()
	return string(out), err
}
