package bridge

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/containernetworking/cni/pkg/skel"
	"github.com/containernetworking/cni/pkg/types"
	current "github.com/containernetworking/cni/pkg/types/100"

	"github.com/flatcni/plugins/pkg/bridge/hostveth"
	"github.com/flatcni/plugins/pkg/firewall"
	"github.com/flatcni/plugins/pkg/link"
)

const testNetns = "/run/netns/c1"

// testConf is a layer-3 network with a gateway, masquerade and the MAC spoof
// check; extra adds top-level keys (",...").
func testConf(ipamType, extra string) []byte {
	return []byte(fmt.Sprintf(`{"cniVersion":"1.0.0","name":"net1","type":"bridge","bridge":"cni0","isGateway":true,"ipMasq":true,"macspoofchk":true,"ipam":{"type":%q}%s}`, ipamType, extra))
}

func testArgs(conf []byte, id string) *skel.CmdArgs {
	return &skel.CmdArgs{ContainerID: id, Netns: testNetns, IfName: "eth0", Path: "/opt/cni/bin", StdinData: conf}
}

func addOK(t *testing.T, n *fakeNode, args *skel.CmdArgs) *current.Result {
	t.Helper()
	r, err := n.deps.Add(args)
	if err != nil {
		t.Fatalf("ADD %s: %v", args.ContainerID, err)
	}
	res, err := current.NewResultFromResult(r)
	if err != nil {
		t.Fatal(err)
	}
	return res
}

func TestAddDel(t *testing.T) {
	for _, local := range []bool{false, true} {
		t.Run(fmt.Sprintf("local=%v", local), func(t *testing.T) {
			n := newFakeNode(testNetns, "/run/netns/c2")
			n.ipam.local = local
			testAddDel(t, n)
		})
	}
}

func testAddDel(t *testing.T, n *fakeNode) {
	args := testArgs(testConf("host-local", ""), "c1")
	res := addOK(t, n, args)

	host := hostveth.Name("c1", "eth0")
	if len(res.Interfaces) != 3 || res.Interfaces[0].Name != "cni0" || res.Interfaces[1].Name != host || res.Interfaces[2].Name != "eth0" || res.Interfaces[2].Sandbox != testNetns {
		t.Fatalf("result interfaces: %+v", res.Interfaces)
	}
	if len(res.IPs) != 1 || res.IPs[0].Address.String() != "10.1.0.2/24" || *res.IPs[0].Interface != 2 {
		t.Fatalf("result IPs: %+v", res.IPs)
	}
	h := n.links.hosts[host]
	if h == nil || h.master != n.links.bridges["cni0"].Index {
		t.Fatalf("host veth %s not a port of cni0: %+v", host, h)
	}
	if want := []netip.Prefix{netip.MustParsePrefix("10.1.0.2/24")}; !slices.Equal(h.addrs, want) {
		t.Errorf("container addresses %v, want %v", h.addrs, want)
	}
	if got := n.links.gwAddrs["cni0"]; !slices.Equal(got, []netip.Prefix{netip.MustParsePrefix("10.1.0.1/24")}) {
		t.Errorf("gateway addresses on cni0: %v", got)
	}
	if !n.links.fwd[0] {
		t.Error("IPv4 forwarding not enabled")
	}
	// The configured port comes after the container's addresses (DeferAttach).
	if i, j := callIndex(n.links.calls, "ConfigureContainer"), callIndex(n.links.calls, "AttachPort"); i < 0 || j < i {
		t.Errorf("AttachPort (%d) before ConfigureContainer (%d): %v", j, i, n.links.calls)
	}
	// Masquerade subnets from the IPAM result (the fake reports none of its own).
	nw, ok := n.fw.Network("net1")
	if !ok || !slices.Equal(nw.Subnets, []netip.Prefix{netip.MustParsePrefix("10.1.0.0/24")}) || nw.Bridge != "cni0" {
		t.Errorf("firewall network: %+v, %v", nw, ok)
	}
	if len(n.spoof.checks) != 1 {
		t.Errorf("spoof checks: %v", n.spoof.checks)
	}

	// A second container keeps the rules when the first goes.
	args2 := testArgs(testConf("host-local", ""), "c2")
	args2.Netns = "/run/netns/c2"
	addOK(t, n, args2)
	if err := n.deps.Del(args); err != nil {
		t.Fatalf("DEL: %v", err)
	}
	if _, ok := n.links.hosts[host]; ok {
		t.Error("host veth left after DEL")
	}
	if _, ok := n.ipam.leases["c1/eth0"]; ok {
		t.Error("lease left after DEL")
	}
	if _, ok := n.fw.Network("net1"); !ok {
		t.Error("rules removed while c2 is attached")
	}
	if err := n.deps.Del(args2); err != nil {
		t.Fatalf("DEL c2: %v", err)
	}
	if _, ok := n.fw.Network("net1"); ok {
		t.Error("rules left after the last DEL")
	}
	if len(n.spoof.checks) != 0 || len(n.ipam.leases) != 0 || len(n.links.hosts) != 0 {
		t.Errorf("left after DEL: spoof %v, leases %v, links %v", n.spoof.checks, n.ipam.leases, n.links.hosts)
	}
	// DEL again: nothing to do, no error.
	if err := n.deps.Del(args2); err != nil {
		t.Errorf("second DEL: %v", err)
	}
}

// IPAM that knows its subnets (host-local in-process: its ranges) sets the
// masquerade subnets, not the address it handed out.
func TestAddFirewallSubnetsFromIPAM(t *testing.T) {
	n := newFakeNode(testNetns)
	n.ipam.subnets = []netip.Prefix{netip.MustParsePrefix("10.1.0.0/24"), netip.MustParsePrefix("10.2.0.0/24")}
	addOK(t, n, testArgs(testConf("host-local", ""), "c1"))
	nw, _ := n.fw.Network("net1")
	if !slices.Equal(nw.Subnets, n.ipam.subnets) {
		t.Errorf("firewall subnets %v, want %v", nw.Subnets, n.ipam.subnets)
	}
	if !slices.Equal(n.fw.locks, []string{"net1"}) {
		t.Errorf("locks %v", n.fw.locks)
	}
}

// TestAddFirewallSubnetsKeepOldGateway: a gateway address of a subnet the
// configuration no longer names stays on the bridge (its containers still
// use it): the network's rules keep covering its subnet while the network
// holds leases in it. The gateway of another network naming the bridge
// (where this one holds none) is not this network's: its subnet is not
// covered. (The fake knows no conflicts; on a node, only IPv6 gateways of
// disjoint subnets coexist.)
func TestAddFirewallSubnetsKeepOldGateway(t *testing.T) {
	n := newFakeNode(testNetns)
	n.links.gwAddrs["cni0"] = []netip.Prefix{netip.MustParsePrefix("10.9.0.1/24"), netip.MustParsePrefix("10.8.0.1/24")}
	n.ipam.subnets = []netip.Prefix{netip.MustParsePrefix("10.1.0.0/24")}
	n.ipam.leases["old/eth0"] = netip.MustParseAddr("10.9.0.7") // attached before the range moved
	addOK(t, n, testArgs(testConf("host-local", ""), "c1"))
	nw, _ := n.fw.Network("net1")
	want := []netip.Prefix{netip.MustParsePrefix("10.1.0.0/24"), netip.MustParsePrefix("10.9.0.0/24")}
	if !slices.Equal(nw.Subnets, want) {
		t.Errorf("firewall subnets %v, want %v (not the other network's 10.8.0.0/24)", nw.Subnets, want)
	}
}

func callIndex(calls []string, method string) int {
	return slices.IndexFunc(calls, func(c string) bool { return strings.HasPrefix(c, method+" ") || c == method })
}

