package integration

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/containernetworking/cni/libcni"
	"github.com/containernetworking/cni/pkg/types"
	current "github.com/containernetworking/cni/pkg/types/100"
)

// portMap is one runtimeConfig.portMappings entry, as runtimes send it.
type portMap struct {
	HostPort      int    `json:"hostPort"`
	ContainerPort int    `json:"containerPort"`
	Protocol      string `json:"protocol"`
	HostIP        string `json:"hostIP,omitempty"`
}

// portsNet is a bridge network publishing ports, driven through libcni
// with the portMappings capability (as a runtime does).
type portsNet struct {
	node   *Node
	name   string
	bridge string
	list   *libcni.NetworkConfigList
	binDir string
	cache  string
}

// portsNetConf describes a network of these tests.
type portsNetConf struct {
	backend  string         // ipMasqBackend ("" = not set)
	subnets  []string       // one range set each
	chainRef bool           // our bridge without the capability, then the reference portmap
	refDir   string         // with chainRef: where the reference portmap is (bridge and host-local too)
	name     string         // the network's name ("": a new one)
	bridge   string         // the bridge's name ("": a new one)
	extra    map[string]any // further keys of the bridge entry
}

func newPortsNet(t testing.TB, n *Node, c portsNetConf) *portsNet {
	t.Helper()
	name, brName := c.name, c.bridge
	if name == "" {
		name = "ports-" + uniq()
	}
	if brName == "" {
		brName = "fcp" + uniq()
	}
	bridge := gatewayBridgePlugin(n, brName, c.subnets, true)
	if c.backend != "" {
		bridge["ipMasqBackend"] = c.backend
	}
	for k, v := range c.extra {
		bridge[k] = v
	}
	plugins := []any{bridge}
	binDir := n.Bin
	if c.chainRef {
		pm := map[string]any{"type": "portmap", "capabilities": map[string]bool{"portMappings": true}, "snat": true}
		if c.backend != "" {
			pm["backend"] = c.backend
		}
		plugins = append(plugins, pm)
		// Our bridge and host-local come first in the path, the reference
		// portmap from the reference directory.
		binDir = n.Bin + string(os.PathListSeparator) + c.refDir
	} else {
		bridge["capabilities"] = map[string]bool{"portMappings": true}
	}
	conflist, err := json.Marshal(map[string]any{"cniVersion": "1.1.0", "name": name, "plugins": plugins})
	if err != nil {
		t.Fatal(err)
	}
	list, err := libcni.ConfListFromBytes(conflist)
	if err != nil {
		t.Fatalf("conflist %s: %v", conflist, err)
	}
	t.Cleanup(func() {
		for _, ext := range []string{".lock", ".rules", ".ports"} {
			_ = os.Remove(filepath.Join("/run/flatcni", "net-"+name+ext))
		}
	})
	return &portsNet{node: n, name: name, bridge: bridge["bridge"].(string), list: list, binDir: binDir,
		cache: filepath.Join(n.Dir, "cache-"+name)}
}

func (p *portsNet) cni() *libcni.CNIConfig {
	return libcni.NewCNIConfigWithCacheDir(filepath.SplitList(p.binDir), p.cache, nil)
}

// portsWeb makes a container namespace named name whose TCP server on port
// 80 answers its name, and returns the runtime configuration that publishes
// that port on hostPort.
func portsWeb(t testing.TB, name string, hostPort int) *libcni.RuntimeConf {
	t.Helper()
	ns := NewNetns(t, name)
	portsServe(t, ns, name, 80)
	return portsRT(ns, portMap{HostPort: hostPort, ContainerPort: 80, Protocol: "tcp"})
}

// rt is the runtime configuration of an attachment publishing maps.
func portsRT(ns *Netns, maps ...portMap) *libcni.RuntimeConf {
	rt := &libcni.RuntimeConf{ContainerID: "ctr-" + ns.Name, NetNS: ns.Path, IfName: "eth0"}
	if len(maps) > 0 {
		rt.CapabilityArgs = map[string]any{"portMappings": maps}
	}
	return rt
}

