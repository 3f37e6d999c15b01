package integration

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/containernetworking/cni/libcni"
	"github.com/containernetworking/cni/pkg/types"
	current "github.com/containernetworking/cni/pkg/types/100"
)

// Addresses of the test networks: only ever inside namespaces the tests made.
const (
	testSubnet4 = "10.99.0.0/24"
	testSubnet6 = "fd99:1::/64"
	testGW4     = "10.99.0.1"
	testGW6     = "fd99:1::1"
)

// bridgeNet is one bridge network on a node, driven through libcni (with a
// result cache in the node's temp dir) or cnitool (its conflist is written to
// the node's conf dir under the network's name).
type bridgeNet struct {
	node   *Node
	name   string // network name
	bridge string // bridge device name in the node
	plugin map[string]any
	list   *libcni.NetworkConfigList
	cni    *libcni.CNIConfig
}

// dualStackPlugin is a bridge plugin configuration with host-local IPAM over
// one IPv4 and one IPv6 range, the bridge being the gateway.
func dualStackPlugin(bridge, dataDir string) map[string]any {
	return map[string]any{
		"type":      "bridge",
		"bridge":    bridge,
		"isGateway": true,
		"ipam": map[string]any{
			"type":    "host-local",
			"dataDir": dataDir,
			"ranges": []any{
				[]any{map[string]any{"subnet": testSubnet4}},
				[]any{map[string]any{"subnet": testSubnet6}},
			},
		},
	}
}

// newBridgeNet writes a one-plugin conflist (cniVersion 1.1.0) for plugin,
// whose "bridge" key names the bridge device, and loads it for libcni.
func newBridgeNet(t testing.TB, n *Node, plugin map[string]any) *bridgeNet {
	t.Helper()
	b := &bridgeNet{node: n, name: "net-" + uniq(), plugin: plugin}
	b.bridge, _ = plugin["bridge"].(string)
	raw, err := json.Marshal(map[string]any{"cniVersion": "1.1.0", "name": b.name, "plugins": []any{plugin}})
	if err != nil {
		t.Fatal(err)
	}
	n.WriteConfList(t, b.name, raw)
	if b.list, err = libcni.NetworkConfFromBytes(raw); err != nil {
		t.Fatalf("load conflist: %v\n%s", err, raw)
	}
	b.cni = libcni.NewCNIConfigWithCacheDir([]string{n.Bin}, filepath.Join(n.Dir, "cache"), nil)
	return b
}

// newDualStack makes a dual-stack network on a fresh bridge in n.
func newDualStack(t testing.TB, n *Node) *bridgeNet {
	t.Helper()
	return newBridgeNet(t, n, dualStackPlugin("br"+uniq(), n.LeaseDir()))
}

// Add runs ADD through libcni inside the node.
func (b *bridgeNet) Add(t testing.TB, rt *libcni.RuntimeConf) (*current.Result, error) {
	t.Helper()
	var res types.Result
	err := b.node.Do(t, func() error {
		var err error
		res, err = b.cni.AddNetworkList(context.Background(), b.list, rt)
		return err
	})
	if err != nil {
		return nil, err
	}
	cur, err := current.NewResultFromResult(res)
	if err != nil {
		t.Fatalf("convert result: %v", err)
	}
	return cur, nil
}

// MustAdd is Add that fails the test on error.
func (b *bridgeNet) MustAdd(t testing.TB, rt *libcni.RuntimeConf) *current.Result {
	t.Helper()
	res, err := b.Add(t, rt)
	if err != nil {
		t.Fatalf("ADD %s/%s: %v", rt.ContainerID, rt.IfName, err)
	}
	return res
}

// Attached makes a container netns and ADDs it to the network; DEL runs when
// the test ends.
func (b *bridgeNet) Attached(t testing.TB, role string) (*Netns, *libcni.RuntimeConf, *current.Result) {
	t.Helper()
	c, rt := container(t, role)
	res := b.MustAdd(t, rt)
	t.Cleanup(func() { _ = b.Del(t, rt) })
	return c, rt, res
}

// Check runs CHECK through libcni inside the node (against the cached result).
func (b *bridgeNet) Check(t testing.TB, rt *libcni.RuntimeConf) error {
	t.Helper()
	return b.node.Do(t, func() error { return b.cni.CheckNetworkList(context.Background(), b.list, rt) })
}

// Del runs DEL through libcni inside the node.
func (b *bridgeNet) Del(t testing.TB, rt *libcni.RuntimeConf) error {
	t.Helper()
	return b.node.Do(t, func() error { return b.cni.DelNetworkList(context.Background(), b.list, rt) })
}

