package bridge

import (
	"errors"
	"net"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/containernetworking/cni/pkg/skel"
	"github.com/containernetworking/cni/pkg/types"
	current "github.com/containernetworking/cni/pkg/types/100"

	"github.com/flatcni/plugins/pkg/config"
	"github.com/flatcni/plugins/pkg/firewall"
)

// isoConf is testConf without masquerade, with the isolation keys in extra.
func isoConf(extra string) []byte {
	return testConf("host-local", `,"ipMasq":false`+extra)
}

// The verbs on fakes: ADD ensures the isolation rules (also without
// ipMasq), the last DEL and GC remove them.
func TestIsolationVerbs(t *testing.T) {
	n := newFakeNode(testNetns, "/run/netns/c2")
	conf := isoConf(`,"internal":true,"icc":false,"isolation":"strict"`)
	addOK(t, n, testArgs(conf, "c1"))
	a2 := testArgs(conf, "c2")
	a2.Netns = "/run/netns/c2"
	addOK(t, n, a2)
	nw, ok := n.fw.Network("net1")
	// Forward: an internal network's containers reach each other under a
	// FORWARD DROP policy (br_netfilter).
	if !ok || nw.Masquerade || !nw.Forward || !nw.Internal || !nw.NoICC || nw.Isolation != firewall.IsolationStrict ||
		nw.Bridge != "cni0" || !slices.Equal(nw.Subnets, []netip.Prefix{netip.MustParsePrefix("10.1.0.0/24")}) {
		t.Fatalf("firewall network: %+v, %v", nw, ok)
	}
	if err := n.deps.Del(testArgs(conf, "c1")); err != nil {
		t.Fatal(err)
	}
	if _, ok := n.fw.Network("net1"); !ok {
		t.Error("rules removed while c2 is attached")
	}
	if err := n.deps.Del(a2); err != nil {
		t.Fatal(err)
	}
	if _, ok := n.fw.Network("net1"); ok {
		t.Error("rules left after the last DEL")
	}

	addOK(t, n, testArgs(isoConf(`,"isolation":"isolated"`), "c1"))
	gcConf := strings.Replace(string(isoConf(`,"isolation":"isolated","cni.dev/valid-attachments":[]`)), `"1.0.0"`, `"1.1.0"`, 1)
	if err := n.deps.GC(&skel.CmdArgs{Path: "/opt/cni/bin", StdinData: []byte(gcConf)}); err != nil {
		t.Fatal(err)
	}
	if _, ok := n.fw.Network("net1"); ok {
		t.Error("rules left after GC without valid attachments")
	}
}

// An invalid combination is refused before anything is asked of the node.
func TestIsolationValidation(t *testing.T) {
	for _, tc := range []struct{ extra, key string }{
		{`,"ipMasq":true,"internal":true`, "internal: cannot be combined with ipMasq"},
		{`,"isDefaultGateway":true,"internal":true`, "internal: cannot be combined with isDefaultGateway"},
		{`,"isolation":"private"`, "isolation: unknown value"},
		{`,"icc":false,"vlan":3`, "vlan: 3 cannot be combined"},
	} {
		n := newFakeNode(testNetns)
		_, err := n.deps.Add(testArgs(isoConf(tc.extra), "c1"))
		var te *types.Error
		if !errors.As(err, &te) || te.Code != types.ErrInvalidNetworkConfig || !strings.Contains(te.Msg, tc.key) {
			t.Errorf("%s: error %v, want code 7 with %q", tc.extra, err, tc.key)
		}
		if len(n.links.calls) != 0 || len(n.ipam.calls) != 0 || len(n.fw.Calls()) != 0 {
			t.Errorf("%s: calls before validation: %v %v %v", tc.extra, n.links.calls, n.ipam.calls, n.fw.Calls())
		}
	}
}

func TestIsolationHooks(t *testing.T) {
	load := func(conf string) *config.Bridge {
		t.Helper()
		c, err := config.LoadBridge([]byte(`{"cniVersion":"1.1.0","name":"n","type":"bridge","bridge":"br0","ipam":{"type":"host-local"},`+conf+`}`), "")
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	internal := load(`"internal":true,"icc":false,"isolation":"strict"`)
	if !needsFirewall(internal) || !portIsolated(internal) || firewallKeys(internal) != "isolation/internal/icc" {
		t.Errorf("internal/icc false network: rules %v, port isolation %v, keys %q", needsFirewall(internal), portIsolated(internal), firewallKeys(internal))
	}
	plain := load(`"ipMasq":false`)
	if needsFirewall(plain) || portIsolated(plain) {
		t.Error("a network without ipMasq or isolation needs rules")
	}

	res := &current.Result{Routes: []*types.Route{
		{Dst: net.IPNet{IP: net.IPv4zero, Mask: net.CIDRMask(0, 32)}},
		{Dst: net.IPNet{IP: net.IPv4(10, 9, 0, 0), Mask: net.CIDRMask(16, 32)}},
		{Dst: net.IPNet{IP: net.IPv6zero, Mask: net.CIDRMask(0, 128)}},
	}}
	dropDefaultRoutes(internal, res)
	if len(res.Routes) != 1 || res.Routes[0].Dst.String() != "10.9.0.0/16" {
		t.Errorf("routes of an internal network: %v", res.Routes)
	}
}
