package bridge

import (
	"errors"
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/containernetworking/cni/pkg/skel"
	"github.com/containernetworking/cni/pkg/types"

	"github.com/flatcni/plugins/pkg/bridge/hostveth"
	"github.com/flatcni/plugins/pkg/config"
	"github.com/flatcni/plugins/pkg/firewall"
)

// fakePorts gives one firewall.FakePorts for any backend and records the
// bridges route_localnet was set on.
type fakePorts struct {
	*firewall.FakePorts
	localnet  []string
	teardowns []bool   // the teardown argument of each Backend call
	names     []string // the name argument of each Backend call
	// localnetOn: route_localnet as the bridges have it now.
	localnetOn map[string]bool
	// noLocalnetErr fails NoRouteLocalnet.
	noLocalnetErr error
	// byName, when set, are the backends called "iptables" and
	// "nftables" (a network whose ipMasqBackend changed); FakePorts is
	// then the default's (""). Without it, FakePorts answers for the
	// name in force, and every other name is a backend holding nothing.
	byName map[string]*firewall.FakePorts
	// published: a backend was asked for to publish (not for teardown),
	// as Publish makes the node's claims index; holders: Holder calls.
	published bool
	holders   int
	// refSeen: ReferencePortmapSeen's answer; refSeens, refRemoved: its
	// calls and RemoveReferencePortmap's.
	refSeen    bool
	refSeens   int
	refRemoved []firewall.PortmapSelection
}

func (f *fakePorts) ReferencePortmapSeen() bool {
	f.refSeens++
	return f.refSeen
}

func (f *fakePorts) RemoveReferencePortmap(sel firewall.PortmapSelection, commands bool) error {
	f.refRemoved = append(f.refRemoved, sel)
	return nil
}

func (f *fakePorts) Backend(name string, teardown bool, unguard func(backend string) error) (firewall.Ports, error) {
	f.teardowns = append(f.teardowns, teardown)
	f.names = append(f.names, name)
	f.published = f.published || !teardown
	if b := f.byName[name]; b != nil {
		return b.WithUnguard(unguard), nil
	}
	if name == firewall.IPTablesName || name == firewall.NFTablesName {
		// Asked for by name beside the backend in force (DEL and GC look
		// at both): another backend, empty.
		return firewall.NewFakePortsNamed(name).WithUnguard(unguard), nil
	}
	return f.FakePorts.WithUnguard(unguard), nil
}

// Holder: the backend of byName holding the network's rule set; without
// byName, FakePorts' name when it holds one (as netlink shows a node's);
// else "" (the default backend's choice).
func (f *fakePorts) Holder(network string) string {
	f.holders++
	for name, b := range f.byName {
		if b.Holds(network) {
			return name
		}
	}
	if f.byName == nil && f.FakePorts.Holds(network) {
		return f.FakePorts.Name()
	}
	return ""
}

// Indexed: a backend was asked for to publish (indexed), and one holds a
// mapping of the network, as the claims index records it, whether or not
// Holder (netlink) shows its rule set (recorded).
func (f *fakePorts) Indexed(network string) (indexed, recorded bool) {
	return f.published, f.recorded(network)
}

func (f *fakePorts) recorded(network string) bool {
	if !f.published {
		return false
	}
	for _, b := range append([]*firewall.FakePorts{f.FakePorts}, slices.Collect(maps.Values(f.byName))...) {
		if list, _ := b.List(); slices.ContainsFunc(list, func(p firewall.Published) bool { return p.Network == network }) {
			return true
		}
	}
	return false
}

func (f *fakePorts) NoRouteLocalnet(bridge string) error {
	if f.noLocalnetErr != nil {
		return f.noLocalnetErr
	}
	delete(f.localnetOn, bridge)
	return nil
}
func (f *fakePorts) RouteLocalnet(bridge string) error {
	f.localnet = append(f.localnet, bridge)
	if f.localnetOn == nil {
		f.localnetOn = map[string]bool{}
	}
	f.localnetOn[bridge] = true
	return nil
}

