package integration

import (
	"encoding/json"
	"fmt"
	"net"
	"strings"
	"testing"

	"github.com/containernetworking/cni/libcni"
	current "github.com/containernetworking/cni/pkg/types/100"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// checkWith runs the bridge binary's CHECK for rt with prev as prevResult,
// as a runtime hands it over; it returns the CNI error's message, or "" when
// CHECK passed.
func (b *bridgeNet) checkWith(t *testing.T, rt *libcni.RuntimeConf, prev *current.Result) string {
	t.Helper()
	var conf map[string]any
	if err := json.Unmarshal(b.pluginConf(t, "1.1.0"), &conf); err != nil {
		t.Fatal(err)
	}
	conf["prevResult"] = prev
	raw, err := json.Marshal(conf)
	if err != nil {
		t.Fatal(err)
	}
	out, err := b.node.Exec(t, "bridge", "CHECK", rt.ContainerID, rt.NetNS, rt.IfName, raw)
	if err == nil {
		return ""
	}
	return CNIError(t, out).Msg
}

// cloneResult is a deep copy of res.
func cloneResult(t *testing.T, res *current.Result) *current.Result {
	t.Helper()
	raw, err := json.Marshal(res)
	if err != nil {
		t.Fatal(err)
	}
	var out current.Result
	if err := json.Unmarshal(raw, &out); err != nil {
		t.Fatal(err)
	}
	return &out
}

// withoutInterface is res without its interface named name and sandbox,
// the IPs' interface indexes following.
func withoutInterface(t *testing.T, res *current.Result, name, sandbox string) *current.Result {
	t.Helper()
	out := cloneResult(t, res)
	out.Interfaces = nil
	removed := -1
	for i, iface := range res.Interfaces {
		if iface.Name == name && iface.Sandbox == sandbox {
			removed = i
			continue
		}
		c := *iface
		out.Interfaces = append(out.Interfaces, &c)
	}
	if removed < 0 {
		t.Fatalf("result has no interface %q in sandbox %q: %+v", name, sandbox, res.Interfaces)
	}
	for _, ip := range out.IPs {
		if ip.Interface != nil && *ip.Interface > removed {
			ip.Interface = current.Int(*ip.Interface - 1)
		}
	}
	return out
}

// otherMAC is mac with its last byte changed.
func otherMAC(t *testing.T, mac string) string {
	t.Helper()
	hw, err := net.ParseMAC(mac)
	if err != nil {
		t.Fatalf("MAC %q: %v", mac, err)
	}
	hw[5] ^= 0x5a
	return hw.String()
}

// wantCheckFails fails the test unless msg (a CHECK error, "" when CHECK
// passed) holds every one of parts.
func wantCheckFails(t *testing.T, why, msg string, parts ...string) {
	t.Helper()
	if msg == "" {
		t.Errorf("CHECK passed %s", why)
		return
	}
	t.Logf("CHECK %s: %s", why, msg)
	for _, p := range parts {
		if !strings.Contains(msg, p) {
			t.Errorf("CHECK error %s does not name %s: %s", why, p, msg)
		}
	}
}

// promiscCapture opens, in the node, a packet socket in promiscuous mode on
// dev, as tcpdump does; the returned function closes it (also at cleanup).
func promiscCapture(t *testing.T, n *Node, dev string) func() {
	t.Helper()
	fd := -1
	err := n.Do(t, func() error {
		l, err := netlink.LinkByName(dev)
		if err != nil {
			return err
		}
		if fd, err = unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, 0); err != nil {
			return err
		}
		mreq := &unix.PacketMreq{Ifindex: int32(l.Attrs().Index), Type: unix.PACKET_MR_PROMISC}
		return unix.SetsockoptPacketMreq(fd, unix.SOL_PACKET, unix.PACKET_ADD_MEMBERSHIP, mreq)
	})
	closeFD := func() {
		if fd >= 0 {
			unix.Close(fd)
			fd = -1
		}
	}
	t.Cleanup(closeFD)
	if err != nil {
		t.Fatalf("promiscuous capture on %s: %v", dev, err)
	}
	if p, _ := linkInfo(t, n.Netns, dev)["promiscuity"].(float64); p < 1 {
		t.Fatalf("the capture did not raise the promiscuity of %s", dev)
	}
	return closeFD
}