// A failure at any step after validation leaves nothing of the attachment:
// no veth, no lease, no spoof check, no rules (the bridge stays).
func TestAddUndo(t *testing.T) {
	boom := errors.New("boom")
	for _, tc := range []struct {
		name string
		set  func(n *fakeNode)
	}{
		{"bridge", func(n *fakeNode) { n.links.fail["EnsureBridge"] = boom }},
		{"veth", func(n *fakeNode) { n.links.fail["SetupVeth"] = boom }},
		{"IPAM", func(n *fakeNode) { n.ipam.fail["ADD"] = types.NewError(types.ErrTryAgainLater, "pool empty", "") }},
		{"addresses", func(n *fakeNode) { n.links.fail["ConfigureContainer"] = boom }},
		{"attach", func(n *fakeNode) { n.links.fail["AttachPort"] = boom }},
		{"gateway", func(n *fakeNode) { n.links.fail["EnsureGatewayAddrs"] = boom }},
		{"forwarding", func(n *fakeNode) { n.links.fail["EnableForwarding"] = boom }},
		{"spoof check", func(n *fakeNode) { n.spoof.fail = boom }},
		{"firewall", func(n *fakeNode) { n.fw.SetError(boom) }},
		{"firewall half written", func(n *fakeNode) { n.fw.SetEnsurePartial(boom) }},
	} {
		// Local: IPAM runs beside the bridge and the veth (our host-local).
		for _, local := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/local=%v", tc.name, local), func(t *testing.T) {
				n := newFakeNode(testNetns)
				n.ipam.local = local
				tc.set(n)
				testAddUndo(t, n)
			})
		}
	}
}

func testAddUndo(t *testing.T, n *fakeNode) {
	if _, err := n.deps.Add(testArgs(testConf("host-local", ""), "c1")); err == nil {
		t.Fatal("ADD succeeded")
	}
	// A failed IPAM ADD released what it reserved: no DEL for it (as
	// the reference).
	if n.ipam.fail["ADD"] != nil && slices.ContainsFunc(n.ipam.calls, func(c string) bool { return strings.HasPrefix(c, "DEL") }) {
		t.Errorf("IPAM DEL after a failed IPAM ADD: %v", n.ipam.calls)
	}
	if len(n.links.hosts) != 0 {
		t.Errorf("veth left: %v", n.links.hosts)
	}
	if len(n.ipam.leases) != 0 {
		t.Errorf("lease left: %v", n.ipam.leases)
	}
	if len(n.spoof.checks) != 0 {
		t.Errorf("spoof check left: %v", n.spoof.checks)
	}
	n.fw.SetError(nil)
	if _, ok := n.fw.Network("net1"); ok {
		t.Error("rules left")
	}
}

// A failed ADD removes the bridge it made (no port is left on it, and no
// host veth of ours waits to join one), not one that was there before.
func TestAddUndoFreshBridge(t *testing.T) {
	n := newFakeNode(testNetns)
	n.ipam.fail["ADD"] = types.NewError(types.ErrInvalidNetworkConfig, "bad subnet", "")
	if _, err := n.deps.Add(testArgs(testConf("host-local", ""), "c1")); err == nil {
		t.Fatal("ADD succeeded")
	}
	if len(n.links.bridges) != 0 {
		t.Errorf("bridge made by the failed ADD left: %v", n.links.bridges)
	}
	delete(n.ipam.fail, "ADD")
	addOK(t, n, testArgs(testConf("host-local", ""), "c0"))
	if err := n.deps.Del(testArgs(testConf("host-local", ""), "c0")); err != nil {
		t.Fatal(err)
	}
	n.ipam.fail["ADD"] = types.NewError(types.ErrInvalidNetworkConfig, "bad subnet", "")
	if _, err := n.deps.Add(testArgs(testConf("host-local", ""), "c1")); err == nil {
		t.Fatal("ADD succeeded")
	}
	if _, ok := n.links.bridges["cni0"]; !ok {
		t.Error("a failed ADD removed the bridge that was there before it")
	}

	// Another ADD's host end is not on the bridge yet (it joins once its
	// container end is configured): the bridge stays for it. One made
	// before the bridge (a port whose bridge was deleted under it) cannot
	// be for it.
	for _, tc := range []struct {
		index int
		kept  bool
	}{{99, true}, {-1, false}} {
		n = newFakeNode(testNetns)
		n.ipam.fail["ADD"] = types.NewError(types.ErrInvalidNetworkConfig, "bad subnet", "")
		n.links.hosts["veth0c0ffee0"] = &fakeHost{alias: hostveth.Alias("c2", "eth0"), index: tc.index}
		if _, err := n.deps.Add(testArgs(testConf("host-local", ""), "c1")); err == nil {
			t.Fatal("ADD succeeded")
		}
		if _, ok := n.links.bridges["cni0"]; ok != tc.kept {
			t.Errorf("an unattached host veth of index %d: bridge made by the failed ADD kept %v, want %v", tc.index, ok, tc.kept)
		}
	}

	// EnsureBridge made the bridge, then failed to bring it up.
	n = newFakeNode(testNetns)
	n.links.fail["EnsureBridge up"] = errors.New("boom")
	if _, err := n.deps.Add(testArgs(testConf("host-local", ""), "c1")); err == nil {
		t.Fatal("ADD succeeded")
	}
	if len(n.links.bridges) != 0 {
		t.Errorf("bridge made by the failed EnsureBridge left: %v", n.links.bridges)
	}
}

// The IPAM error keeps its code and names the plugin.
func TestAddIPAMError(t *testing.T) {
	n := newFakeNode(testNetns)
	n.ipam.fail["ADD"] = types.NewError(types.ErrTryAgainLater, "pool empty", "")
	_, err := n.deps.Add(testArgs(testConf("host-local", ""), "c1"))
	var te *types.Error
	if !errors.As(err, &te) || te.Code != types.ErrTryAgainLater || !strings.Contains(te.Msg, `"host-local"`) || !strings.Contains(te.Msg, "pool empty") {
		t.Errorf("error %v", err)
	}
}

// Invalid input changes nothing on the node and asks nothing of IPAM.
func TestAddValidation(t *testing.T) {
	for _, tc := range []struct {
		name  string
		conf  []byte
		set   func(n *fakeNode, args *skel.CmdArgs)
		code  uint
		inMsg string
	}{
		{"own netns", testConf("host-local", ""), func(n *fakeNode, a *skel.CmdArgs) { n.links.own[testNetns] = true }, types.ErrInvalidNetNS, "should not be the same"},
		{"netns gone", testConf("host-local", ""), func(n *fakeNode, a *skel.CmdArgs) { delete(n.links.netns, testNetns) }, types.ErrInvalidNetNS, testNetns},
		{"IPAM not found", testConf("missing", ""), nil, types.ErrInvalidNetworkConfig, "ipam.type"},
		{"bad config", []byte(`{"cniVersion":"1.0.0","name":"net1","type":"bridge","mtu":-1}`), nil, types.ErrInvalidNetworkConfig, "mtu"},
		// In-process host-local: its IPv6 range is known before it runs.
		{"mtu below IPv6's", []byte(`{"cniVersion":"1.0.0","name":"net1","type":"bridge","mtu":1000,"ipam":{"type":"host-local","ranges":[[{"subnet":"10.0.0.0/24"}],[{"subnet":"fd00::/64"}]]}}`), func(n *fakeNode, a *skel.CmdArgs) { n.ipam.local = true }, types.ErrInvalidNetworkConfig, "range set 1 (fd00::"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n := newFakeNode(testNetns)
			args := testArgs(tc.conf, "c1")
			if tc.set != nil {
				tc.set(n, args)
			}
			_, err := n.deps.Add(args)
			var te *types.Error
			if !errors.As(err, &te) || te.Code != tc.code || !strings.Contains(te.Msg, tc.inMsg) {
				t.Fatalf("error %v, want code %d naming %q", err, tc.code, tc.inMsg)
			}
			for _, c := range n.links.calls {
				if !strings.HasPrefix(c, "OwnNetNS") && !strings.HasPrefix(c, "CheckIfNameFree") && !strings.HasPrefix(c, "BridgeByName") {
					t.Errorf("call %q before validation passed", c)
				}
			}
			if len(n.ipam.calls) != 0 || len(n.fw.Calls()) != 0 {
				t.Errorf("IPAM %v, firewall %v", n.ipam.calls, n.fw.Calls())
			}
		})
	}
	// With CNI_NETNS_OVERRIDE the own netns is allowed, as with skel.
	n := newFakeNode(testNetns)
	n.links.own[testNetns] = true
	args := testArgs(testConf("host-local", ""), "c1")
	args.NetnsOverride = "true"
	addOK(t, n, args)
}