func portsFor(t *testing.T, stdin string, fake *firewall.FakePorts) *ports {
	t.Helper()
	c, err := config.LoadBridge([]byte(stdin), "")
	if err != nil {
		t.Fatal(err)
	}
	d := &Deps{Ports: &fakePorts{FakePorts: fake}}
	p, err := d.loadPorts(c, &skel.CmdArgs{ContainerID: "c1", IfName: "eth0", StdinData: []byte(stdin)})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

const portsConf = `{"cniVersion":"1.1.0","name":"net1","type":"bridge","bridge":"br1",
	"capabilities":{"portMappings":true},
	"ipam":{"type":"host-local","ranges":[[{"subnet":"10.1.0.0/24"}]]},
	"runtimeConfig":{"portMappings":[
		{"hostPort":8080,"containerPort":80,"protocol":"tcp"},
		{"hostPort":53,"containerPort":53,"protocol":"udp","hostIP":"2001:db8::1"}]}}`

func TestPortsFirewallMappings(t *testing.T) {
	p := portsFor(t, portsConf, firewall.NewFakePorts())
	got, err := p.firewallMappings([]netip.Prefix{netip.MustParsePrefix("10.1.0.2/24"), netip.MustParsePrefix("fd01::2/64"), netip.MustParsePrefix("fd01::3/64")})
	if err != nil {
		t.Fatal(err)
	}
	want := []firewall.Mapping{
		{Protocol: "tcp", HostPort: 8080, ContainerIP: netip.MustParseAddr("10.1.0.2"), ContainerPort: 80},
		{Protocol: "tcp", HostPort: 8080, ContainerIP: netip.MustParseAddr("fd01::2"), ContainerPort: 80},
		{Protocol: "udp", HostIP: netip.MustParseAddr("2001:db8::1"), HostPort: 53, ContainerIP: netip.MustParseAddr("fd01::2"), ContainerPort: 53},
	}
	if len(got) != len(want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("mapping %d: %+v, want %+v", i, got[i], want[i])
		}
	}
	// Entries that agree where they overlap are published once.
	dup := strings.Replace(portsConf, `{"hostPort":8080,"containerPort":80,"protocol":"tcp"},`, `{"hostPort":8080,"containerPort":80,"protocol":"tcp"},{"hostPort":8080,"containerPort":80,"protocol":"TCP","hostIP":"0.0.0.0"},{"hostPort":8080,"containerPort":80},`, 1)
	if got, err := portsFor(t, dup, firewall.NewFakePorts()).firewallMappings([]netip.Prefix{netip.MustParsePrefix("10.1.0.2/24"), netip.MustParsePrefix("fd01::2/64")}); err != nil || !slices.Equal(got, want) {
		t.Errorf("overlapping entries: %v, %v; want %v", got, err, want)
	}
	// An IPv6 host address for an IPv4-only container names the entry.
	_, err = p.firewallMappings([]netip.Prefix{netip.MustParsePrefix("10.1.0.2/24")})
	if err == nil || !strings.Contains(err.Error(), "runtimeConfig.portMappings[1].hostIP") {
		t.Errorf("IPv4-only container: %v", err)
	}
}

func TestPortsPrecheck(t *testing.T) {
	fake := firewall.NewFakePorts()
	holder := firewall.Attachment{ContainerID: "c0", IfName: "eth0"}
	if err := fake.Publish(firewall.PortNetwork{Name: "other", Bridge: "br2"}, holder,
		[]firewall.Mapping{{Protocol: "tcp", HostPort: 8080, ContainerIP: netip.MustParseAddr("10.2.0.2"), ContainerPort: 80}}); err != nil {
		t.Fatal(err)
	}
	dual := strings.Replace(portsConf, `[[{"subnet":"10.1.0.0/24"}]]`, `[[{"subnet":"10.1.0.0/24"}],[{"subnet":"fd01::/64"}]]`, 1)
	p := portsFor(t, dual, fake)
	err := p.precheck()
	if err == nil || !strings.Contains(err.Error(), "8080") || !strings.Contains(err.Error(), `"c0"`) || !strings.Contains(err.Error(), `"other"`) {
		t.Errorf("precheck = %v, want a conflict naming 8080, c0 and network other", err)
	}
	if te := (*types.Error)(nil); !errors.As(err, &te) || te.Code != types.ErrTryAgainLater {
		t.Errorf("precheck = %v, want CNI code %d", err, types.ErrTryAgainLater)
	}
	if calls := fake.Calls(); len(calls) != 1 {
		t.Errorf("precheck changed the fake: %v", calls)
	}
	if err := fake.Retain("other", nil); err != nil {
		t.Fatal(err)
	}
	if err := p.precheck(); err != nil {
		t.Errorf("precheck with nothing published: %v", err)
	}
	// An IPv6 host address on an IPv4-only network fails before the node changes.
	if err := portsFor(t, portsConf, fake).precheck(); err == nil || !strings.Contains(err.Error(), "portMappings[1].hostIP") {
		t.Errorf("precheck of an IPv6 hostIP on an IPv4-only network: %v", err)
	}
}