// CHECK holds the bridge's promiscuous mode to promiscMode, both ways: it
// fails, naming the bridge and both values, once the mode is flipped by hand,
// and passes again once it is put back. A packet capture does not flip it.
func TestBridgeCheckPromisc(t *testing.T) {
	for _, promisc := range []bool{false, true} {
		t.Run(fmt.Sprintf("promiscMode %v", promisc), func(t *testing.T) {
			n := NewNode(t)
			plugin := dualStackPlugin("br"+uniq(), n.LeaseDir())
			plugin["promiscMode"] = promisc
			b := newBridgeNet(t, n, plugin)
			_, rt, _ := b.Attached(t, "c")
			if err := b.Check(t, rt); err != nil {
				t.Fatalf("CHECK after ADD: %v", err)
			}

			// A capture in promiscuous mode (as tcpdump's) raises the
			// bridge's promiscuity count, not its flag: no failure.
			closeCapture := promiscCapture(t, n, b.bridge)
			if err := b.Check(t, rt); err != nil {
				t.Errorf("CHECK during a promiscuous capture on the bridge: %v", err)
			}
			closeCapture()

			live, flipped := "off", "on"
			if promisc {
				live, flipped = "on", "off"
			}
			n.MustRun(t, "ip", "link", "set", "dev", b.bridge, "promisc", flipped)
			wantCheckFails(t, "with the bridge's promiscuous mode turned "+flipped, errString(b.Check(t, rt)),
				fmt.Sprintf("%q", b.bridge), "promiscuous mode is "+flipped, fmt.Sprintf("promiscMode is %v", promisc))

			n.MustRun(t, "ip", "link", "set", "dev", b.bridge, "promisc", live)
			if err := b.Check(t, rt); err != nil {
				t.Errorf("CHECK with promiscuous mode back %s: %v", live, err)
			}
		})
	}
}

// CHECK fails, naming the host veth and both MACs, once the host veth's MAC
// was changed by hand.
func TestBridgeCheckHostVethMAC(t *testing.T) {
	n := NewNode(t)
	b := newDualStack(t, n)
	_, rt, res := b.Attached(t, "c")
	if err := b.Check(t, rt); err != nil {
		t.Fatalf("CHECK after ADD: %v", err)
	}

	host := res.Interfaces[1]
	if host.Sandbox != "" || !strings.HasPrefix(host.Name, "veth") {
		t.Fatalf("result's second interface %+v is not the host veth", host)
	}
	mac := otherMAC(t, host.Mac)
	n.MustRun(t, "ip", "link", "set", "dev", host.Name, "address", mac)
	wantCheckFails(t, "after the host veth's MAC changed", errString(b.Check(t, rt)),
		fmt.Sprintf("%q", host.Name), "MAC is "+mac, "prevResult has "+host.Mac)
}

// prevResult must list the bridge and the host veth, on the node (no
// sandbox); CHECK fails naming the one it lacks.
func TestBridgeCheckPrevResultInterfaces(t *testing.T) {
	n := NewNode(t)
	b := newDualStack(t, n)
	c, rt, res := b.Attached(t, "c")
	if msg := b.checkWith(t, rt, res); msg != "" {
		t.Fatalf("CHECK with ADD's result: %s", msg)
	}
	host := res.Interfaces[1].Name

	wantCheckFails(t, "without the bridge in prevResult", b.checkWith(t, rt, withoutInterface(t, res, b.bridge, "")),
		fmt.Sprintf("bridge %q", b.bridge))
	wantCheckFails(t, "without the host veth in prevResult", b.checkWith(t, rt, withoutInterface(t, res, host, "")),
		fmt.Sprintf("host veth %q", host))

	inSandbox := cloneResult(t, res)
	inSandbox.Interfaces[0].Sandbox = c.Path
	wantCheckFails(t, "with the bridge in a sandbox in prevResult", b.checkWith(t, rt, inSandbox),
		fmt.Sprintf("bridge %q", b.bridge), c.Path)

	wrongMAC := cloneResult(t, res)
	wrongMAC.Interfaces[1].Mac = otherMAC(t, res.Interfaces[1].Mac)
	wantCheckFails(t, "with another host veth MAC in prevResult", b.checkWith(t, rt, wrongMAC),
		fmt.Sprintf("%q", host), "prevResult has "+wrongMAC.Interfaces[1].Mac)

	// A MAC left out is not compared, as with the reference.
	noMACs := cloneResult(t, res)
	noMACs.Interfaces[0].Mac, noMACs.Interfaces[1].Mac = "", ""
	if msg := b.checkWith(t, rt, noMACs); msg != "" {
		t.Errorf("CHECK with prevResult giving no bridge and host veth MACs: %s", msg)
	}
}