// An ADD reads an existing bridge once while validating and hands what it
// read to EnsureBridge, which does not look it up again.
func TestAddReadsBridgeOnce(t *testing.T) {
	const other = "/run/netns/other"
	n := newFakeNode(testNetns, other)
	addOK(t, n, testArgs(testConf("host-local", ""), "c1"))
	args := testArgs(testConf("host-local", ""), "c2")
	args.Netns = other
	addOK(t, n, args)
	if len(n.links.found) != 2 || n.links.found[0] != nil {
		t.Fatalf("EnsureBridge given %v, want nothing on the first ADD", n.links.found)
	}
	if got, want := n.links.found[1], n.links.bridges["cni0"]; got == nil || got.Index != want.Index || got.Name != want.Name {
		t.Errorf("second ADD: EnsureBridge given %+v, want the bridge %+v", got, want)
	}
}

// The gateway address goes on the bridge with duplicate address detection
// exactly when enabledad asks for it, as the container's addresses do (the
// reference plugin adds it with DAD in every case).
func TestAddGatewayDAD(t *testing.T) {
	gw := netip.MustParsePrefix("10.1.0.1/24")
	for _, dad := range []bool{false, true} {
		t.Run(fmt.Sprintf("enabledad=%v", dad), func(t *testing.T) {
			n := newFakeNode(testNetns)
			addOK(t, n, testArgs(testConf("host-local", fmt.Sprintf(`,"enabledad":%v`, dad)), "c1"))
			if got, ok := n.links.gwDAD[gw]; !ok || got != dad {
				t.Errorf("gateway %s added with dad=%v (added: %v), want dad=%v", gw, got, ok, dad)
			}
		})
	}
}

// Without IPAM (layer 2 only) ADD makes the port at once and asks no IPAM.
func TestAddL2(t *testing.T) {
	n := newFakeNode(testNetns)
	conf := []byte(`{"cniVersion":"1.0.0","name":"net1","type":"bridge","bridge":"cni0"}`)
	res := addOK(t, n, testArgs(conf, "c1"))
	if len(res.IPs) != 0 || len(n.ipam.calls) != 0 || callIndex(n.links.calls, "AttachPort") >= 0 {
		t.Errorf("IPs %v, IPAM %v, calls %v", res.IPs, n.ipam.calls, n.links.calls)
	}
	if h := n.links.hosts[hostveth.Name("c1", "eth0")]; h == nil || h.master == 0 {
		t.Errorf("port not on the bridge: %+v", h)
	}
}

// The result comes in the configuration's version.
func TestAddResultVersion(t *testing.T) {
	n := newFakeNode(testNetns)
	conf := []byte(strings.Replace(string(testConf("host-local", "")), `"1.0.0"`, `"0.4.0"`, 1))
	r, err := n.deps.Add(testArgs(conf, "c1"))
	if err != nil {
		t.Fatal(err)
	}
	if r.Version() != "0.4.0" {
		t.Errorf("result version %s", r.Version())
	}
}

func TestCheck(t *testing.T) {
	n := newFakeNode(testNetns)
	args := testArgs(testConf("host-local", ""), "c1")
	res := addOK(t, n, args)
	check := func(res *current.Result) error {
		b, err := json.Marshal(res)
		if err != nil {
			t.Fatal(err)
		}
		conf := testConf("host-local", `,"prevResult":`+string(b))
		return n.deps.Check(testArgs(conf, "c1"))
	}
	if err := check(res); err != nil {
		t.Fatalf("CHECK: %v", err)
	}
	if !slices.Contains(n.ipam.calls, "CHECK c1/eth0") {
		t.Errorf("IPAM not asked to check: %v", n.ipam.calls)
	}
	bad := *res
	bad.Interfaces = slices.Clone(res.Interfaces)
	cont := *res.Interfaces[2]
	cont.Mac = "02:00:00:00:ff:ff"
	bad.Interfaces[2] = &cont
	if err := check(&bad); err == nil || !strings.Contains(err.Error(), "MAC") {
		t.Errorf("CHECK with another container MAC: %v", err)
	}
	// "mac" is optional in a result's interface (a runtime or a chained
	// plugin may leave it out): nothing to compare then.
	cont.Mac = ""
	if err := check(&bad); err != nil {
		t.Errorf("CHECK with no container MAC in prevResult: %v", err)
	}
	// The gateway address ADD put on the bridge (isGateway) went away.
	if !slices.Contains(n.links.calls, "CheckGatewayAddrs cni0 [10.1.0.1/24]") {
		t.Errorf("gateway addresses not checked: %v", n.links.calls)
	}
	saved := n.links.gwAddrs["cni0"]
	n.links.gwAddrs["cni0"] = nil
	if err := check(res); err == nil || !strings.Contains(err.Error(), "10.1.0.1/24") {
		t.Errorf("CHECK without the gateway address on the bridge: %v", err)
	}
	n.links.gwAddrs["cni0"] = saved
	n.ipam.fail["CHECK"] = errors.New("lease gone")
	if err := check(res); err == nil || !strings.Contains(err.Error(), `IPAM plugin "host-local" CHECK`) {
		t.Errorf("CHECK with IPAM failing: %v", err)
	}
	if err := n.deps.Check(args); err == nil || !strings.Contains(err.Error(), "prevResult") {
		t.Errorf("CHECK without prevResult: %v", err)
	}
}

func TestGC(t *testing.T) {
	n := newFakeNode(testNetns, "/run/netns/c2")
	addOK(t, n, testArgs(testConf("host-local", ""), "c1"))
	a2 := testArgs(testConf("host-local", ""), "c2")
	a2.Netns = "/run/netns/c2"
	addOK(t, n, a2)
	// c2's netns goes: its host veth is an orphan.
	delete(n.links.netns, "/run/netns/c2")

	gc := func(valid string) error {
		conf := testConf("host-local", `,"cni.dev/valid-attachments":[`+valid+`]`)
		conf = []byte(strings.Replace(string(conf), `"1.0.0"`, `"1.1.0"`, 1))
		return n.deps.GC(&skel.CmdArgs{Path: "/opt/cni/bin", StdinData: conf})
	}
	if err := gc(`{"containerID":"c1","ifname":"eth0"}`); err != nil {
		t.Fatalf("GC: %v", err)
	}
	if _, ok := n.links.hosts[hostveth.Name("c2", "eth0")]; ok {
		t.Error("orphan host veth of c2 left")
	}
	if _, ok := n.links.hosts[hostveth.Name("c1", "eth0")]; !ok {
		t.Error("c1's host veth removed")
	}
	if _, ok := n.spoof.checks["net1/c2/eth0"]; ok {
		t.Error("spoof check of c2 left")
	}
	if _, ok := n.spoof.checks["net1/c1/eth0"]; !ok {
		t.Error("spoof check of c1 removed")
	}
	if !slices.Contains(n.ipam.calls, "GC /") {
		t.Errorf("IPAM GC not called: %v", n.ipam.calls)
	}
	if _, ok := n.fw.Network("net1"); !ok {
		t.Error("rules removed with a valid attachment")
	}
	n.fw.names = nil
	if err := gc(``); err != nil {
		t.Fatalf("GC with none valid: %v", err)
	}
	if _, ok := n.fw.Network("net1"); ok {
		t.Error("rules left with no valid attachment")
	}
	// Removed from every backend (netlink does not show iptables-legacy's
	// rules), without choosing the default backend (which starts iptables
	// twice on a node) when nothing failed.
	if slices.Contains(n.fw.names, "") {
		t.Errorf("GC with none valid chose the default backend (Backend calls %q)", n.fw.names)
	}
	// The default backend's failure is still reported.
	n.fw.SetError(errors.New("removal failed"))
	if err := gc(``); err == nil || !strings.Contains(err.Error(), "removal failed") {
		t.Errorf("GC with the backend failing: %v", err)
	}
	n.fw.SetError(nil)
}

