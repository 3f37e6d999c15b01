package integration

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	current "github.com/containernetworking/cni/pkg/types/100"
)

// l2Conf is a single-plugin bridge configuration with extra keys.
func l2Conf(n *Node, network, bridge, subnet, extra string) []byte {
	return []byte(fmt.Sprintf(`{"cniVersion":"1.1.0","name":%q,"type":"bridge","bridge":%q,"isGateway":true%s,
		"ipam":{"type":"host-local","dataDir":%q,"ranges":[[{"subnet":%q}]]}}`, network, bridge, extra, n.LeaseDir(), subnet))
}

// attach runs bridge ADD for a new container namespace and returns it and its IPv4 address.
func attach(t *testing.T, n *Node, conf []byte, role string) (*Netns, string) {
	t.Helper()
	c, addr, _ := attachResult(t, n, conf, role)
	return c, addr
}

// attachResult is attach that also returns the result ADD printed.
func attachResult(t *testing.T, n *Node, conf []byte, role string) (*Netns, string, *current.Result) {
	t.Helper()
	c := NewNetns(t, role)
	id := "ctr-" + c.Name
	printed, err := n.Exec(t, "bridge", "ADD", id, c.Path, "eth0", conf)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _, _ = n.Exec(t, "bridge", "DEL", id, c.Path, "eth0", conf) })
	res := &current.Result{}
	if err := json.Unmarshal(printed, res); err != nil {
		t.Fatalf("ADD result %q: %v", printed, err)
	}
	out := c.MustRun(t, "ip", "-4", "-o", "addr", "show", "eth0")
	f := strings.Fields(out)
	if len(f) < 4 {
		t.Fatalf("no IPv4 address on eth0 in %s: %q", c.Name, out)
	}
	return c, strings.Split(f[3], "/")[0], res
}

func reaches(c *Netns, addr string) bool {
	_, err := c.Run("ping", "-c1", "-W1", addr)
	return err == nil
}

// The macspoofchk key through the plugin: after a container changes its MAC,
// its frames are dropped at the bridge, and DEL removes the check.
func TestMacSpoofCheck(t *testing.T) {
	n := NewNode(t)
	conf := l2Conf(n, "spoof", "spbr"+uniq()[:4], "10.61.0.0/24", `,"macspoofchk":true`)
	a, _ := attach(t, n, conf, "spoof-a")
	b, bAddr := attach(t, n, conf, "spoof-b")
	if !reaches(a, bAddr) {
		t.Fatal("containers do not reach each other before the MAC change")
	}
	if out := n.MustRun(t, "nft", "list", "ruleset"); !strings.Contains(out, "ctr-"+a.Name) {
		t.Fatalf("no spoof check rule naming container %s:\n%s", a.Name, out)
	}
	a.MustRun(t, "ip", "link", "set", "eth0", "address", "02:00:00:00:be:ef")
	a.MustRun(t, "ip", "neigh", "flush", "all")
	if reaches(a, bAddr) {
		t.Fatal("container still reaches the other after changing its MAC")
	}
	// DEL removes the container's rule.
	if _, err := n.Exec(t, "bridge", "DEL", "ctr-"+a.Name, a.Path, "eth0", conf); err != nil {
		t.Fatal(err)
	}
	if out := n.MustRun(t, "nft", "list", "ruleset"); strings.Contains(out, "ctr-"+a.Name) {
		t.Fatalf("spoof check rule of %s left after DEL:\n%s", a.Name, out)
	}
	_ = b
}

// The portIsolation key: isolated ports cannot reach each other but reach the gateway.
func TestPortIsolation(t *testing.T) {
	n := NewNode(t)
	conf := l2Conf(n, "isol", "isbr"+uniq()[:4], "10.62.0.0/24", `,"portIsolation":true`)
	a, aAddr := attach(t, n, conf, "isol-a")
	b, bAddr := attach(t, n, conf, "isol-b")
	if reaches(a, bAddr) || reaches(b, aAddr) {
		t.Fatal("isolated ports reach each other")
	}
	for _, c := range []*Netns{a, b} {
		if !reaches(c, "10.62.0.1") {
			t.Fatalf("%s does not reach the gateway", c.Name)
		}
	}
}

