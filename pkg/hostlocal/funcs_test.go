package hostlocal

import (
	"net/netip"
	"slices"
	"testing"

	"github.com/containernetworking/cni/pkg/skel"
)

func TestSubnets(t *testing.T) {
	pfx := netip.MustParsePrefix
	for _, tc := range []struct {
		name, conf string
		want       []netip.Prefix
	}{
		{"ranges", `{"cniVersion":"1.0.0","name":"n","ipam":{"type":"host-local","ranges":[[{"subnet":"10.1.0.0/24"},{"subnet":"10.2.0.0/24"}],[{"subnet":"fd00::/64"}]]}}`,
			[]netip.Prefix{pfx("10.1.0.0/24"), pfx("10.2.0.0/24"), pfx("fd00::/64")}},
		{"legacy subnet", `{"cniVersion":"1.0.0","name":"n","ipam":{"type":"host-local","subnet":"10.9.0.0/16"}}`,
			[]netip.Prefix{pfx("10.9.0.0/16")}},
		// Runtime ipRanges come first, before the configured ranges, as for ADD.
		{"runtime ipRanges", `{"cniVersion":"1.0.0","name":"n","runtimeConfig":{"ipRanges":[[{"subnet":"10.77.0.0/24"}]]},"ipam":{"type":"host-local","ranges":[[{"subnet":"10.1.0.0/24"}]]}}`,
			[]netip.Prefix{pfx("10.77.0.0/24"), pfx("10.1.0.0/24")}},
	} {
		got, err := Subnets(&skel.CmdArgs{StdinData: []byte(tc.conf)})
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if !slices.Equal(got, tc.want) {
			t.Errorf("%s: Subnets = %v, want %v", tc.name, got, tc.want)
		}
	}
	if _, err := Subnets(&skel.CmdArgs{StdinData: []byte(`{"cniVersion":"1.0.0","name":"n","ipam":{"type":"host-local"}}`)}); err == nil {
		t.Error("no ranges: want an error")
	}
}