// GC deletes the host veths of stale attachments and orphans several at a
// time: a deletion mostly waits for the kernel, and 250 of them one after
// the other took ~5 s.
func TestGCDeletesVethsTogether(t *testing.T) {
	for _, orphans := range []bool{false, true} {
		t.Run(fmt.Sprintf("orphans=%v", orphans), func(t *testing.T) {
			n := newFakeNode(testNetns, "/run/netns/c2", "/run/netns/c3", "/run/netns/c4")
			for _, id := range []string{"c1", "c2", "c3", "c4"} {
				a := testArgs(testConf("host-local", ""), id)
				if id != "c1" {
					a.Netns = "/run/netns/" + id
				}
				addOK(t, n, a)
			}
			valid := `{"containerID":"c1","ifname":"eth0"}`
			if orphans {
				// Their netns gone, but valid: only the orphans' pass deletes them.
				for _, id := range []string{"c2", "c3", "c4"} {
					delete(n.links.netns, "/run/netns/"+id)
					valid += fmt.Sprintf(`,{"containerID":%q,"ifname":"eth0"}`, id)
				}
			}
			var inFlight, most atomic.Int32
			n.links.beforeDel = func() {
				now := inFlight.Add(1)
				for m := most.Load(); now > m && !most.CompareAndSwap(m, now); m = most.Load() {
				}
				time.Sleep(30 * time.Millisecond)
				inFlight.Add(-1)
			}
			conf := testConf("host-local", `,"cni.dev/valid-attachments":[`+valid+`]`)
			conf = []byte(strings.Replace(string(conf), `"1.0.0"`, `"1.1.0"`, 1))
			if err := n.deps.GC(&skel.CmdArgs{Path: "/opt/cni/bin", StdinData: conf}); err != nil {
				t.Fatalf("GC: %v", err)
			}
			for _, id := range []string{"c2", "c3", "c4"} {
				if _, ok := n.links.hosts[hostveth.Name(id, "eth0")]; ok {
					t.Errorf("host veth of %s left", id)
				}
			}
			if _, ok := n.links.hosts[hostveth.Name("c1", "eth0")]; !ok {
				t.Error("host veth of c1, valid, removed")
			}
			if most.Load() < 2 {
				t.Errorf("at most %d veth deletion at a time, want several", most.Load())
			}
		})
	}
}

// GC removes the spoof checks of the attachments that are not valid in one
// batch: on a node each removal read every check of the chain again (GC of
// 250 stale attachments among 500 spent ~4 s reading them).
func TestGCRemovesSpoofChecksInOneBatch(t *testing.T) {
	n := newFakeNode(testNetns, "/run/netns/c2", "/run/netns/c3")
	for _, id := range []string{"c1", "c2", "c3"} {
		a := testArgs(testConf("host-local", ""), id)
		if id != "c1" {
			a.Netns = "/run/netns/" + id
		}
		addOK(t, n, a)
	}
	n.spoof.calls = nil
	conf := testConf("host-local", `,"cni.dev/valid-attachments":[{"containerID":"c1","ifname":"eth0"}]`)
	conf = []byte(strings.Replace(string(conf), `"1.0.0"`, `"1.1.0"`, 1))
	if err := n.deps.GC(&skel.CmdArgs{Path: "/opt/cni/bin", StdinData: conf}); err != nil {
		t.Fatalf("GC: %v", err)
	}
	if !slices.Equal(n.spoof.calls, []string{"TeardownMany 2"}) {
		t.Errorf("spoof check calls of GC: %q, want the two invalid ones removed in one batch", n.spoof.calls)
	}
	if _, ok := n.spoof.checks["net1/c1/eth0"]; !ok || len(n.spoof.checks) != 1 {
		t.Errorf("spoof checks after GC: %v, want c1's only", n.spoof.checks)
	}
}

// TestAddSameAttachmentOtherNetns: an ADD of an attachment (container ID,
// interface) whose host veth is there, its container end in another netns
// (a runtime reusing a container ID without DEL), fails before IPAM: the
// live attachment keeps its address, which IPAM would hand out again (the
// lease is the attachment's), and its veth.
func TestAddSameAttachmentOtherNetns(t *testing.T) {
	n := newFakeNode(testNetns, "/run/netns/c2")
	a := testArgs(testConf("host-local", ""), "dup")
	addOK(t, n, a)
	calls := len(n.ipam.calls)
	b := testArgs(testConf("host-local", ""), "dup")
	b.Netns = "/run/netns/c2"
	_, err := n.deps.Add(b)
	if err == nil || !strings.Contains(err.Error(), hostveth.Name("dup", "eth0")) || !strings.Contains(err.Error(), "dup/eth0") {
		t.Fatalf("second ADD of dup/eth0 in another netns: %v; want an error naming the attachment and its host veth", err)
	}
	if got := n.ipam.calls[calls:]; len(got) != 0 {
		t.Errorf("IPAM called by the refused ADD: %v", got)
	}
	if _, ok := n.ipam.leases["dup/eth0"]; !ok {
		t.Error("the live attachment's lease went")
	}
	if h := n.links.hosts[hostveth.Name("dup", "eth0")]; h == nil || h.netns != testNetns {
		t.Errorf("the live attachment's host veth: %+v", h)
	}
	// The same container ID and interface on another network (its own
	// bridge) is another attachment: not refused as live (the real host
	// veth then takes a random name, as on a hash collision; the fake's
	// SetupVeth fails on the name instead).
	other := testArgs([]byte(strings.Replace(strings.Replace(string(testConf("host-local", "")), `"cni0"`, `"cni1"`, 1), `"net1"`, `"net2"`, 1)), "dup")
	other.Netns = "/run/netns/c2"
	if _, err := n.deps.Add(other); err != nil && strings.Contains(err.Error(), "live already") {
		t.Errorf("ADD of dup/eth0 on another network: %v", err)
	}
}

// TestAddForgetsNeighbours: ADD deletes the node's neighbour entries of
// the container's addresses on the gateway device, once the port is on the
// bridge (an entry of a container that had the address before would send
// the node's traffic to the old MAC for 20-30 s).
func TestAddForgetsNeighbours(t *testing.T) {
	n := newFakeNode(testNetns)
	res := addOK(t, n, testArgs(testConf("host-local", ""), "c1"))
	want := fmt.Sprintf("ForgetNeighbours cni0 [%s]", res.IPs[0].Address.IP)
	i := slices.Index(n.links.calls, want)
	attach := slices.IndexFunc(n.links.calls, func(c string) bool { return strings.HasPrefix(c, "AttachPort") })
	if i < 0 || attach < 0 || i < attach {
		t.Errorf("link calls of ADD: %q; want %q after the port joined the bridge", n.links.calls, want)
	}
}