// CHECK names a mapping that is missing, and one published that the
// runtime no longer asks for.
func TestPortsCheck(t *testing.T) {
	fake := firewall.NewFakePorts()
	addrs := []netip.Prefix{netip.MustParsePrefix("10.1.0.2/24"), netip.MustParsePrefix("fd01::2/64")}
	both := strings.Replace(portsConf, `,"hostIP":"2001:db8::1"`, "", 1)
	p := portsFor(t, both, fake)
	maps, err := p.firewallMappings(addrs)
	if err != nil {
		t.Fatal(err)
	}
	if err := fake.Publish(firewall.PortNetwork{Name: "net1", Bridge: "br1"}, p.owner, maps); err != nil {
		t.Fatal(err)
	}
	if err := portsFor(t, both, fake).check(addrs); err != nil {
		t.Errorf("CHECK of what ADD published: %v", err)
	}
	tcpOnly := strings.Replace(both, `,
		{"hostPort":53,"containerPort":53,"protocol":"udp"}`, "", 1)
	err = portsFor(t, tcpOnly, fake).check(addrs)
	if err == nil || !strings.Contains(err.Error(), "*:53/udp (IPv4) to 10.1.0.2:53") || !strings.Contains(err.Error(), "does not ask for it") {
		t.Errorf("CHECK with a mapping fewer: %v", err)
	}
	more := strings.Replace(both, `"protocol":"udp"}`, `"protocol":"udp"},{"hostPort":9090,"containerPort":90}`, 1)
	err = portsFor(t, more, fake).check(addrs)
	if err == nil || !strings.Contains(err.Error(), "*:9090/tcp (IPv4) to 10.1.0.2:90") || !strings.Contains(err.Error(), "is not published") {
		t.Errorf("CHECK with a mapping more: %v", err)
	}
}

// An entry whose capabilities do not declare portMappings (libcni passes
// them on) leaves runtimeConfig.portMappings to another plugin.
func TestPortsNotEnabled(t *testing.T) {
	conf := strings.Replace(portsConf, `"capabilities":{"portMappings":true},`, `"capabilities":{"mac":true},`, 1)
	p := portsFor(t, conf, firewall.NewFakePorts())
	if p.enabled || len(p.maps) != 0 || p.hairpin() {
		t.Errorf("without the capability: enabled %t, %d mappings", p.enabled, len(p.maps))
	}
	if err := p.check(nil); err != nil {
		t.Errorf("check without the capability: %v", err)
	}
}

// TestPortsVerbs: ADD publishes on the container's address (with hairpin
// mode on its port and route_localnet on the bridge), a second container
// asking for the same host port fails before anything is made, DEL
// unpublishes, GC keeps only valid attachments.
func TestPortsVerbs(t *testing.T) {
	n := newFakeNode(testNetns, "/run/netns/c2", "/run/netns/c3")
	fp := n.deps.Ports.(*fakePorts)
	conf := testConf("host-local", `,"capabilities":{"portMappings":true},"runtimeConfig":{"portMappings":[{"hostPort":8080,"containerPort":80}]}`)
	addOK(t, n, testArgs(conf, "c1"))
	list, _ := fp.List()
	if len(list) != 1 || list[0].Owner.ContainerID != "c1" || list[0].ContainerIP != netip.MustParseAddr("10.1.0.2") || list[0].HostPort != 8080 {
		t.Fatalf("published after ADD: %+v", list)
	}
	if len(fp.localnet) != 1 || fp.localnet[0] != "cni0" {
		t.Errorf("route_localnet set on %v, want cni0", fp.localnet)
	}
	if h := n.links.hosts[hostveth.Name("c1", "eth0")]; h == nil || !h.hairpin {
		t.Errorf("the publishing container's port is not in hairpin mode: %+v", h)
	}

	args2 := testArgs(conf, "c2")
	args2.Netns = "/run/netns/c2"
	if _, err := n.deps.Add(args2); err == nil || !strings.Contains(err.Error(), "8080") || !strings.Contains(err.Error(), `"c1"`) {
		t.Errorf("second ADD of host port 8080: %v, want a conflict naming c1", err)
	}
	if h := n.links.hosts[hostveth.Name("c2", "eth0")]; h != nil {
		t.Errorf("the conflicting ADD made a veth: %+v", h)
	}

	other := testConf("host-local", `,"capabilities":{"portMappings":true},"runtimeConfig":{"portMappings":[{"hostPort":9090,"containerPort":80}]}`)
	args3 := testArgs(other, "c3")
	args3.Netns = "/run/netns/c3"
	addOK(t, n, args3)
	gcConf := strings.Replace(string(testConf("host-local", `,"cni.dev/valid-attachments":[{"containerID":"c3","ifname":"eth0"}]`)), `"1.0.0"`, `"1.1.0"`, 1)
	if err := n.deps.GC(&skel.CmdArgs{Path: "/opt/cni/bin", StdinData: []byte(gcConf)}); err != nil {
		t.Fatalf("GC: %v", err)
	}
	if list, _ := fp.List(); len(list) != 1 || list[0].Owner.ContainerID != "c3" {
		t.Errorf("after GC keeping c3: %+v", list)
	}
	if err := n.deps.Del(args3); err != nil {
		t.Fatalf("DEL c3: %v", err)
	}
	if list, _ := fp.List(); len(list) != 0 {
		t.Errorf("after DEL: %+v", list)
	}
}