func (p *portsNet) tryAdd(t testing.TB, rt *libcni.RuntimeConf) (*current.Result, error) {
	t.Helper()
	var res types.Result
	err := p.node.Do(t, func() error {
		var err error
		res, err = p.cni().AddNetworkList(context.Background(), p.list, rt)
		return err
	})
	if err != nil {
		return nil, err
	}
	return current.NewResultFromResult(res)
}

// add attaches a container; DEL at cleanup (a second DEL is harmless).
func (p *portsNet) add(t testing.TB, rt *libcni.RuntimeConf) *current.Result {
	t.Helper()
	r, err := p.tryAdd(t, rt)
	if err != nil {
		t.Fatalf("ADD %s to %s: %v", rt.ContainerID, p.name, err)
	}
	t.Cleanup(func() { _ = p.tryDel(t, rt) })
	return r
}

func (p *portsNet) tryDel(t testing.TB, rt *libcni.RuntimeConf) error {
	t.Helper()
	return p.node.Do(t, func() error { return p.cni().DelNetworkList(context.Background(), p.list, rt) })
}

func (p *portsNet) del(t testing.TB, rt *libcni.RuntimeConf) {
	t.Helper()
	if err := p.tryDel(t, rt); err != nil {
		t.Fatalf("DEL %s from %s: %v", rt.ContainerID, p.name, err)
	}
}

func (p *portsNet) check(t testing.TB, rt *libcni.RuntimeConf) error {
	t.Helper()
	return p.node.Do(t, func() error { return p.cni().CheckNetworkList(context.Background(), p.list, rt) })
}

// gc runs GC keeping the given attachments (with an empty cache, as after
// a runtime restart: libcni then DELs nothing itself).
func (p *portsNet) gc(t testing.TB, valid ...types.GCAttachment) {
	t.Helper()
	err := p.node.Do(t, func() error {
		c := libcni.NewCNIConfigWithCacheDir(filepath.SplitList(p.binDir), t.TempDir(), nil)
		return c.GCNetworkList(context.Background(), p.list, &libcni.GCArgs{ValidAttachments: valid})
	})
	if err != nil {
		t.Fatalf("GC %s: %v", p.name, err)
	}
}

// portsServe runs a TCP and a UDP server on port in every address of ns; each
// answers "<name> <peer address>".
func portsServe(t testing.TB, ns *Netns, name string, port int) {
	t.Helper()
	var ln net.Listener
	var pc net.PacketConn
	if err := ns.Do(t, func() error {
		var err error
		if ln, err = net.Listen("tcp", fmt.Sprintf(":%d", port)); err != nil {
			return err
		}
		pc, err = net.ListenPacket("udp", fmt.Sprintf(":%d", port))
		return err
	}); err != nil {
		t.Fatalf("listen in %s: %v", ns.Name, err)
	}
	t.Cleanup(func() { ln.Close(); pc.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			fmt.Fprintf(c, "%s %s", name, c.RemoteAddr().(*net.TCPAddr).AddrPort().Addr().Unmap())
			c.Close()
		}
	}()
	go func() {
		buf := make([]byte, 512)
		for {
			_, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			_, _ = pc.WriteTo([]byte(fmt.Sprintf("%s %s", name, from.(*net.UDPAddr).AddrPort().Addr().Unmap())), from)
		}
	}()
}

