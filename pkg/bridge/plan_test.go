package bridge

import (
	"encoding/json"
	"errors"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/containernetworking/cni/pkg/types"
	current "github.com/containernetworking/cni/pkg/types/100"

	"github.com/flatcni/plugins/pkg/config"
	"github.com/flatcni/plugins/pkg/link"
)

func mustResult(t *testing.T, js string) *current.Result {
	t.Helper()
	var r current.Result
	if err := json.Unmarshal([]byte(js), &r); err != nil {
		t.Fatal(err)
	}
	return &r
}

func TestMakePlan(t *testing.T) {
	pfx := netip.MustParsePrefix
	addr := netip.MustParseAddr
	tests := []struct {
		name       string
		conf       string
		result     string
		addrs      []netip.Prefix
		routes     []link.Route
		gateways   []netip.Prefix
		v4, v6     bool
		wantRoutes int // routes in the result after makePlan
	}{
		{
			name:     "gateway from IPAM, no default route",
			conf:     `{"name":"n","isGateway":true,"ipam":{"type":"host-local"}}`,
			result:   `{"cniVersion":"1.0.0","ips":[{"address":"10.1.0.5/24","gateway":"10.1.0.1"}]}`,
			addrs:    []netip.Prefix{pfx("10.1.0.5/24")},
			gateways: []netip.Prefix{pfx("10.1.0.1/24")},
			v4:       true,
		},
		{
			name:       "isDefaultGateway adds a default route per family, gateway computed when missing",
			conf:       `{"name":"n","isDefaultGateway":true,"ipam":{"type":"host-local"}}`,
			result:     `{"cniVersion":"1.0.0","ips":[{"address":"10.1.0.5/24"},{"address":"fd00::5/64","gateway":"fd00::1"}]}`,
			addrs:      []netip.Prefix{pfx("10.1.0.5/24"), pfx("fd00::5/64")},
			routes:     []link.Route{{Dst: pfx("0.0.0.0/0"), GW: addr("10.1.0.1")}, {Dst: pfx("::/0"), GW: addr("fd00::1")}},
			gateways:   []netip.Prefix{pfx("10.1.0.1/24"), pfx("fd00::1/64")},
			v4:         true,
			v6:         true,
			wantRoutes: 2,
		},
		{
			name:       "IPAM's default route is kept, routes without gw go via the family's gateway",
			conf:       `{"name":"n","isDefaultGateway":true,"ipam":{"type":"host-local"}}`,
			result:     `{"cniVersion":"1.0.0","ips":[{"address":"10.1.0.5/24","gateway":"10.1.0.1"}],"routes":[{"dst":"0.0.0.0/0","gw":"10.1.0.254"},{"dst":"192.168.0.0/16"}]}`,
			addrs:      []netip.Prefix{pfx("10.1.0.5/24")},
			routes:     []link.Route{{Dst: pfx("0.0.0.0/0"), GW: addr("10.1.0.254")}, {Dst: pfx("192.168.0.0/16"), GW: addr("10.1.0.1")}},
			gateways:   []netip.Prefix{pfx("10.1.0.1/24")},
			v4:         true,
			wantRoutes: 2,
		},
		{
			name:   "not a gateway: no bridge addresses",
			conf:   `{"name":"n","ipam":{"type":"host-local"}}`,
			result: `{"cniVersion":"1.0.0","ips":[{"address":"10.1.0.5/24","gateway":"10.1.0.1"}]}`,
			addrs:  []netip.Prefix{pfx("10.1.0.5/24")},
			v4:     true,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := config.LoadBridge([]byte(tt.conf), "")
			if err != nil {
				t.Fatal(err)
			}
			res := mustResult(t, tt.result)
			p, err := makePlan(c, res)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(p.addrs, tt.addrs) || !slices.Equal(p.routes, tt.routes) || !slices.Equal(p.gateways, tt.gateways) || p.v4 != tt.v4 || p.v6 != tt.v6 {
				t.Errorf("plan = %+v", p)
			}
			if len(res.Routes) != tt.wantRoutes {
				t.Errorf("result routes = %v, want %d", res.Routes, tt.wantRoutes)
			}
			for _, ipc := range res.IPs {
				if ipc.Interface == nil || *ipc.Interface != 2 {
					t.Errorf("IP %v not pointed at the container interface", ipc.Address)
				}
			}
		})
	}
}

// An mtu below IPv6's minimum (1280) with an IPv6 address from IPAM is a
// configuration error naming mtu (the kernel turns IPv6 off on such a link,
// and adding the address failed on a missing sysctl); with IPv4 alone it
// is fine.
func TestMakePlanIPv6MinMTU(t *testing.T) {
	c, err := config.LoadBridge([]byte(`{"name":"n","mtu":1200,"ipam":{"type":"host-local"}}`), "")
	if err != nil {
		t.Fatal(err)
	}
	_, err = makePlan(c, mustResult(t, `{"cniVersion":"1.0.0","ips":[{"address":"10.1.0.5/24"},{"address":"fd00::5/64"}]}`))
	var te *types.Error
	if !errors.As(err, &te) || te.Code != types.ErrInvalidNetworkConfig || !strings.Contains(te.Msg, "mtu") || !strings.Contains(te.Msg, "1280") {
		t.Errorf("makePlan with mtu 1200 and an IPv6 address: %v; want code 7 naming mtu and 1280", err)
	}
	if _, err := makePlan(c, mustResult(t, `{"cniVersion":"1.0.0","ips":[{"address":"10.1.0.5/24"}]}`)); err != nil {
		t.Errorf("makePlan with mtu 1200 and IPv4 only: %v", err)
	}
}

// dnsSet: the configuration's "dns" replaces IPAM's when any of its keys is
// given, an empty list too (it clears IPAM's, as with the reference).
func TestDNSSet(t *testing.T) {
	for _, tc := range []struct {
		conf string
		want bool
	}{
		{`{}`, false},
		{`{"dns":{}}`, false},
		{`{"dns":{"nameservers":[]}}`, true},
		{`{"dns":{"search":[]}}`, true},
		{`{"dns":{"options":[]}}`, true},
		{`{"dns":{"domain":"example.org"}}`, true},
		{`{"dns":{"nameservers":["10.0.0.53"]}}`, true},
	} {
		var c config.Bridge
		if err := json.Unmarshal([]byte(tc.conf), &c); err != nil {
			t.Fatal(err)
		}
		if got := dnsSet(c.DNS); got != tc.want {
			t.Errorf("dnsSet(%s) = %t, want %t", tc.conf, got, tc.want)
		}
	}
}