// An ADD that publishes nothing on a network that may publish refreshes
// the network's rules (a DROP policy set since); one on a network without
// the capability asks nothing of the publisher.
func TestPortsRefreshWithoutMappings(t *testing.T) {
	n := newFakeNode(testNetns, "/run/netns/c2")
	fp := n.deps.Ports.(*fakePorts)
	addOK(t, n, testArgs(testConf("host-local", `,"capabilities":{"portMappings":true}`), "c1"))
	if calls := fp.Calls(); !slices.Contains(calls, "Refresh net1") {
		t.Errorf("calls %v, want Refresh net1", calls)
	}
	before := len(fp.Calls())
	args := testArgs(testConf("host-local", ""), "c2")
	args.Netns = "/run/netns/c2"
	addOK(t, n, args)
	if calls := fp.Calls(); len(calls) != before {
		t.Errorf("an ADD without the capability asked the publisher: %v", calls[before:])
	}
}

// ADD asks for the port publisher that needs its lock; DEL and GC for the
// teardown one, which goes on without a lock it cannot have.
func TestPortsTeardownBackend(t *testing.T) {
	c, err := config.LoadBridge([]byte(portsConf), "")
	if err != nil {
		t.Fatal(err)
	}
	fake := &fakePorts{FakePorts: firewall.NewFakePorts()}
	d := &Deps{Ports: fake}
	args := &skel.CmdArgs{ContainerID: "c1", IfName: "eth0", StdinData: []byte(portsConf)}
	p, err := d.loadPorts(c, args)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.backend(); err != nil {
		t.Fatal(err)
	}
	if _, err := d.teardownPorts(c, args).backend(); err != nil {
		t.Fatal(err)
	}
	if want := []bool{false, true}; len(fake.teardowns) != 2 || fake.teardowns[0] != want[0] || fake.teardowns[1] != want[1] {
		t.Errorf("Backend teardown arguments %v, want %v", fake.teardowns, want)
	}
}

// The ports rule set's subnets (whose DNAT'd traffic back to the bridge is
// masqueraded: hairpin) are the network's configured subnets, as for the
// masquerade rules (docs/design.md: "the same subnets whatever address it
// got"), not those of the publishing container's own address: otherwise a
// container given an address in another range of the set rewrites the
// network's fixed rules without the first container's subnet.
func TestPortsNetworkSubnetsAreTheConfiguredOnes(t *testing.T) {
	n := newFakeNode(testNetns, "/run/netns/c2")
	fp := n.deps.Ports.(*fakePorts)
	both := []netip.Prefix{netip.MustParsePrefix("10.1.0.0/24"), netip.MustParsePrefix("10.2.0.0/24")}
	n.ipam.subnets = both
	conf := testConf("host-local", `,"capabilities":{"portMappings":true},"runtimeConfig":{"portMappings":[{"hostPort":8080,"containerPort":80}]}`)
	addOK(t, n, testArgs(conf, "c1"))
	// c2 gets its address in the set's second range.
	n.ipam.next = netip.MustParseAddr("10.2.0.1")
	conf2 := testConf("host-local", `,"capabilities":{"portMappings":true},"runtimeConfig":{"portMappings":[{"hostPort":9090,"containerPort":80}]}`)
	args2 := testArgs(conf2, "c2")
	args2.Netns = "/run/netns/c2"
	addOK(t, n, args2)
	masq, ok := n.fw.Network("net1")
	if !ok || !slices.Equal(masq.Subnets, both) {
		t.Fatalf("masquerade rules: %+v (%t), want subnets %v", masq, ok, both)
	}
	pn, ok := fp.Network("net1")
	if !ok || !slices.Equal(pn.Subnets, both) {
		t.Errorf("port rules' subnets %v (%t), want the configured %v: DNAT'd traffic from %v back to the bridge is not masqueraded", pn.Subnets, ok, both, both[0])
	}
}