// The bridge's MAC: a gateway bridge's is pinned by ADD, so CHECK compares
// it with prevResult's and passes when containers come and go; a bridge that
// is no gateway takes the lowest MAC of its ports, and CHECK passes though it
// changed when another container joined.
func TestBridgeCheckBridgeMAC(t *testing.T) {
	for _, tc := range []struct {
		name    string
		gateway bool
		ipam    bool
	}{
		{"gateway", true, true},
		{"no gateway", false, true},
		{"L2 only", false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n := NewNode(t)
			plugin := dualStackPlugin("br"+uniq(), n.LeaseDir())
			plugin["isGateway"] = tc.gateway
			if !tc.ipam {
				plugin = l2Plugin(plugin["bridge"].(string))
			}
			b := newBridgeNet(t, n, plugin)
			_, rt1 := container(t, "c1")
			res1 := b.MustAdd(t, rt1)
			t.Cleanup(func() { _ = b.Del(t, rt1) })
			brMAC := res1.Interfaces[0].Mac
			if got := linkInfo(t, n.Netns, b.bridge)["address"]; got != brMAC {
				t.Fatalf("bridge MAC %v, ADD's result has %s", got, brMAC)
			}

			// A second container whose host veth has a MAC below any the
			// kernel draws: an unpinned bridge takes it.
			_, rt2 := container(t, "c2")
			res2 := b.MustAdd(t, rt2)
			t.Cleanup(func() { _ = b.Del(t, rt2) })
			n.MustRun(t, "ip", "link", "set", "dev", res2.Interfaces[1].Name, "address", "02:00:00:00:00:01")
			now := linkInfo(t, n.Netns, b.bridge)["address"]
			if tc.gateway && now != brMAC {
				t.Fatalf("gateway bridge MAC changed from %s to %v when a port's MAC changed: not pinned", brMAC, now)
			}
			if !tc.gateway && now == brMAC {
				t.Fatalf("bridge MAC stayed %s: the kernel did not take the lower port MAC, the test tests nothing", brMAC)
			}
			if err := b.Check(t, rt1); err != nil {
				t.Errorf("CHECK of the first container after another joined: %v", err)
			}

			if tc.gateway {
				mac := otherMAC(t, brMAC)
				n.MustRun(t, "ip", "link", "set", "dev", b.bridge, "address", mac)
				wantCheckFails(t, "after the gateway bridge's MAC changed", errString(b.Check(t, rt1)),
					fmt.Sprintf("%q", b.bridge), "MAC is "+mac, "prevResult has "+brMAC)
			}
		})
	}
}

// A network without a default route (isGateway only): CHECK fails, naming
// the interface or the route, when the container interface was set down
// (it keeps its addresses, not their subnet routes) or an address's subnet
// route was removed, as the reference's CHECK does: the container reaches
// nothing then.
func TestBridgeCheckContainerSubnetRoutes(t *testing.T) {
	for _, tc := range []struct {
		name   string
		tamper []string // run in the container
		want   []string
	}{
		{name: "interface down", tamper: []string{"ip", "link", "set", "eth0", "down"}, want: []string{"eth0", "interface is down"}},
		{name: "IPv4 subnet route removed", tamper: []string{"ip", "route", "del", testSubnet4, "dev", "eth0"}, want: []string{"eth0", "route " + testSubnet4 + " of address"}},
		{name: "IPv6 subnet route removed", tamper: []string{"ip", "-6", "route", "del", testSubnet6, "dev", "eth0"}, want: []string{"eth0", "route " + testSubnet6 + " of address"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n := NewNode(t)
			b := newDualStack(t, n)
			c, rt, _ := b.Attached(t, "c")
			if err := b.Check(t, rt); err != nil {
				t.Fatalf("CHECK after ADD: %v", err)
			}
			c.MustRun(t, tc.tamper...)
			wantCheckFails(t, "after "+strings.Join(tc.tamper, " "), errString(b.Check(t, rt)), tc.want...)
		})
	}
}
