package config

import (
	"errors"
	"net/netip"
	"strings"
	"testing"

	"github.com/containernetworking/cni/pkg/types"
	"github.com/containernetworking/cni/pkg/utils"

	"github.com/flatcni/plugins/pkg/ipam"
)

// fuzzSeeds are network configurations, good and bad, both fuzz targets start from.
var fuzzSeeds = []string{
	`{"cniVersion":"1.0.0","name":"n","type":"bridge","bridge":"cni0","isGateway":true,"ipMasq":true,"ipam":{"type":"host-local","subnet":"10.0.0.0/24"}}`,
	`{"cniVersion":"1.0.0","name":"n","type":"bridge","ipMasqBackend":"nftables","nonMasqueradeCIDRs":["10.0.0.0/8"],"mtu":1400,"ipam":{"type":"host-local","ranges":[[{"subnet":"10.0.0.0/24","rangeStart":"10.0.0.10","rangeEnd":"10.0.0.20","gateway":"10.0.0.1"}],[{"subnet":"fd00::/64"}]],"routes":[{"dst":"0.0.0.0/0"}]}}`,
	`{"cniVersion":"0.3.1","name":"n","type":"bridge","vlan":5,"vlanTrunk":[{"minID":10,"maxID":20},{"id":30}],"args":{"cni":{"mac":"02:00:00:00:00:01","ips":["10.0.0.5"]}},"runtimeConfig":{"mac":"02:00:00:00:00:02","ips":["fd00::5/64"],"ipRanges":[[{"subnet":"10.5.0.0/16"}]]},"ipam":{"type":"host-local","subnet":"10.0.0.0/24","dataDir":"/tmp/x","resolvConf":"/etc/resolv.conf"}}`,
	`{"cniVersion":"1.0.0","name":"n","ipam":{"type":"host-local","ranges":[[{"subnet":"10.0.0.0/31","gateway":"10.0.0.0"},{"subnet":"10.0.1.0/30"}]]}}`,
	`{"cniVersion":"1.0.0","name":"n","ipam":{"subnet":"::ffff:10.0.0.0/120","rangeStart":"::ffff:10.0.0.9"}}`,
	`{"cniVersion":"1.0.0","name":"n","hairpinMode":true,"promiscMode":true,"ipam":{"type":"../x","subnet":"10.0.0.0/24"}}`,
	`{"cniVersion":"1.0.0","name":"","ipam":{"ranges":[[]],"routes":[{"dst":"x"}]}}`,
	`{"cniVersion":`,
	`[]`,
	``,
}

// checkCNIError fails unless err is a CNI error with one of the codes a
// configuration problem may give (4 for CNI_ARGS, 6 undecodable, 7 invalid)
// and a message.
func checkCNIError(t *testing.T, err error) {
	t.Helper()
	var e *types.Error
	if !errors.As(err, &e) {
		t.Fatalf("error %v (%T) is not a CNI error", err, err)
	}
	switch e.Code {
	case types.ErrInvalidEnvironmentVariables, types.ErrDecodingFailure, types.ErrInvalidNetworkConfig:
	default:
		t.Fatalf("error code %d for a configuration problem: %s", e.Code, e.Msg)
	}
	if strings.TrimSpace(e.Msg) == "" {
		t.Fatalf("error code %d without a message", e.Code)
	}
}

// FuzzLoadBridge: the bridge configuration parser never panics, fails only
// with CNI configuration errors, and what it accepts is valid.
func FuzzLoadBridge(f *testing.F) {
	for _, s := range fuzzSeeds {
		f.Add([]byte(s), "")
	}
	f.Add([]byte(fuzzSeeds[0]), "IgnoreUnknown=1;MAC=02:00:00:00:00:09;IP=10.0.0.9")
	f.Add([]byte(fuzzSeeds[0]), "MAC=01:00:00:00:00:09")
	f.Fuzz(func(t *testing.T, stdin []byte, envArgs string) {
		c, err := LoadBridge(stdin, envArgs)
		if err != nil {
			checkCNIError(t, err)
			return
		}
		if utils.ValidateNetworkName(c.Name) != nil {
			t.Fatalf("accepted network name %q", c.Name)
		}
		if utils.ValidateInterfaceName(c.BrName) != nil {
			t.Fatalf("accepted bridge name %q", c.BrName)
		}
		if c.MTU != 0 && (c.MTU < 68 || c.MTU > 65535) {
			t.Fatalf("accepted mtu %d", c.MTU)
		}
		if b := c.MasqBackend(); b != "" && b != "iptables" && b != "nftables" {
			t.Fatalf("accepted ipMasqBackend %q", b)
		}
		if c.IsLayer3() && strings.ContainsAny(c.IPAM.Type, "/\x00") {
			t.Fatalf("accepted ipam.type %q", c.IPAM.Type)
		}
		if c.MAC != nil && (len(c.MAC) != 6 || c.MAC[0]&1 == 1) {
			t.Fatalf("accepted MAC %s", c.MAC)
		}
		if len(c.NonMasq) != len(c.NonMasqueradeCIDRs) {
			t.Fatalf("nonMasqueradeCIDRs %v parsed to %v", c.NonMasqueradeCIDRs, c.NonMasq)
		}
		for _, p := range c.NonMasq {
			if !p.IsValid() || p.Masked() != p {
				t.Fatalf("nonMasqueradeCIDRs: %v", p)
			}
		}
		for _, v := range c.TrunkVlans {
			if v < 1 || v > 4094 {
				t.Fatalf("accepted trunk vlan %d", v)
			}
		}
	})
}