// TestGCOldValidKey: a GC request that lists the valid attachments under
// the name CNI 1.1.0's text gave them, cni.dev/attachments, alone (a runtime
// written after that text; libcni sends both) keeps them: their host veths,
// spoof checks and leases stay, the others go. Read as no list, every
// attachment of the network went.
func TestGCOldValidKey(t *testing.T) {
	n := newFakeNode(testNetns, "/run/netns/c2")
	for _, id := range []string{"c1", "c2"} {
		a := testArgs(testConf("host-local", ""), id)
		if id != "c1" {
			a.Netns = "/run/netns/" + id
		}
		addOK(t, n, a)
	}
	conf := testConf("host-local", `,"cni.dev/attachments":[{"containerID":"c1","ifname":"eth0"}]`)
	conf = []byte(strings.Replace(string(conf), `"1.0.0"`, `"1.1.0"`, 1))
	if err := n.deps.GC(&skel.CmdArgs{Path: "/opt/cni/bin", StdinData: conf}); err != nil {
		t.Fatalf("GC: %v", err)
	}
	if _, ok := n.spoof.checks["net1/c1/eth0"]; !ok || len(n.spoof.checks) != 1 {
		t.Errorf("spoof checks after GC: %v, want c1's only", n.spoof.checks)
	}
	if _, ok := n.ipam.leases["c1/eth0"]; !ok || len(n.ipam.leases) != 1 {
		t.Errorf("leases after GC: %v, want c1's only", n.ipam.leases)
	}
	if _, ok := n.links.hosts[hostveth.Name("c1", "eth0")]; !ok {
		t.Error("GC deleted the host veth of c1, valid under cni.dev/attachments")
	}
	if _, ok := n.links.hosts[hostveth.Name("c2", "eth0")]; ok {
		t.Error("GC left the host veth of c2, valid under neither key")
	}
}

// GC deletes the host veth of an attachment whose address it releases
// (not valid; its netns still there), before IPAM releases the address, as
// DEL does: the container would otherwise keep an address a new container
// may get. With an IPAM plugin that does not tell its attachments (one run
// by exec), such veths stay.
// TestDelReferenceRulesOfContainer: on a node switched from the reference
// plugin, DEL of a container it attached (no host veth of ours, its
// interface in its netns) removes that container's reference rules, not
// the others'; DEL of one of ours does not look for any.
func TestDelReferenceRulesOfContainer(t *testing.T) {
	n := newFakeNode(testNetns, "/run/netns/c2")
	a := testArgs(testConf("host-local", ""), "ours")
	addOK(t, n, a)
	n.fw.AddLegacy("net1", "ref1")
	n.fw.AddLegacy("net1", "ref2")
	// The reference's veth: a host end of random name, without our alias.
	n.links.hosts["veth0a1b2c3d"] = &fakeHost{netns: "/run/netns/c2", ifName: "eth0"}
	ref1 := testArgs(testConf("host-local", ""), "ref1")
	ref1.Netns = "/run/netns/c2"
	if err := n.deps.Del(ref1); err != nil {
		t.Fatalf("DEL of ref1: %v", err)
	}
	if got := n.fw.Legacy("net1"); !slices.Equal(got, []string{"ref2"}) {
		t.Errorf("reference rules after DEL of ref1: %v, want ref2's", got)
	}
	// Also under a configuration whose ipMasq cannot be read (RulesUnknown).
	n.links.netns["/run/netns/c3"] = true
	n.links.hosts["veth0a1b2c3e"] = &fakeHost{netns: "/run/netns/c3", ifName: "eth0"}
	ref2 := testArgs([]byte(strings.Replace(string(testConf("host-local", "")), `"ipMasq":true`, `"ipMasq":"yes"`, 1)), "ref2")
	ref2.Netns = "/run/netns/c3"
	if err := n.deps.Del(ref2); err != nil {
		t.Fatalf("DEL of ref2: %v", err)
	}
	if got := n.fw.Legacy("net1"); len(got) != 0 {
		t.Errorf("reference rules after DEL of ref2 with ipMasq unreadable: %v, want none", got)
	}
	calls := len(n.fw.Calls())
	if err := n.deps.Del(a); err != nil {
		t.Fatalf("DEL of ours: %v", err)
	}
	if i := slices.IndexFunc(n.fw.Calls()[calls:], func(c string) bool { return strings.HasPrefix(c, "RemoveLegacyOf") }); i >= 0 {
		t.Errorf("DEL of our attachment looked for reference rules: %v", n.fw.Calls()[calls:])
	}
}

// ipMasqOff turns ipMasq off in a configuration of testConf's.
func ipMasqOff(conf []byte) []byte {
	return []byte(strings.Replace(string(conf), `"ipMasq":true`, `"ipMasq":false`, 1))
}

// TestMasqTurnedOff: rules made while the configuration had ipMasq go at
// the next ADD, DEL or GC under a configuration without it, though a
// container is still attached (the integration test of the same name runs
// it on a node). The verb succeeds also when the marker that says the
// network may hold rules cannot be removed (/run/flatcni unusable,
// something else than a file at its name): it only spares a lookup, and an
// unusable /run/flatcni must not fail DEL or GC (README, Security).
func TestMasqTurnedOff(t *testing.T) {
	for _, verb := range []string{"ADD", "DEL", "GC"} {
		for _, unmarkable := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/unmarkable=%t", verb, unmarkable), func(t *testing.T) {
				n := newFakeNode(testNetns, "/run/netns/c2")
				addOK(t, n, testArgs(testConf("host-local", ""), "c1"))
				if _, ok := n.fw.Network("net1"); !ok {
					t.Fatal("no rules after the ADD with ipMasq")
				}
				if unmarkable {
					n.fw.unmarkErr = errors.New("fake: marker: is a directory")
				}
				var err error
				switch verb {
				case "ADD":
					a := testArgs(ipMasqOff(testConf("host-local", "")), "c2")
					a.Netns = "/run/netns/c2"
					_, err = n.deps.Add(a)
				case "DEL":
					err = n.deps.Del(testArgs(ipMasqOff(testConf("host-local", "")), "c2"))
				case "GC":
					conf := ipMasqOff(testConf("host-local", `,"cni.dev/valid-attachments":[{"containerID":"c1","ifname":"eth0"}]`))
					conf = []byte(strings.Replace(string(conf), `"1.0.0"`, `"1.1.0"`, 1))
					err = n.deps.GC(&skel.CmdArgs{Path: "/opt/cni/bin", StdinData: conf})
				}
				if err != nil {
					t.Fatalf("%s with ipMasq false: %v", verb, err)
				}
				if _, ok := n.fw.Network("net1"); ok {
					t.Errorf("%s with ipMasq false left the rules made with ipMasq", verb)
				}
			})
		}
	}
}

func TestGCRemovesStaleAttachmentVeths(t *testing.T) {
	for _, exec := range []bool{false, true} {
		t.Run(fmt.Sprintf("exec=%v", exec), func(t *testing.T) {
			n := newFakeNode(testNetns, "/run/netns/c2", "/run/netns/c3")
			n.ipam.exec = exec
			for _, id := range []string{"c1", "c2", "c3"} {
				a := testArgs(testConf("host-local", ""), id)
				if id != "c1" {
					a.Netns = "/run/netns/" + id
				}
				addOK(t, n, a)
			}
			c3 := hostveth.Name("c3", "eth0")
			var atGC bool
			n.ipam.onGC = func() { _, atGC = n.links.hosts[c3] }
			conf := testConf("host-local", `,"cni.dev/valid-attachments":[{"containerID":"c1","ifname":"eth0"},{"containerID":"c2","ifname":"eth0"}]`)
			conf = []byte(strings.Replace(string(conf), `"1.0.0"`, `"1.1.0"`, 1))
			if err := n.deps.GC(&skel.CmdArgs{Path: "/opt/cni/bin", StdinData: conf}); err != nil {
				t.Fatalf("GC: %v", err)
			}
			for _, id := range []string{"c1", "c2"} {
				if _, ok := n.links.hosts[hostveth.Name(id, "eth0")]; !ok {
					t.Errorf("GC removed the host veth of %s, a valid attachment", id)
				}
			}
			_, left := n.links.hosts[c3]
			if exec {
				if !left {
					t.Error("GC removed c3's host veth, which an IPAM plugin run by exec did not name")
				}
				return
			}
			if left || atGC {
				t.Errorf("c3 (not valid, netns alive): host veth left %v, there when IPAM's GC ran %v; want removed before", left, atGC)
			}
		})
	}
}