// route_localnet on the bridge is safe only beside the port rules' drop of
// packets to 127.0.0.0/8 from any interface but lo (docs/ports.md): once
// the network's port rule set (and with it that drop) is gone, a container
// still on the bridge, or one attached later, could reach the node's
// loopback services. DEL of the last publisher (another container, which
// publishes nothing, stays) and GC must not leave route_localnet on
// without the drop.
func TestPortsRouteLocalnetNotLeftWithoutTheDrop(t *testing.T) {
	n := newFakeNode(testNetns, "/run/netns/c2", "/run/netns/c3", "/run/netns/c4")
	fp := n.deps.Ports.(*fakePorts)
	pub := testConf("host-local", `,"capabilities":{"portMappings":true},"runtimeConfig":{"portMappings":[{"hostPort":8080,"containerPort":80}]}`)
	addOK(t, n, testArgs(pub, "c1"))
	args2 := testArgs(testConf("host-local", `,"capabilities":{"portMappings":true}`), "c2")
	args2.Netns = "/run/netns/c2"
	addOK(t, n, args2)
	if !fp.localnetOn["cni0"] {
		t.Fatal("route_localnet not set by the publishing ADD")
	}
	if err := n.deps.Del(testArgs(pub, "c1")); err != nil {
		t.Fatalf("DEL c1: %v", err)
	}
	if _, ok := fp.Network("net1"); ok {
		t.Fatal("the port rules are still there after DEL of the last publisher")
	}
	if fp.localnetOn["cni0"] {
		t.Errorf("after DEL of the last publisher (c2 still attached): the port rules (and their 127.0.0.0/8 drop) are gone, route_localnet is still on for cni0")
	}

	// GC keeping a container that publishes nothing: with the capability
	// in the request (libcni), and without any capabilities key (a runtime
	// that strips it, as the spec says, and sends GC no runtimeConfig).
	for i, caps := range []string{`,"capabilities":{"portMappings":true}`, ``} {
		id := fmt.Sprintf("c%d", 3+i)
		args := testArgs(pub, id)
		args.Netns = "/run/netns/" + id
		addOK(t, n, args)
		if !fp.localnetOn["cni0"] {
			t.Fatal("route_localnet not set by the publishing ADD")
		}
		gcConf := strings.Replace(string(testConf("host-local", caps+`,"cni.dev/valid-attachments":[{"containerID":"c2","ifname":"eth0"}]`)), `"1.0.0"`, `"1.1.0"`, 1)
		if err := n.deps.GC(&skel.CmdArgs{Path: "/opt/cni/bin", StdinData: []byte(gcConf)}); err != nil {
			t.Fatalf("GC: %v", err)
		}
		if _, ok := fp.Network("net1"); ok {
			t.Fatalf("GC (%q) left the port rules of %s, not valid", caps, id)
		}
		if fp.localnetOn["cni0"] {
			t.Errorf("after GC (%q): the port rules (and their 127.0.0.0/8 drop) are gone, route_localnet is still on for cni0", caps)
		}
	}

	// A network whose ports another plugin publishes (the reference
	// portmap, which sets route_localnet itself): left alone.
	fp.localnetOn["cni0"] = true
	gcConf := strings.Replace(string(testConf("host-local", `,"cni.dev/valid-attachments":[]`)), `"1.0.0"`, `"1.1.0"`, 1)
	if err := n.deps.GC(&skel.CmdArgs{Path: "/opt/cni/bin", StdinData: []byte(gcConf)}); err != nil {
		t.Fatalf("GC: %v", err)
	}
	if !fp.localnetOn["cni0"] {
		t.Error("GC of a network without port rules of ours turned route_localnet off")
	}
}

// A DEL that cannot turn route_localnet off keeps the port rules, whose
// 127.0.0.0/8 drop route_localnet needs, and fails (the runtime retries);
// the retry removes both.
func TestPortsDropKeptWhenRouteLocalnetStaysOn(t *testing.T) {
	n := newFakeNode(testNetns)
	fp := n.deps.Ports.(*fakePorts)
	pub := testConf("host-local", `,"capabilities":{"portMappings":true},"runtimeConfig":{"portMappings":[{"hostPort":8080,"containerPort":80}]}`)
	addOK(t, n, testArgs(pub, "c1"))
	fp.noLocalnetErr = errors.New("read-only file system")
	err := n.deps.Del(testArgs(pub, "c1"))
	if err == nil || !strings.Contains(err.Error(), "read-only file system") || !strings.Contains(err.Error(), "cni0") {
		t.Fatalf("DEL with route_localnet stuck on: %v, want the error naming the bridge", err)
	}
	if _, ok := fp.Network("net1"); !ok || !fp.localnetOn["cni0"] {
		t.Fatalf("route_localnet on %t without the port rules (kept: %t)", fp.localnetOn["cni0"], ok)
	}
	fp.noLocalnetErr = nil
	if err := n.deps.Del(testArgs(pub, "c1")); err != nil {
		t.Fatalf("DEL again: %v", err)
	}
	if _, ok := fp.Network("net1"); ok || fp.localnetOn["cni0"] {
		t.Errorf("after the retried DEL: port rules there %t, route_localnet on %t; want neither", ok, fp.localnetOn["cni0"])
	}
}