// portsDial sends a request from ns to dst:port over proto ("tcp" or "udp",
// from srcPort when not 0) and returns the answer. A few attempts absorb
// neighbour discovery; the timeouts only bound a lost packet.
func portsDial(t testing.TB, ns *Netns, proto, dst string, port, srcPort int) (string, error) {
	t.Helper()
	addr := net.JoinHostPort(dst, fmt.Sprint(port))
	var answer string
	var err error
	for range 4 {
		err = ns.Do(t, func() error {
			d := net.Dialer{Timeout: 2 * time.Second}
			if srcPort != 0 {
				if proto == "udp" {
					d.LocalAddr = &net.UDPAddr{Port: srcPort}
				} else {
					d.LocalAddr = &net.TCPAddr{Port: srcPort}
				}
			}
			c, err := d.Dial(proto, addr)
			if err != nil {
				return err
			}
			defer c.Close()
			_ = c.SetDeadline(time.Now().Add(2 * time.Second))
			if proto == "udp" {
				if _, err := c.Write([]byte("?")); err != nil {
					return err
				}
				b := make([]byte, 512)
				n, err := c.Read(b)
				answer = string(b[:n])
				return err
			}
			b, err := io.ReadAll(c)
			answer = string(b)
			return err
		})
		if err == nil {
			return answer, nil
		}
	}
	return "", fmt.Errorf("%s from %s to %s: %w", proto, ns.Name, addr, err)
}

// portsExpect fails unless a request from ns to dst:port reaches the server
// named want (and, when peer is set, the server sees that peer address).
func portsExpect(t testing.TB, ns *Netns, proto, dst string, port int, want, peer, why string) {
	t.Helper()
	got, err := portsDial(t, ns, proto, dst, port, 0)
	if err != nil {
		t.Errorf("%s: %v", why, err)
		return
	}
	name, seen, _ := strings.Cut(got, " ")
	if name != want || (peer != "" && seen != peer) {
		t.Errorf("%s: %s %s:%d answered %q, want %s seeing %q", why, proto, dst, port, got, want, peer)
	}
}

// portsResultIP is the result's address of the family (4 or 6).
func portsResultIP(t testing.TB, r *current.Result, family int) string {
	t.Helper()
	for _, ip := range r.IPs {
		a, _ := netip.AddrFromSlice(ip.Address.IP)
		if a.Unmap().Is4() == (family == 4) {
			return a.Unmap().String()
		}
	}
	t.Fatalf("result has no IPv%d address", family)
	return ""
}

// portsRuleSummary counts the node's rules (as masqRuleCount) and its
// iptables chains and nftables chains (user-defined: "-N" and "chain").
func portsRuleSummary(t testing.TB, n *Netns) (rules, chains int) {
	t.Helper()
	for _, cmd := range []string{"iptables-save", "ip6tables-save"} {
		for _, l := range strings.Split(n.MustRun(t, cmd), "\n") {
			if strings.HasPrefix(l, ":") && !strings.Contains(l, " ACCEPT ") && !strings.Contains(l, " DROP ") {
				chains++
			}
		}
	}
	for _, l := range strings.Split(n.MustRun(t, "nft", "list", "ruleset"), "\n") {
		if strings.HasPrefix(strings.TrimSpace(l), "chain ") {
			chains++
		}
	}
	return masqRuleCount(t, n), chains
}

// refusedForConflict checks the error of a publishing ADD refused for a
// host port in use: CNI code 11 (as a requested address in use: the port is
// free once its holder goes), a message naming each of names, and nothing
// of the attachment made: no eth0 in ns, no lease of rt's container; and,
// unless bridge is "", no such bridge on the node.
func refusedForConflict(t *testing.T, node *Node, ns *Netns, rt *libcni.RuntimeConf, err error, bridge string, names ...string) {
	t.Helper()
	for _, want := range names {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("conflict error %q does not name %q", err, want)
		}
	}
	if te := (*types.Error)(nil); !errors.As(err, &te) || te.Code != types.ErrTryAgainLater {
		t.Errorf("conflict error %v: want CNI code %d", err, types.ErrTryAgainLater)
	}
	if out, _ := ns.Run("ip", "link", "show", "eth0"); !strings.Contains(out, "does not exist") {
		t.Errorf("the failed ADD made eth0 in the container: %s", out)
	}
	if bridge != "" {
		if out, err := node.Run("ip", "link", "show", bridge); err == nil {
			t.Errorf("the failed ADD made bridge %s: %s", bridge, out)
		}
	}
	if leases := leaseFiles(t, node.LeaseDir()); strings.Contains(strings.Join(leases, " "), rt.ContainerID) {
		t.Errorf("the failed ADD left a lease: %v", leases)
	}
}