func TestStatus(t *testing.T) {
	n := newFakeNode()
	conf := []byte(strings.Replace(string(testConf("host-local", "")), `"1.0.0"`, `"1.1.0"`, 1))
	if err := n.deps.Status(testArgs(conf, "")); err != nil {
		t.Fatal(err)
	}
	n.ipam.fail["STATUS"] = types.NewError(50, "no free address", "")
	err := n.deps.Status(testArgs(conf, ""))
	var te *types.Error
	if !errors.As(err, &te) || te.Code != 50 || !strings.Contains(te.Msg, `"host-local" STATUS`) {
		t.Errorf("STATUS: %v", err)
	}
	// An IPAM plugin not installed (yet: a node's plugins are often copied
	// in after its configuration) cannot service ADD: 50, not a
	// configuration error.
	missing := []byte(strings.Replace(string(testConf("missing", "")), `"1.0.0"`, `"1.1.0"`, 1))
	err = n.deps.Status(testArgs(missing, ""))
	if !errors.As(err, &te) || te.Code != 50 || !strings.Contains(te.Msg, `"missing" not found`) {
		t.Errorf("STATUS with the IPAM plugin not installed: %v", err)
	}
	// A link of the bridge's name that is no bridge: every ADD fails.
	n.links.fail["BridgeByName"] = fmt.Errorf("link %q %w (type veth)", "cni0", link.ErrNotBridge)
	err = n.deps.Status(testArgs(conf, ""))
	if !errors.As(err, &te) || te.Code != 50 || !strings.Contains(te.Msg, `"cni0"`) {
		t.Errorf("STATUS with a veth of the bridge's name: %v", err)
	}
}

// An ADD whose IPAM only gave the attachment back the address it held
// (another ADD of the same attachment holds it: with our host-local, IPAM
// runs before the veth exists) releases nothing when it fails.
func TestAddUndoKeepsHeldLease(t *testing.T) {
	for _, local := range []bool{false, true} {
		t.Run(fmt.Sprintf("local=%v", local), func(t *testing.T) {
			n := newFakeNode(testNetns)
			n.ipam.local = local
			n.ipam.leases["c1/eth0"] = netip.MustParseAddr("10.1.0.9")
			n.links.fail["SetupVeth"] = errors.New("interface eth0 exists")
			if _, err := n.deps.Add(testArgs(testConf("host-local", ""), "c1")); err == nil {
				t.Fatal("ADD succeeded")
			}
			if got := n.ipam.leases["c1/eth0"]; got != netip.MustParseAddr("10.1.0.9") {
				t.Errorf("lease of c1/eth0 after the failed ADD: %v, want 10.1.0.9 kept", got)
			}
		})
	}
}

// Two ADDs of one attachment at once, with our host-local: the first
// reserves the address, the second gets it back as held, creates the
// interface first and succeeds; the first then fails on the interface
// name. Its undo must not release the lease the successful ADD uses (the
// address would go to another container while this one has it).
func TestAddRacingSameAttachmentKeepsWinnersLease(t *testing.T) {
	n := newFakeNode(testNetns)
	n.ipam.local = true
	args := testArgs(testConf("host-local", ""), "c1")
	var second *current.Result
	n.links.beforeSetupVeth = func() {
		// The first ADD's IPAM, started beside the bridge, has reserved.
		for {
			n.ipam.mu.Lock()
			_, ok := n.ipam.leases["c1/eth0"]
			n.ipam.mu.Unlock()
			if ok {
				break
			}
			time.Sleep(time.Millisecond)
		}
		second = addOK(t, n, testArgs(testConf("host-local", ""), "c1"))
	}
	if _, err := n.deps.Add(args); err == nil {
		t.Fatal("first ADD succeeded: its interface name was taken")
	}
	if second == nil || len(second.IPs) != 1 {
		t.Fatalf("second ADD: %+v", second)
	}
	want, _ := netip.AddrFromSlice(second.IPs[0].Address.IP.To4())
	if got, ok := n.ipam.leases["c1/eth0"]; !ok || got != want {
		t.Errorf("lease of c1/eth0 after the racing ADDs: %v (held %v), want %v of the successful ADD kept", got, ok, want)
	}
}

// DEL and GC of a configuration ADD rejects still succeed, removing what
// they can find: a runtime would otherwise retry them for ever. The
// attachment was made with a valid configuration; the teardown's names an
// IPAM plugin that is not installed, one that is no plugin name, or a
// bridge no link can be called.
func TestTeardownOfRejectedConfig(t *testing.T) {
	for _, tc := range []struct {
		name     string
		conf     []byte
		ipamDel  bool // IPAM DEL still called
		bridgeOK bool // the bridge's rules are looked at
	}{
		{"IPAM not installed", testConf("missing", ""), false, true},
		{"IPAM no plugin name", testConf("../host-local", ""), false, true},
		{"bridge name too long", []byte(strings.Replace(string(testConf("host-local", "")), `"cni0"`, `"a-bridge-name-too-long"`, 1)), true, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n := newFakeNode(testNetns)
			addOK(t, n, testArgs(testConf("host-local", ""), "c1"))
			n.ipam.calls = nil
			args := testArgs(tc.conf, "c1")
			if err := n.deps.Del(args); err != nil {
				t.Fatalf("DEL: %v", err)
			}
			if _, ok := n.links.hosts[hostveth.Name("c1", "eth0")]; ok {
				t.Error("host veth left")
			}
			if len(n.spoof.checks) != 0 {
				t.Errorf("spoof checks left: %v", n.spoof.checks)
			}
			if got := slices.Contains(n.ipam.calls, "DEL c1/eth0"); got != tc.ipamDel {
				t.Errorf("IPAM DEL called %v, want %v: %v", got, tc.ipamDel, n.ipam.calls)
			}
			if _, ok := n.fw.Network("net1"); ok != !tc.bridgeOK {
				t.Errorf("rules of net1 there: %v, want %v", ok, !tc.bridgeOK)
			}
			// GC with no valid attachment removes the network's rules,
			// which go by its name, whatever the bridge's name.
			gcConf := []byte(strings.Replace(string(tc.conf), `"1.0.0"`, `"1.1.0"`, 1))
			if err := n.deps.GC(&skel.CmdArgs{Path: "/opt/cni/bin", StdinData: gcConf}); err != nil {
				t.Errorf("GC: %v", err)
			}
			if _, ok := n.fw.Network("net1"); ok {
				t.Error("rules of net1 left after GC with no valid attachment")
			}
		})
	}
}