// vlan and vlanTrunk on a kernel without bridge VLAN filtering fail before
// anything changes, saying what the kernel lacks.
func TestVlanWithoutKernelSupport(t *testing.T) {
	n := NewNode(t)
	probe := "vfprobe" + uniq()[:4]
	if _, err := n.Run("ip", "link", "add", probe, "type", "bridge", "vlan_filtering", "1"); err == nil {
		n.MustRun(t, "ip", "link", "del", probe)
		t.Skip("this kernel supports bridge VLAN filtering; the VLAN tests of pkg/l2 cover it")
	}
	c := NewNetns(t, "vlan")
	for _, extra := range []string{`,"vlan":100`, `,"vlanTrunk":[{"minID":10,"maxID":20}]`} {
		conf := l2Conf(n, "vlan", "vlbr"+uniq()[:4], "10.63.0.0/24", extra)
		before := n.Snapshot(t)
		out, err := n.Exec(t, "bridge", "ADD", "ctr-vlan", c.Path, "eth0", conf)
		if err == nil {
			t.Fatalf("ADD with %s succeeded on a kernel without VLAN filtering", extra)
		}
		e := CNIError(t, out)
		if e.Code != 7 || !strings.Contains(e.Msg, "VLAN filtering") {
			t.Fatalf("ADD with %s: got code %d %q, want 7 naming VLAN filtering", extra, e.Code, e.Msg)
		}
		RequireSame(t, before, n.Snapshot(t))
	}
}

// vlan and vlanTrunk where the kernel has bridge VLAN filtering: the port
// carries the VLAN untagged (PVID) and the trunk VLANs tagged, and the gateway
// sits on "<bridge>.<vlan>" as with the reference. Skips elsewhere.
func TestVlanWithKernelSupport(t *testing.T) {
	n := NewNode(t)
	probe := "vfprobe" + uniq()[:4]
	if _, err := n.Run("ip", "link", "add", probe, "type", "bridge", "vlan_filtering", "1"); err != nil {
		t.Skip("this kernel lacks bridge VLAN filtering (CONFIG_BRIDGE_VLAN_FILTERING): the vlan keys fail clearly here, see TestVlanWithoutKernelSupport")
	}
	n.MustRun(t, "ip", "link", "del", probe)
	br := "vlbr" + uniq()[:4]
	conf := l2Conf(n, "vlan", br, "10.65.0.0/24", `,"vlan":100,"vlanTrunk":[{"id":200},{"minID":300,"maxID":302}]`)
	c, _, res := attachResult(t, n, conf, "vlan")
	// As the reference, the result lists the gateway device fourth.
	gwName := br + ".100"
	if len(res.Interfaces) != 4 || res.Interfaces[3].Name != gwName || res.Interfaces[3].Sandbox != "" {
		t.Errorf("result interfaces %v, want the 4th to be %s on the node", res.Interfaces, gwName)
	} else if live := n.MustRun(t, "cat", "/sys/class/net/"+gwName+"/address"); res.Interfaces[3].Mac != strings.TrimSpace(live) {
		t.Errorf("result gives %s the MAC %s, the link has %s", gwName, res.Interfaces[3].Mac, live)
	}
	vlans := n.MustRun(t, "bridge", "vlan", "show")
	host := hostVethOf(t, n, c)
	for _, want := range []string{"100 PVID Egress Untagged", "200", "300", "302"} {
		if !strings.Contains(vlans, want) {
			t.Errorf("bridge vlan show lacks %q for %s:\n%s", want, host, vlans)
		}
	}
	if out := n.MustRun(t, "ip", "-o", "addr", "show", br+".100"); !strings.Contains(out, "10.65.0.1/24") {
		t.Errorf("gateway not on %s.100: %s", br, out)
	}
	if !reaches(c, "10.65.0.1") {
		t.Error("container does not reach its VLAN gateway")
	}
}

// hostVethOf names the node end of the container's eth0.
func hostVethOf(t *testing.T, n *Node, c *Netns) string {
	t.Helper()
	out := c.MustRun(t, "ip", "-o", "link", "show", "eth0")
	// "2: eth0@if7: ..." -> peer index 7
	i := strings.Index(out, "@if")
	if i < 0 {
		t.Fatalf("no peer index in %q", out)
	}
	idx := strings.TrimSpace(strings.SplitN(out[i+3:], ":", 2)[0])
	for _, l := range strings.Split(n.MustRun(t, "ip", "-o", "link", "show"), "\n") {
		if strings.HasPrefix(l, idx+": ") {
			return strings.SplitN(strings.TrimPrefix(l, idx+": "), "@", 2)[0]
		}
	}
	t.Fatalf("no link %s on the node", idx)
	return ""
}