// A network whose ipMasqBackend changed has a port rule set in each
// backend. The old one's going with its last mapping must not turn
// route_localnet off while the new one's rule set, with its own drop of
// packets to 127.0.0.0/8, publishes ports that need it; the last rule
// set's going does.
func TestPortsBackendSwitchKeepsRouteLocalnet(t *testing.T) {
	n := newFakeNode(testNetns, "/run/netns/c2")
	fp := n.deps.Ports.(*fakePorts)
	fp.byName = map[string]*firewall.FakePorts{
		firewall.IPTablesName: firewall.NewFakePortsNamed(firewall.IPTablesName),
		firewall.NFTablesName: firewall.NewFakePortsNamed(firewall.NFTablesName),
	}
	for _, order := range [][2]string{{"iptables", "nftables"}, {"nftables", "iptables"}} {
		conf := func(backend string, port int) []byte {
			return testConf("host-local", fmt.Sprintf(`,"ipMasqBackend":%q,"capabilities":{"portMappings":true},"runtimeConfig":{"portMappings":[{"hostPort":%d,"containerPort":80}]}`, backend, port))
		}
		args1 := testArgs(conf(order[0], 8081), "c1")
		addOK(t, n, args1)
		args2 := testArgs(conf(order[1], 8082), "c2")
		args2.Netns = "/run/netns/c2"
		addOK(t, n, args2)
		if !fp.localnetOn["cni0"] {
			t.Fatal("route_localnet not set by the publishing ADDs")
		}
		// c1's DEL with the configuration in force.
		del1 := testArgs(conf(order[1], 8081), "c1")
		if err := n.deps.Del(del1); err != nil {
			t.Fatalf("%s then %s: DEL c1: %v", order[0], order[1], err)
		}
		if fp.byName[order[0]].Holds("net1") {
			t.Fatalf("%s then %s: c1's rule set left in %s", order[0], order[1], order[0])
		}
		if !fp.localnetOn["cni0"] {
			t.Errorf("%s then %s: DEL of c1 turned route_localnet off; c2's mapping in %s (with its drop) needs it", order[0], order[1], order[1])
		}
		del2 := testArgs(conf(order[1], 8082), "c2")
		del2.Netns = "/run/netns/c2"
		if err := n.deps.Del(del2); err != nil {
			t.Fatalf("%s then %s: DEL c2: %v", order[0], order[1], err)
		}
		if fp.localnetOn["cni0"] {
			t.Errorf("%s then %s: route_localnet on after the last rule set went", order[0], order[1])
		}
	}
}

// switchedFromUnseenIPTables is a node where c1 published a port under
// ipMasqBackend iptables, whose rules netlink does not show (legacy), the
// network now configured (conf) under another backend.
func switchedFromUnseenIPTables(t *testing.T) (*fakeNode, *firewall.FakePorts, func(backend, extra string) []byte) {
	t.Helper()
	n := newFakeNode(testNetns)
	fp := n.deps.Ports.(*fakePorts)
	legacy := firewall.NewFakePortsNamed(firewall.IPTablesName)
	fp.byName = map[string]*firewall.FakePorts{
		firewall.IPTablesName: legacy,
		firewall.NFTablesName: firewall.NewFakePortsNamed(firewall.NFTablesName),
	}
	conf := func(backend, extra string) []byte {
		return testConf("host-local", fmt.Sprintf(`,"ipMasqBackend":%q,"capabilities":{"portMappings":true}%s`, backend, extra))
	}
	addOK(t, n, testArgs(conf("iptables", `,"runtimeConfig":{"portMappings":[{"hostPort":8081,"containerPort":80}]}`), "c1"))
	legacy.SetHidden(true)
	return n, legacy, conf
}

// After an ipMasqBackend switch on a node where the old backend's rules
// are not seen through netlink (iptables-legacy), GC removes the mappings
// of attachments not valid from every backend all the same (DEL finds
// them through the claims index: TestPortsDelReachesRecordedBackend).
func TestPortsGCReachesUnseenBackend(t *testing.T) {
	n, legacy, conf := switchedFromUnseenIPTables(t)
	gcConf := strings.Replace(string(conf("nftables", `,"cni.dev/valid-attachments":[]`)), `"1.0.0"`, `"1.1.0"`, 1)
	if err := n.deps.GC(&skel.CmdArgs{Path: "/opt/cni/bin", StdinData: []byte(gcConf)}); err != nil {
		t.Fatalf("GC: %v", err)
	}
	if l, _ := legacy.List(); len(l) != 0 {
		t.Errorf("GC under nftables left the unseen iptables backend's mappings: %v", l)
	}
}

