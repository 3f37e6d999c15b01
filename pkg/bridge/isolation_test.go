package bridge

import (
	"net"
	"testing"

	"github.com/containernetworking/cni/pkg/types"
	current "github.com/containernetworking/cni/pkg/types/100"

	"github.com/flatcni/plugins/pkg/config"
	"github.com/flatcni/plugins/pkg/firewall"
)

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
	if !needsFirewall(internal) || !portIsolated(internal) {
		t.Error("internal/icc false network: no rules or no port isolation")
	}
	fw := firewall.NewFake()
	if err := fw.Ensure(firewallNetwork(internal, nil)); err != nil {
		t.Fatal(err)
	}
	n, ok := fw.Network("n")
	if !ok || n.Masquerade || n.Forward || !n.Internal || !n.NoICC || n.Isolation != firewall.IsolationStrict {
		t.Errorf("rules %+v (%v)", n, ok)
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