// FuzzLoadIPAM: the host-local configuration parser never panics, fails only
// with CNI configuration errors, and every range set it accepts is canonical,
// disjoint from the others, and has an address to hand out.
func FuzzLoadIPAM(f *testing.F) {
	for _, s := range fuzzSeeds {
		f.Add([]byte(s), "")
	}
	f.Add([]byte(fuzzSeeds[1]), "IP=10.0.0.15,fd00::7")
	f.Add([]byte(fuzzSeeds[1]), "IP=10.0.0.1")
	f.Fuzz(func(t *testing.T, stdin []byte, envArgs string) {
		c, err := LoadIPAM(stdin, envArgs)
		if err != nil {
			checkCNIError(t, err)
			return
		}
		if utils.ValidateNetworkName(c.Network) != nil || c.Network == ".flatcni" {
			t.Fatalf("accepted network name %q", c.Network)
		}
		if len(c.Ranges) == 0 {
			t.Fatal("accepted a configuration without ranges")
		}
		for i, set := range c.Ranges {
			if set.Len() == 0 {
				t.Fatalf("range set %d is empty", i)
			}
			for _, r := range set.All() {
				checkRange(t, &r, set.Is4())
			}
			for k := 0; k < i; k++ {
				if set.Overlaps(c.Ranges[k]) {
					t.Fatalf("range sets %d (%s) and %d (%s) overlap", k, c.Ranges[k], i, set)
				}
			}
			// Every accepted set can hand out an address.
			al, err := ipam.Allocate(ipam.NewMemStore(), set, i, ipam.Attachment{ContainerID: "c", IfName: "eth0"}, netip.Addr{})
			if err != nil {
				t.Fatalf("range set %d (%s): %v", i, set, err)
			}
			if r, ok := set.RangeFor(al.Addr.Addr()); !ok || al.Addr.Addr() == r.Gateway {
				t.Fatalf("range set %d (%s) handed out %s", i, set, al.Addr)
			}
		}
		for _, a := range c.Requested {
			if !a.IsValid() || a.Is4In6() {
				t.Fatalf("requested address %v", a)
			}
		}
		for _, r := range c.Routes {
			if r == nil || r.Dst.IP == nil {
				t.Fatalf("route without destination: %v", r)
			}
		}
	})
}

func checkRange(t *testing.T, r *ipam.Range, is4 bool) {
	t.Helper()
	if !r.Subnet.IsValid() || r.Subnet.Masked() != r.Subnet || r.Subnet.Addr().Is4In6() {
		t.Fatalf("range subnet %v", r.Subnet)
	}
	if r.Subnet.Addr().Is4() != is4 {
		t.Fatalf("range %s: mixed families in the set", r)
	}
	for _, a := range []netip.Addr{r.Start, r.End} {
		if !r.Subnet.Contains(a) {
			t.Fatalf("range %s leaves subnet %s", r, r.Subnet)
		}
	}
	// The gateway may be outside the subnet (as the reference allows), not
	// of the other family.
	if !r.Gateway.IsValid() || r.Gateway.Is4() != is4 || r.Gateway.Zone() != "" {
		t.Fatalf("range %s: gateway %v", r, r.Gateway)
	}
	if r.End.Less(r.Start) {
		t.Fatalf("range %s ends before it starts", r)
	}
	// A range may hold its gateway alone (its set has other ranges: every
	// accepted set hands out an address, checked above), not in a /31 or
	// /127.
	if r.Start == r.End && r.Start == r.Gateway && r.Subnet.Bits() >= r.Subnet.Addr().BitLen()-1 {
		t.Fatalf("range %s of a two-address subnet holds only its gateway", r)
	}
}
