package integration

import (
	"encoding/json"
	"fmt"
	"net"
	"slices"
	"strings"
	"testing"

	"github.com/containernetworking/cni/pkg/types"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// l2Plugin is a bridge configuration without IPAM ("ipam": {}).
func l2Plugin(bridge string) map[string]any {
	return map[string]any{"type": "bridge", "bridge": bridge, "ipam": map[string]any{}}
}

// linkFlags returns the flags of dev in ns ("UP", "LOWER_UP", ...).
func linkFlags(t testing.TB, ns *Netns, dev string) []string {
	t.Helper()
	var flags []string
	raw, _ := linkInfo(t, ns, dev)["flags"].([]any)
	for _, f := range raw {
		flags = append(flags, fmt.Sprint(f))
	}
	return flags
}

// L2-only: no addresses on the container or the bridge; CHECK and DEL work.
func TestBridgeL2Only(t *testing.T) {
	n := NewNode(t)
	b := newBridgeNet(t, n, l2Plugin("br"+uniq()))
	a := NewNetns(t, "a")
	res := cnitoolAdd(t, b, a)
	if len(res.IPs) != 0 || len(res.Interfaces) != 3 {
		t.Errorf("want no IPs and 3 interfaces, got %+v", res)
	}
	if got := globalAddrs(t, a, "eth0"); len(got) != 0 {
		t.Errorf("container eth0 has addresses %v", got)
	}
	if got := globalAddrs(t, n.Netns, b.bridge); len(got) != 0 {
		t.Errorf("bridge has addresses %v", got)
	}
	if !slices.Contains(linkFlags(t, a, "eth0"), "UP") {
		t.Errorf("container eth0 is not up: %v", linkFlags(t, a, "eth0"))
	}
	if out, err := n.CNITool(t, "check", b.name, a.Path); err != nil {
		t.Errorf("cnitool check: %v\n%s", err, out)
	}
	if out, err := n.CNITool(t, "del", b.name, a.Path); err != nil {
		t.Errorf("cnitool del: %v\n%s", err, out)
	}
	if v := hostVeths(t, n); len(v) != 0 {
		t.Errorf("host veths left after DEL: %v", v)
	}
}

// disableContainerInterface leaves the container end down (L2 only); with
// IPAM it is a configuration error that changes nothing.
func TestBridgeDisableContainerInterface(t *testing.T) {
	n := NewNode(t)

	t.Run("L2", func(t *testing.T) {
		plugin := l2Plugin("br" + uniq())
		plugin["disableContainerInterface"] = true
		b := newBridgeNet(t, n, plugin)
		c, rt, res := b.Attached(t, "c")
		if slices.Contains(linkFlags(t, c, "eth0"), "UP") {
			t.Errorf("container eth0 is up: %v", linkFlags(t, c, "eth0"))
		}
		if host := res.Interfaces[1].Name; !slices.Contains(linkFlags(t, n.Netns, host), "UP") {
			t.Errorf("host veth %s is not up", host)
		}
		b.MustDel(t, rt)
	})

	t.Run("with IPAM", func(t *testing.T) {
		plugin := dualStackPlugin("br"+uniq(), n.LeaseDir())
		plugin["disableContainerInterface"] = true
		b := newBridgeNet(t, n, plugin)
		c, rt := container(t, "c")
		before := settled(n.Snapshot(t))
		out, err := n.Exec(t, "bridge", "ADD", rt.ContainerID, c.Path, rt.IfName, b.pluginConf(t, "1.0.0"))
		if err == nil {
			t.Fatalf("ADD succeeded: %s", out)
		}
		if e := CNIError(t, out); e.Code != types.ErrInvalidNetworkConfig || !strings.Contains(e.Msg, "disableContainerInterface") {
			t.Errorf("want code 7 naming disableContainerInterface, got %d %q", e.Code, e.Msg)
		}
		RequireSame(t, before, settled(n.Snapshot(t)))
		if out, err := c.Run("ip", "link", "show", "eth0"); err == nil {
			t.Errorf("eth0 created in the container:\n%s", out)
		}
	})
}

// The container MAC comes from CNI_ARGS MAC= (cnitool) or runtimeConfig.mac
// (libcni capability args).
func TestBridgeMAC(t *testing.T) {
	n := NewNode(t)
	plugin := dualStackPlugin("br"+uniq(), n.LeaseDir())
	plugin["capabilities"] = map[string]any{"mac": true}
	b := newBridgeNet(t, n, plugin)

	const argsMAC, capMAC = "0a:58:0a:63:00:10", "0a:58:0a:63:00:20"
	a := NewNetns(t, "a")
	resA := cnitoolAdd(t, b, a, "CNI_ARGS=IgnoreUnknown=1;MAC="+argsMAC)
	c, rt := container(t, "c")
	rt.CapabilityArgs = map[string]any{"mac": capMAC}
	resC := b.MustAdd(t, rt)
	t.Cleanup(func() { _ = b.Del(t, rt) })

	for _, tc := range []struct {
		how  string
		ns   *Netns
		mac  string
		want string
	}{
		{"CNI_ARGS", a, resA.Interfaces[2].Mac, argsMAC},
		{"runtimeConfig", c, resC.Interfaces[2].Mac, capMAC},
	} {
		if got := linkInfo(t, tc.ns, "eth0")["address"]; got != tc.want {
			t.Errorf("%s: container eth0 MAC %v, want %s", tc.how, got, tc.want)
		}
		if tc.mac != tc.want {
			t.Errorf("%s: result gives container MAC %s, want %s", tc.how, tc.mac, tc.want)
		}
	}
	if err := b.Check(t, rt); err != nil {
		t.Errorf("CHECK: %v", err)
	}
}

// mtu applies to the bridge (created by ADD) and both veth ends.
func TestBridgeMTU(t *testing.T) {
	const mtu = 1400
	n := NewNode(t)
	plugin := dualStackPlugin("br"+uniq(), n.LeaseDir())
	plugin["mtu"] = mtu
	b := newBridgeNet(t, n, plugin)
	c, _, res := b.Attached(t, "c")

	for _, l := range []struct {
		ns  *Netns
		dev string
	}{{n.Netns, b.bridge}, {n.Netns, res.Interfaces[1].Name}, {c, "eth0"}} {
		if got := linkInfo(t, l.ns, l.dev)["mtu"]; got != float64(mtu) {
			t.Errorf("%s in %s: mtu %v, want %d", l.dev, l.ns.Name, got, mtu)
		}
	}
}

// A link that is not a bridge but has the bridge's name is a clear error
// that changes nothing (no lease, no veth).
func TestBridgeNameTakenByOtherLink(t *testing.T) {
	n := NewNode(t)
	br := "br" + uniq()
	n.MustRun(t, "ip", "link", "add", br, "type", "veth", "peer", "name", br+"p")
	b := newBridgeNet(t, n, dualStackPlugin(br, n.LeaseDir()))
	c, rt := container(t, "c")

	before := settled(n.Snapshot(t))
	out, err := n.Exec(t, "bridge", "ADD", rt.ContainerID, c.Path, rt.IfName, b.pluginConf(t, "1.0.0"))
	if err == nil {
		t.Fatalf("ADD succeeded: %s", out)
	}
	e := CNIError(t, out)
	if !strings.Contains(e.Msg, br) || !strings.Contains(e.Msg, "not a bridge") {
		t.Errorf("error does not say %s is not a bridge: %d %q", br, e.Code, e.Msg)
	}
	t.Logf("ADD error: %d %s", e.Code, e.Msg)
	RequireSame(t, before, settled(n.Snapshot(t)))
	if out, err := c.Run("ip", "link", "show", "eth0"); err == nil {
		t.Errorf("eth0 created in the container:\n%s", out)
	}
}

// The result is converted to the configuration's cniVersion: interfaces,
// and IPs pointing at the container interface (with "version" before 1.0.0).
// CHECK (from 0.4.0) accepts the converted result as prevResult.
func TestBridgeResultVersions(t *testing.T) {
	n := NewNode(t)
	b := newDualStack(t, n)
	for _, v := range []string{"0.3.1", "0.4.0", "1.0.0"} {
		t.Run(v, func(t *testing.T) {
			c, rt := container(t, "c")
			conf := b.pluginConf(t, v)
			t.Cleanup(func() { _, _ = n.Exec(t, "bridge", "DEL", rt.ContainerID, c.Path, rt.IfName, conf) })
			out, err := n.Exec(t, "bridge", "ADD", rt.ContainerID, c.Path, rt.IfName, conf)
			if err != nil {
				t.Fatalf("ADD: %v", err)
			}
			var res struct {
				CNIVersion string `json:"cniVersion"`
				Interfaces []struct {
					Name, Mac, Sandbox string
				} `json:"interfaces"`
				IPs []struct {
					Version   string `json:"version"`
					Interface *int   `json:"interface"`
					Address   string `json:"address"`
					Gateway   string `json:"gateway"`
				} `json:"ips"`
			}
			if err := json.Unmarshal(out, &res); err != nil {
				t.Fatalf("result %s: %v", out, err)
			}
			if res.CNIVersion != v {
				t.Errorf("result cniVersion %q, want %q", res.CNIVersion, v)
			}
			if len(res.Interfaces) != 3 || res.Interfaces[0].Name != b.bridge || res.Interfaces[2].Name != "eth0" || res.Interfaces[2].Sandbox != c.Path {
				t.Errorf("interfaces %+v: want bridge, host veth, eth0 in %s", res.Interfaces, c.Path)
			}
			if len(res.IPs) != 2 {
				t.Fatalf("want 2 IPs, got %s", out)
			}
			for _, ip := range res.IPs {
				if ip.Interface == nil || *ip.Interface != 2 {
					t.Errorf("IP %s: interface %v, want 2", ip.Address, ip.Interface)
				}
				if ip.Gateway != testGW4 && ip.Gateway != testGW6 {
					t.Errorf("IP %s: gateway %q", ip.Address, ip.Gateway)
				}
				wantVer := "4"
				if strings.Contains(ip.Address, ":") {
					wantVer = "6"
				}
				if v == "1.0.0" {
					wantVer = ""
				}
				if ip.Version != wantVer {
					t.Errorf("IP %s: version %q, want %q", ip.Address, ip.Version, wantVer)
				}
			}
			if v == "0.3.1" {
				return
			}
			var withPrev map[string]any
			if err := json.Unmarshal(conf, &withPrev); err != nil {
				t.Fatal(err)
			}
			withPrev["prevResult"] = json.RawMessage(out)
			checkConf, _ := json.Marshal(withPrev)
			if out, err := n.Exec(t, "bridge", "CHECK", rt.ContainerID, c.Path, rt.IfName, checkConf); err != nil {
				t.Errorf("CHECK with the %s result: %v %s", v, err, out)
			}
		})
	}
}

// A result's route keeps its priority and table in the container, as with
// the reference plugin, and two routes to one destination through different
// gateways are both installed (IPv6: one multipath route). CHECK passes on
// them and fails once the metric differs.
func TestBridgeRouteAttributes(t *testing.T) {
	n := NewNode(t)
	plugin := dualStackPlugin("br"+uniq(), n.LeaseDir())
	ipam := plugin["ipam"].(map[string]any)
	ipam["routes"] = []any{
		map[string]any{"dst": "192.168.50.0/24", "priority": 77},
		map[string]any{"dst": "192.168.51.0/24", "table": 100},
		map[string]any{"dst": "fd70::/64", "gw": "fd99:1::a"},
		map[string]any{"dst": "fd70::/64", "gw": "fd99:1::b"},
	}
	b := newBridgeNet(t, n, plugin)
	c, rt, _ := b.Attached(t, "c")

	type found struct {
		metric, table, hops int
	}
	routes := func() map[string]found {
		got := map[string]found{}
		err := c.Do(t, func() error {
			list, err := netlink.RouteListFiltered(netlink.FAMILY_ALL, &netlink.Route{Table: unix.RT_TABLE_UNSPEC}, netlink.RT_FILTER_TABLE)
			if err != nil {
				return err
			}
			for _, r := range list {
				if r.Dst == nil {
					continue
				}
				hops := len(r.MultiPath)
				if hops == 0 {
					hops = 1
				}
				f := got[r.Dst.String()]
				got[r.Dst.String()] = found{metric: r.Priority, table: r.Table, hops: f.hops + hops}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		return got
	}
	got := routes()
	if r := got["192.168.50.0/24"]; r.metric != 77 || r.table != unix.RT_TABLE_MAIN {
		t.Errorf("192.168.50.0/24: metric %d table %d, want metric 77 in the main table", r.metric, r.table)
	}
	if r := got["192.168.51.0/24"]; r.table != 100 {
		t.Errorf("192.168.51.0/24: table %d, want 100", r.table)
	}
	if r := got["fd70::/64"]; r.hops != 2 {
		t.Errorf("fd70::/64: %d next hops, want 2 (one per gateway)", r.hops)
	}
	if err := b.Check(t, rt); err != nil {
		t.Errorf("CHECK: %v", err)
	}

	// The metric is part of what CHECK compares.
	err := c.Do(t, func() error {
		_, dst, _ := net.ParseCIDR("192.168.50.0/24")
		return netlink.RouteDel(&netlink.Route{Dst: dst, Priority: 77, Table: unix.RT_TABLE_MAIN})
	})
	if err != nil {
		t.Fatal(err)
	}
	err = c.Do(t, func() error {
		l, err := netlink.LinkByName("eth0")
		if err != nil {
			return err
		}
		_, dst, _ := net.ParseCIDR("192.168.50.0/24")
		return netlink.RouteAdd(&netlink.Route{LinkIndex: l.Attrs().Index, Dst: dst, Gw: net.ParseIP("10.99.0.1"), Priority: 78})
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Check(t, rt); err == nil || !strings.Contains(err.Error(), "192.168.50.0/24") {
		t.Errorf("CHECK after the metric changed = %v, want an error naming 192.168.50.0/24", err)
	}
	b.MustDel(t, rt)
}