// TestTeardownRuleKeysUnreadable: DEL and GC of a configuration whose keys
// asking for rules have the wrong type (edited since the ADDs) succeed,
// keep the network's rules while a container of it is attached, and the
// last DEL removes them.
func TestTeardownRuleKeysUnreadable(t *testing.T) {
	for _, bad := range []string{`"ipMasq":"yes"`, `"ipMasq":true,"isolation":5`, `"ipMasq":true,"internal":"yes"`, `"ipMasq":true,"icc":"no"`} {
		t.Run(bad, func(t *testing.T) {
			n := newFakeNode(testNetns, "/run/netns/c2")
			addOK(t, n, testArgs(testConf("host-local", ""), "c1"))
			c2 := testArgs(testConf("host-local", ""), "c2")
			c2.Netns = "/run/netns/c2"
			addOK(t, n, c2)
			conf := []byte(strings.Replace(string(testConf("host-local", "")), `"ipMasq":true`, bad, 1))
			if err := n.deps.Del(testArgs(conf, "c2")); err != nil {
				t.Fatalf("DEL with %s: %v", bad, err)
			}
			if slices.Contains(n.ipam.calls, "DEL c2/eth0") == false {
				t.Errorf("IPAM DEL not called: %v", n.ipam.calls)
			}
			if _, ok := n.fw.Network("net1"); !ok {
				t.Fatalf("DEL with %s removed the rules of net1 under c1", bad)
			}
			gc := []byte(strings.Replace(string(conf), `"1.0.0"`, `"1.1.0"`, 1))
			gc = []byte(strings.Replace(string(gc), `"ipam"`, `"cni.dev/valid-attachments":[{"containerID":"c1","ifname":"eth0"}],"ipam"`, 1))
			if err := n.deps.GC(&skel.CmdArgs{Path: "/opt/cni/bin", StdinData: gc}); err != nil {
				t.Fatalf("GC with %s: %v", bad, err)
			}
			if _, ok := n.fw.Network("net1"); !ok {
				t.Fatalf("GC with %s removed the rules of net1 under c1", bad)
			}
			if err := n.deps.Del(testArgs(conf, "c1")); err != nil {
				t.Fatalf("last DEL with %s: %v", bad, err)
			}
			if _, ok := n.fw.Network("net1"); ok {
				t.Errorf("last DEL with %s left the rules of net1", bad)
			}
		})
	}
}

// TestNoRulesNoLook: a network whose configuration asks for no rules looks
// for rules to remove only when it may hold some (ensureFirewall's marker):
// never for one that never had any, also after a GC (which takes the
// network's lock); for one whose ipMasq was turned off, once, at the ADD
// that removes them.
func TestNoRulesNoLook(t *testing.T) {
	gc := func(t *testing.T, n *fakeNode, conf []byte, valid string) {
		t.Helper()
		c := strings.Replace(string(conf), `"1.0.0"`, `"1.1.0"`, 1)
		c = strings.Replace(c, `"ipam"`, `"cni.dev/valid-attachments":[`+valid+`],"ipam"`, 1)
		if err := n.deps.GC(&skel.CmdArgs{Path: "/opt/cni/bin", StdinData: []byte(c)}); err != nil {
			t.Fatalf("GC: %v", err)
		}
	}
	locks := func(n *fakeNode) int {
		n.fw.mu.Lock()
		defer n.fw.mu.Unlock()
		return len(n.fw.locks)
	}
	conf := ipMasqOff(testConf("host-local", ""))

	n := newFakeNode(testNetns, "/run/netns/c2")
	addOK(t, n, testArgs(conf, "c1"))
	gc(t, n, conf, `{"containerID":"c1","ifname":"eth0"}`)
	before := locks(n)
	a2 := testArgs(conf, "c2")
	a2.Netns = "/run/netns/c2"
	addOK(t, n, a2)
	if err := n.deps.Del(a2); err != nil {
		t.Fatal(err)
	}
	if got := locks(n); got != before {
		t.Errorf("ADD and DEL of a network that never had rules took the network's lock %d times (looking for rules), want none", got-before)
	}

	n = newFakeNode(testNetns, "/run/netns/c2")
	addOK(t, n, testArgs(testConf("host-local", ""), "c1"))
	if !n.fw.MayHold("net1") {
		t.Fatal("the ADD that wrote the rules did not mark the network")
	}
	addOK(t, n, a2)
	if _, ok := n.fw.Network("net1"); ok || n.fw.MayHold("net1") {
		t.Fatalf("ADD with ipMasq off: rules there %t, marked %t; want neither", ok, n.fw.MayHold("net1"))
	}
	before = locks(n)
	if err := n.deps.Del(a2); err != nil {
		t.Fatal(err)
	}
	if got := locks(n); got != before {
		t.Errorf("DEL after the rules went took the network's lock %d times, want none", got-before)
	}
}

// TestDelNoReferenceLookupWithoutInterface: DEL looks for the reference
// plugin's rules of its container only when it deleted the container's
// interface itself (no host veth of ours: the reference attached it). A
// repeated DEL, or one whose netns is gone, finds no interface and starts
// no lookup, as the reference's DEL, which tears its masquerade rules down
// for the addresses of the interface it deleted: runtimes repeat DELs, and
// on a node with iptables-legacy tables the lookup starts processes.
func TestDelNoReferenceLookupWithoutInterface(t *testing.T) {
	n := newFakeNode(testNetns, "/run/netns/c2")
	a := testArgs(testConf("host-local", ""), "c1")
	keep := testArgs(testConf("host-local", ""), "keep")
	keep.Netns = "/run/netns/c2"
	addOK(t, n, keep)
	addOK(t, n, a)
	if err := n.deps.Del(a); err != nil {
		t.Fatalf("DEL: %v", err)
	}
	gone := testArgs(testConf("host-local", ""), "c9")
	gone.Netns = "/run/netns/gone"
	calls := len(n.fw.Calls())
	for _, args := range []*skel.CmdArgs{a, gone} {
		if err := n.deps.Del(args); err != nil {
			t.Fatalf("DEL %s: %v", args.ContainerID, err)
		}
	}
	if i := slices.IndexFunc(n.fw.Calls()[calls:], func(c string) bool { return strings.HasPrefix(c, "RemoveLegacyOf") }); i >= 0 {
		t.Errorf("a DEL that found no interface looked for reference rules: %v", n.fw.Calls()[calls:])
	}
}

// TestMarkedBeforeRulesWritten: the marker that lets a later configuration
// without rules find them is made before the rules may be written (a
// plugin killed in between leaves a marker without rules, which costs a
// look, never rules without a marker, which only GC would remove), and
// also when ADD finds them in place without one (written by a version
// that made no markers): ipMasq turned off afterwards takes them away at
// the next ADD.
func TestMarkedBeforeRulesWritten(t *testing.T) {
	n := newFakeNode(testNetns, "/run/netns/c2", "/run/netns/c3")
	var unmarked []string
	n.fw.onSync = func(network string) {
		if !n.fw.marked[network] {
			unmarked = append(unmarked, network)
		}
	}
	addOK(t, n, testArgs(testConf("host-local", ""), "c1"))
	if len(unmarked) != 0 {
		t.Errorf("Sync called before the network was marked: %v", unmarked)
	}

	// A node upgraded with the rules in place, no marker.
	n = newFakeNode(testNetns, "/run/netns/c2", "/run/netns/c3")
	if err := n.fw.Fake.Ensure(firewall.Network{Name: "net1", Bridge: "cni0", Subnets: []netip.Prefix{netip.MustParsePrefix("10.1.0.0/24")}, Masquerade: true, Forward: true}); err != nil {
		t.Fatal(err)
	}
	a2 := testArgs(testConf("host-local", ""), "c2")
	a2.Netns = "/run/netns/c2"
	addOK(t, n, a2)
	a3 := testArgs(ipMasqOff(testConf("host-local", "")), "c3")
	a3.Netns = "/run/netns/c3"
	addOK(t, n, a3)
	if _, ok := n.fw.Network("net1"); ok {
		t.Error("rules written by a version without markers stayed after ipMasq was turned off and an ADD")
	}
}