// MustDel is Del that fails the test on error.
func (b *bridgeNet) MustDel(t testing.TB, rt *libcni.RuntimeConf) {
	t.Helper()
	if err := b.Del(t, rt); err != nil {
		t.Fatalf("DEL %s/%s: %v", rt.ContainerID, rt.IfName, err)
	}
}

// GC runs GC through libcni inside the node, with the given valid attachments.
func (b *bridgeNet) GC(t testing.TB, valid ...types.GCAttachment) error {
	t.Helper()
	return b.node.Do(t, func() error {
		return b.cni.GCNetworkList(context.Background(), b.list, &libcni.GCArgs{ValidAttachments: valid})
	})
}

// Status runs STATUS through libcni inside the node.
func (b *bridgeNet) Status(t testing.TB) error {
	t.Helper()
	return b.node.Do(t, func() error { return b.cni.GetStatusNetworkList(context.Background(), b.list) })
}

// Leases returns the addresses host-local holds for the network.
func (b *bridgeNet) Leases(t testing.TB) []string {
	t.Helper()
	return leaseFiles(t, filepath.Join(b.node.LeaseDir(), b.name))
}

// leaseFiles lists the lease files (named after addresses) of one network's
// host-local data directory; bookkeeping files are skipped.
func leaseFiles(t testing.TB, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range entries {
		name := e.Name()
		if e.IsDir() || name == "lock" || strings.HasPrefix(name, "last_reserved_ip") || strings.HasPrefix(name, ".") {
			continue
		}
		out = append(out, name)
	}
	return out
}

// container makes a container netns and the runtime configuration for
// attaching it as eth0.
func container(t testing.TB, role string) (*Netns, *libcni.RuntimeConf) {
	t.Helper()
	c := NewNetns(t, role)
	return c, RuntimeConf("ctr-"+uniq(), c, "eth0")
}

// resultAddr returns the container's address of the family (4 or 6) in res,
// without prefix length, or fails.
func resultAddr(t testing.TB, res *current.Result, family int) string {
	t.Helper()
	for _, ip := range res.IPs {
		if (ip.Address.IP.To4() != nil) == (family == 4) {
			return ip.Address.IP.String()
		}
	}
	t.Fatalf("result has no IPv%d address: %v", family, res)
	return ""
}

// hostVeths lists the veth links in the node.
func hostVeths(t testing.TB, n *Node) []string {
	t.Helper()
	out := n.MustRun(t, "ip", "-o", "link", "show", "type", "veth")
	var names []string
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		name, _, _ := strings.Cut(strings.TrimSuffix(f[1], ":"), "@")
		names = append(names, name)
	}
	return names
}

// linkInfo returns "ip -d -j link show dev" of dev in ns, JSON-decoded.
func linkInfo(t testing.TB, ns *Netns, dev string) map[string]any {
	t.Helper()
	out := ns.MustRun(t, "ip", "-d", "-j", "link", "show", "dev", dev)
	var l []map[string]any
	if err := json.Unmarshal([]byte(out), &l); err != nil || len(l) != 1 {
		t.Fatalf("ip -j link show dev %s in %s: %v: %s", dev, ns.Name, err, out)
	}
	return l[0]
}

// globalAddrs lists the global-scope addresses on dev in ns.
func globalAddrs(t testing.TB, ns *Netns, dev string) []string {
	t.Helper()
	out := ns.MustRun(t, "ip", "-o", "addr", "show", "dev", dev, "scope", "global")
	var addrs []string
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		f := strings.Fields(line)
		for i := 0; i+1 < len(f); i++ {
			if f[i] == "inet" || f[i] == "inet6" {
				addrs = append(addrs, f[i+1])
			}
		}
	}
	return addrs
}

// ping sends one echo request from inside ns; addr is an address of a
// namespace the test made.
func ping(t testing.TB, ns *Netns, addr string) {
	t.Helper()
	if out, err := ns.Run("ping", "-c1", "-W1", addr); err != nil {
		t.Errorf("ping %s from %s: %v\n%s", addr, ns.Name, err, out)
	}
}

// pluginConf is the network's single plugin as a standalone configuration
// of cniVersion, as a runtime hands it to the plugin binary.
func (b *bridgeNet) pluginConf(t testing.TB, cniVersion string) []byte {
	t.Helper()
	conf := map[string]any{"cniVersion": cniVersion, "name": b.name}
	for k, v := range b.plugin {
		conf[k] = v
	}
	raw, err := json.Marshal(conf)
	if err != nil {
		t.Fatal(err)
	}
	return raw
}