// DEL after an ipMasqBackend switch reaches the old backend's rule set
// that netlink does not show (iptables-legacy's, or one gone without us
// whose route_localnet is to go) when that backend's claims index records
// the network (Recorded): the container's mappings there go at its DEL,
// not only at a GC (which some runtimes never send).
func TestPortsDelReachesRecordedBackend(t *testing.T) {
	n, legacy, conf := switchedFromUnseenIPTables(t)
	// Best effort: a failure there (iptables gone from the node) does not
	// fail the DEL.
	legacy.SetError(errors.New("iptables: not found"))
	if err := n.deps.Del(testArgs(conf("nftables", ""), "c1")); err != nil {
		t.Fatalf("DEL with the recorded backend failing: %v", err)
	}
	legacy.SetError(nil)
	if err := n.deps.Del(testArgs(conf("nftables", ""), "c1")); err != nil {
		t.Fatalf("DEL: %v", err)
	}
	if l, _ := legacy.List(); len(l) != 0 {
		t.Errorf("DEL under nftables left the unseen iptables backend's mappings it records: %v", l)
	}
}

// GC of a network that names no ipMasqBackend, whose port rule set no
// backend shows, goes through every backend all the same (iptables-legacy's
// rules are not seen through netlink), so it does not choose the default
// backend (Backend(""), which starts iptables twice on a node) to do so:
// only to tell whose failure to report, once one failed.
func TestPortsGCChoosesNoDefaultBackend(t *testing.T) {
	n := newFakeNode(testNetns)
	fp := n.deps.Ports.(*fakePorts)
	ipt := firewall.NewFakePortsNamed(firewall.IPTablesName)
	nft := firewall.NewFakePortsNamed(firewall.NFTablesName)
	fp.byName = map[string]*firewall.FakePorts{firewall.IPTablesName: ipt, firewall.NFTablesName: nft}
	fp.FakePorts = ipt // the default's choice on this node
	gcConf := []byte(strings.Replace(string(testConf("host-local", `,"capabilities":{"portMappings":true},"cni.dev/valid-attachments":[]`)), `"1.0.0"`, `"1.1.0"`, 1))
	gc := func() error { return n.deps.GC(&skel.CmdArgs{Path: "/opt/cni/bin", StdinData: gcConf}) }
	if err := gc(); err != nil {
		t.Fatalf("GC: %v", err)
	}
	if slices.Contains(fp.names, "") {
		t.Errorf("GC chose the default port backend (Backend calls %q) with nothing to report", fp.names)
	}
	for _, b := range []*firewall.FakePorts{ipt, nft} {
		if !slices.Contains(b.Calls(), "Retain net1") {
			t.Errorf("GC did not retain through %s: %v", b.Name(), b.Calls())
		}
	}
	// A failure of the default's backend is reported, another's is not.
	nft.SetError(errors.New("nft failed"))
	if err := gc(); err != nil {
		t.Errorf("GC reported the failure of a backend that is not the default's: %v", err)
	}
	nft.SetError(nil)
	ipt.SetError(errors.New("ipt failed"))
	if err := gc(); err == nil || !strings.Contains(err.Error(), "ipt failed") {
		t.Errorf("GC with the default backend failing: %v", err)
	}
}

// Two networks may name one bridge (both without a "bridge" key: cni0).
// The last mapping of one going must not turn route_localnet off while
// the other's rule set, with its own 127.0.0.0/8 drop, publishes ports on
// that bridge; the rule set of a network on another bridge does not keep
// it on.
func TestPortsSharedBridgeKeepsRouteLocalnet(t *testing.T) {
	n := newFakeNode(testNetns, "/run/netns/c2", "/run/netns/c3")
	fp := n.deps.Ports.(*fakePorts)
	fp.byName = map[string]*firewall.FakePorts{
		firewall.IPTablesName: firewall.NewFakePortsNamed(firewall.IPTablesName),
		firewall.NFTablesName: firewall.NewFakePortsNamed(firewall.NFTablesName),
	}
	conf := func(network, bridge string, port int) []byte {
		c := testConf("host-local", fmt.Sprintf(`,"ipMasqBackend":"nftables","capabilities":{"portMappings":true},"runtimeConfig":{"portMappings":[{"hostPort":%d,"containerPort":80}]}`, port))
		c = []byte(strings.Replace(string(c), `"name":"net1"`, fmt.Sprintf("%q:%q", "name", network), 1))
		return []byte(strings.Replace(string(c), `"bridge":"cni0"`, fmt.Sprintf("%q:%q", "bridge", bridge), 1))
	}
	args := func(conf []byte, id string) *skel.CmdArgs {
		a := testArgs(conf, id)
		if id != "c1" {
			a.Netns = "/run/netns/" + id
		}
		return a
	}
	a1 := args(conf("net1", "cni0", 8081), "c1")
	a2 := args(conf("net2", "cni0", 8082), "c2")
	a3 := args(conf("net3", "cni1", 8083), "c3")
	for _, a := range []*skel.CmdArgs{a1, a2, a3} {
		addOK(t, n, a)
	}
	if !fp.localnetOn["cni0"] || !fp.localnetOn["cni1"] {
		t.Fatalf("route_localnet not set by the publishing ADDs: %v", fp.localnetOn)
	}
	if err := n.deps.Del(a1); err != nil {
		t.Fatalf("DEL c1: %v", err)
	}
	if fp.byName[firewall.NFTablesName].Holds("net1") {
		t.Fatal("net1's rule set left after its last DEL")
	}
	if !fp.localnetOn["cni0"] {
		t.Error("net1's last DEL turned route_localnet off on cni0; net2's mappings there (with their drop) need it")
	}
	if err := n.deps.Del(a2); err != nil {
		t.Fatalf("DEL c2: %v", err)
	}
	if fp.localnetOn["cni0"] {
		t.Error("route_localnet on cni0 after the last rule set on it went (net3's, on cni1, does not need it)")
	}
	if !fp.localnetOn["cni1"] {
		t.Error("route_localnet off on cni1, whose net3 still publishes")
	}
}