// TestGCUnmarkedNetwork: GC of a configuration without rules removes a
// network's rules that carry no marker (written by a version that made
// none) after asking the backends, and removes nothing from a network
// that never had any.
func TestGCUnmarkedNetwork(t *testing.T) {
	gc := func(t *testing.T, n *fakeNode) {
		t.Helper()
		conf := ipMasqOff(testConf("host-local", `,"cni.dev/valid-attachments":[{"containerID":"c1","ifname":"eth0"}]`))
		conf = []byte(strings.Replace(string(conf), `"1.0.0"`, `"1.1.0"`, 1))
		if err := n.deps.GC(&skel.CmdArgs{Path: "/opt/cni/bin", StdinData: conf}); err != nil {
			t.Fatalf("GC: %v", err)
		}
	}
	n := newFakeNode(testNetns)
	addOK(t, n, testArgs(testConf("host-local", ""), "c1"))
	if err := n.fw.SetMayHold("net1", false); err != nil {
		t.Fatal(err)
	}
	gc(t, n)
	if _, ok := n.fw.Network("net1"); ok {
		t.Error("GC without ipMasq left the rules of a network without the marker")
	}

	n = newFakeNode(testNetns)
	addOK(t, n, testArgs(ipMasqOff(testConf("host-local", "")), "c1"))
	gc(t, n)
	if i := slices.IndexFunc(n.fw.Calls(), func(c string) bool { return strings.HasPrefix(c, "Remove ") }); i >= 0 {
		t.Errorf("GC of a network that never had rules removed some: %v", n.fw.Calls())
	}
}

// TestStatusFirewallUsable: a network with rules, or publishing ports,
// cannot service ADD when its firewall backend cannot run (the iptables
// command missing): STATUS is 50 naming the keys and the backend; a network
// without either does not ask.
func TestStatusFirewallUsable(t *testing.T) {
	n := newFakeNode()
	n.fw.unusable = errors.New(`ipMasqBackend "iptables": exec: "iptables": executable file not found in $PATH`)
	v11 := func(b []byte) []byte { return []byte(strings.Replace(string(b), `"1.0.0"`, `"1.1.0"`, 1)) }
	for _, tc := range []struct {
		conf []byte
		keys string
	}{
		{v11(testConf("host-local", `,"ipMasqBackend":"iptables"`)), "ipMasq"},
		{v11(ipMasqOff(testConf("host-local", `,"capabilities":{"portMappings":true}`))), "portMappings"},
	} {
		err := n.deps.Status(testArgs(tc.conf, ""))
		var te *types.Error
		if !errors.As(err, &te) || te.Code != 50 || !strings.HasPrefix(te.Msg, tc.keys+": ") || !strings.Contains(te.Msg, "iptables") {
			t.Errorf("STATUS of %s with the backend unusable: %v, want 50 naming %s and iptables", tc.conf, err, tc.keys)
		}
	}
	if err := n.deps.Status(testArgs(v11(ipMasqOff(testConf("host-local", ""))), "")); err != nil {
		t.Errorf("STATUS of a network without rules or ports, backend unusable: %v", err)
	}
}

// TestLastDelForgetsNetwork: the network's last DEL, which removed its
// rules or published ports, forgets it (its marker and lock file go:
// podman network rm leaves nothing in /run/flatcni); an earlier DEL, a
// network without rules or ports, and a last DEL whose removal failed do
// not.
func TestLastDelForgetsNetwork(t *testing.T) {
	forgotten := func(n *fakeNode) []string {
		n.fw.mu.Lock()
		defer n.fw.mu.Unlock()
		return slices.Clone(n.fw.forgotten)
	}
	for _, tt := range []struct {
		name string
		conf []byte
		want bool
	}{
		{"masquerade", testConf("host-local", ""), true},
		{"ports only", ipMasqOff(testConf("host-local", `,"capabilities":{"portMappings":true},"runtimeConfig":{"portMappings":[{"hostPort":8080,"containerPort":80}]}`)), true},
		{"neither", ipMasqOff(testConf("host-local", "")), false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			n := newFakeNode(testNetns, "/run/netns/c2")
			a1, a2 := testArgs(tt.conf, "c1"), testArgs(ipMasqOffIf(tt.conf), "c2")
			a2.Netns = "/run/netns/c2"
			addOK(t, n, a1)
			addOK(t, n, a2)
			if err := n.deps.Del(a1); err != nil {
				t.Fatal(err)
			}
			if got := forgotten(n); len(got) != 0 {
				t.Fatalf("forgotten while c2 is attached: %v", got)
			}
			if err := n.deps.Del(a2); err != nil {
				t.Fatal(err)
			}
			if got := forgotten(n); tt.want != slices.Equal(got, []string{"net1"}) || !tt.want && len(got) != 0 {
				t.Errorf("after the last DEL forgotten %v, want net1 forgotten %t", got, tt.want)
			}
			if tt.want && n.fw.MayHold("net1") {
				t.Error("marker left after the last DEL")
			}
		})
	}

	// The last DEL fails to remove the rules: the network is not forgotten
	// (its marker tells the next verbs to look again).
	n := newFakeNode(testNetns)
	a := testArgs(testConf("host-local", ""), "c1")
	addOK(t, n, a)
	n.fw.SetError(errors.New("remove failed"))
	if err := n.deps.Del(a); err == nil {
		t.Fatal("DEL succeeded though the rules could not be removed")
	}
	if got := forgotten(n); len(got) != 0 || !n.fw.MayHold("net1") {
		t.Errorf("after a failed removal: forgotten %v, marked %t; want not forgotten, marked", got, n.fw.MayHold("net1"))
	}
}

// On a node with iptables-legacy tables, the last DEL of a network whose
// backend in force is not iptables cannot see whether the iptables backend
// still has rules of it (an ipMasqBackend switched since, the old rules
// in iptables-legacy): the network is not forgotten, so that its marker
// still sends GC (which removes from every backend) to look.
func TestLastDelKeepsMarkerWithLegacyTables(t *testing.T) {
	for _, legacy := range []bool{false, true} {
		n := newFakeNode(testNetns)
		n.fw.others = map[string]firewall.Backend{firewall.IPTablesName: namedBackend{firewall.NewFake(), firewall.IPTablesName}}
		n.fw.legacy = legacy
		a := testArgs(testConf("host-local", ""), "c1")
		addOK(t, n, a)
		if err := n.deps.Del(a); err != nil {
			t.Fatal(err)
		}
		n.fw.mu.Lock()
		forgotten := slices.Clone(n.fw.forgotten)
		n.fw.mu.Unlock()
		if want := !legacy; (len(forgotten) == 1) != want || n.fw.MayHold("net1") == want {
			t.Errorf("legacy tables %t: forgotten %v, marked %t; want forgotten %t", legacy, forgotten, n.fw.MayHold("net1"), want)
		}
	}
}

// ipMasqOffIf is conf, with ipMasq off when conf has it off (the second
// container of TestLastDelForgetsNetwork uses the same keys as the first,
// without publishing ports: one host port has one holder).
func ipMasqOffIf(conf []byte) []byte {
	s := strings.Replace(string(conf), `{"hostPort":8080,"containerPort":80}`, "", 1)
	return []byte(s)
}

// TestGCForgetsEmptyNetwork: GC without valid attachments removes the
// network's rules and forgets it, as its last DEL; GC keeping one does not.
func TestGCForgetsEmptyNetwork(t *testing.T) {
	n := newFakeNode(testNetns)
	conf := testConf("host-local", "")
	addOK(t, n, testArgs(conf, "c1"))
	gc := func(valid string) {
		t.Helper()
		c := strings.Replace(string(conf), `"1.0.0"`, `"1.1.0"`, 1)
		c = strings.Replace(c, `"ipam"`, `"cni.dev/valid-attachments":[`+valid+`],"ipam"`, 1)
		if err := n.deps.GC(&skel.CmdArgs{Path: "/opt/cni/bin", StdinData: []byte(c)}); err != nil {
			t.Fatalf("GC: %v", err)
		}
	}
	gc(`{"containerID":"c1","ifname":"eth0"}`)
	if len(n.fw.forgotten) != 0 || !n.fw.MayHold("net1") {
		t.Fatalf("GC keeping c1: forgotten %v, marked %t", n.fw.forgotten, n.fw.MayHold("net1"))
	}
	gc("")
	if !slices.Equal(n.fw.forgotten, []string{"net1"}) || n.fw.MayHold("net1") {
		t.Errorf("GC keeping nothing: forgotten %v, marked %t; want net1 forgotten", n.fw.forgotten, n.fw.MayHold("net1"))
	}
}