// A DEL whose configuration no longer declares the capability (the node
// switched to a chained portmap, say, while containers ran) still removes
// what the attachment published, and the network's rule set with the last
// container: left, the host port would forward to an address a later
// container may get, and stay claimed (every later ADD asking for it
// failing) on a runtime that never calls GC (containerd 1.6). Also on
// iptables-legacy, whose rules netlink does not show (Holder finds no rule
// set): the claims index records the network's attachments. A DEL on a
// network holding no rule set asks the publisher nothing.
func TestPortsDelWithoutCapability(t *testing.T) {
	for _, legacy := range []bool{false, true} {
		n := newFakeNode(testNetns, "/run/netns/c2", "/run/netns/c3")
		fp := n.deps.Ports.(*fakePorts)
		with := testConf("host-local", `,"capabilities":{"portMappings":true},"runtimeConfig":{"portMappings":[{"hostPort":8080,"containerPort":80}]}`)
		without := testConf("host-local", "")
		addOK(t, n, testArgs(with, "c1"))
		args2 := testArgs([]byte(strings.Replace(string(with), "8080", "8081", 1)), "c2")
		args2.Netns = "/run/netns/c2"
		addOK(t, n, args2)
		fp.SetHidden(legacy)

		if err := n.deps.Del(testArgs(without, "c1")); err != nil {
			t.Fatalf("legacy %t: DEL c1 without the capability: %v", legacy, err)
		}
		if list, _ := fp.List(); len(list) != 1 || list[0].Owner.ContainerID != "c2" {
			t.Errorf("legacy %t: after DEL c1 without the capability: %+v, want c2's mapping only", legacy, list)
		}
		args2.StdinData = without
		if err := n.deps.Del(args2); err != nil {
			t.Fatalf("legacy %t: DEL c2 without the capability: %v", legacy, err)
		}
		if list, _ := fp.List(); len(list) != 0 {
			t.Errorf("legacy %t: after the last DEL without the capability: %+v left", legacy, list)
		}
		if _, held := fp.Network("net1"); held {
			t.Errorf("legacy %t: rule set left after the last DEL without the capability", legacy)
		}
		if legacy {
			continue
		}

		// Nothing published on the network: the publisher is not asked.
		args3 := testArgs(without, "c3")
		args3.Netns = "/run/netns/c3"
		addOK(t, n, args3)
		before, names := len(fp.Calls()), len(fp.names)
		if err := n.deps.Del(args3); err != nil {
			t.Fatalf("DEL c3: %v", err)
		}
		if len(fp.Calls()) != before || len(fp.names) != names {
			t.Errorf("a DEL without the capability on a network without ports asked the publisher: %v, backends %v", fp.Calls()[before:], fp.names[names:])
		}
	}
}

// On a node where no port was ever published (no claims index), a DEL
// without the capability does not even ask netlink for the network's rule
// set: the plain bridge DEL pays nothing for the case above.
func TestPortsDelWithoutCapabilityNothingPublished(t *testing.T) {
	n := newFakeNode(testNetns)
	fp := n.deps.Ports.(*fakePorts)
	without := testConf("host-local", "")
	addOK(t, n, testArgs(without, "c1"))
	holders := fp.holders
	if err := n.deps.Del(testArgs(without, "c1")); err != nil {
		t.Fatalf("DEL: %v", err)
	}
	if fp.holders != holders || len(fp.names) != 0 {
		t.Errorf("DEL on a node that never published asked Holder %d times, backends %v", fp.holders-holders, fp.names)
	}
}
