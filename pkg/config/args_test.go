package config

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"testing"

	"github.com/containernetworking/cni/pkg/types"
)

func TestParseEnvArgs(t *testing.T) {
	tests := []struct {
		in      string
		wantIPs string
		wantMAC string
		wantErr string
	}{
		{in: ""},
		{in: "IgnoreUnknown=1;K8S_POD_NAME=p;K8S_POD_NAMESPACE=ns"},
		{in: "IP=10.0.0.5", wantIPs: "[10.0.0.5]"},
		{in: "IP=10.0.0.5/24", wantIPs: "[10.0.0.5]"},
		{in: "IP=10.0.0.5,fd00::5", wantIPs: "[10.0.0.5 fd00::5]"},
		{in: "IP= 10.0.0.5 , fd00::5/64 ", wantIPs: "[10.0.0.5 fd00::5]"},
		{in: "IP=::ffff:10.0.0.5", wantIPs: "[10.0.0.5]"},
		{in: "IgnoreUnknown=1;IP=10.0.0.5;MAC=aa:bb:cc:dd:ee:ff;", wantIPs: "[10.0.0.5]", wantMAC: "aa:bb:cc:dd:ee:ff"},
		{in: "IP=10.0.0.300", wantErr: "IP=10.0.0.300"},
		{in: "IP=10.0.0.5,nope", wantErr: "IP=nope"},
		// An empty IP= asks for nothing, as with the reference (whose
		// parser takes an empty value for no address).
		{in: "IP="},
		{in: "IgnoreUnknown=1;IP=;MAC=aa:bb:cc:dd:ee:ff", wantMAC: "aa:bb:cc:dd:ee:ff"},
		{in: "IP= ", wantErr: "IP= "},
		{in: "IP=10.0.0.5,", wantErr: "IP=: not an IP address"},
		{in: "garbage", wantErr: "garbage"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseEnvArgs(tt.in)
			if tt.wantErr != "" {
				var e *types.Error
				if !errors.As(err, &e) || e.Code != types.ErrInvalidEnvironmentVariables || !strings.Contains(e.Msg, tt.wantErr) {
					t.Fatalf("ParseEnvArgs(%q) error = %#v, want code 4 naming %q", tt.in, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			ips := ""
			if got.IPs != nil {
				ips = fmt.Sprint(got.IPs)
			}
			if ips != tt.wantIPs || got.MAC != tt.wantMAC {
				t.Fatalf("got IPs %s MAC %q, want %s %q", ips, got.MAC, tt.wantIPs, tt.wantMAC)
			}
		})
	}
}

func TestParseAddrOrPrefix(t *testing.T) {
	for _, tt := range []struct {
		in   string
		want netip.Addr
		ok   bool
	}{
		{"10.1.2.3", netip.MustParseAddr("10.1.2.3"), true},
		{"10.1.2.3/8", netip.MustParseAddr("10.1.2.3"), true},
		{"fd00::1/64", netip.MustParseAddr("fd00::1"), true},
		{"::ffff:1.2.3.4", netip.MustParseAddr("1.2.3.4"), true},
		{"1.2.3.4/33", netip.Addr{}, false},
		{"", netip.Addr{}, false},
	} {
		got, err := ParseAddrOrPrefix(tt.in)
		if (err == nil) != tt.ok || (tt.ok && got != tt.want) {
			t.Errorf("ParseAddrOrPrefix(%q) = %v, %v", tt.in, got, err)
		}
	}
}

// Bad CNI_CONTAINERID and CNI_IFNAME are named with their value, for the
// verbs that use them; the rest is left to skel.
func TestCheckEnvNames(t *testing.T) {
	for _, tc := range []struct {
		env  map[string]string
		want string // "" for no error
	}{
		{map[string]string{"CNI_COMMAND": "ADD", "CNI_CONTAINERID": "c1", "CNI_IFNAME": "eth0"}, ""},
		{map[string]string{"CNI_COMMAND": "ADD", "CNI_CONTAINERID": "c1", "CNI_IFNAME": "eth0/x"}, `CNI_IFNAME "eth0/x": interface name contains / or : or whitespace characters`},
		{map[string]string{"CNI_COMMAND": "DEL", "CNI_CONTAINERID": "c 1", "CNI_IFNAME": "eth0"}, `CNI_CONTAINERID "c 1": invalid characters in containerID`},
		{map[string]string{"CNI_COMMAND": "CHECK", "CNI_IFNAME": "a-name-longer-than-15"}, `CNI_IFNAME "a-name-longer-than-15": interface name is too long`},
		{map[string]string{"CNI_COMMAND": "GC", "CNI_IFNAME": "eth0/x"}, ""}, // GC takes no CNI_IFNAME
		{map[string]string{"CNI_COMMAND": "ADD"}, ""}, // missing: skel lists them
	} {
		err := CheckEnvNames(func(k string) string { return tc.env[k] })
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%v: %v", tc.env, err)
		case tc.want != "" && (err == nil || err.Code != 4 || err.Msg != tc.want):
			t.Errorf("%v: error %v, want code 4 %q", tc.env, err, tc.want)
		}
	}
}

// The bridge, like host-local, ignores a CNI_ARGS field whose equivalent
// args carries (CONVENTIONS.md): neither parsed nor used.
func TestLoadBridgeIgnoresCNIArgsCoveredByArgs(t *testing.T) {
	const conf = `{"cniVersion":"1.1.0","name":"n","type":"bridge","ipam":{"type":"host-local"},"args":{"cni":{"ips":["10.0.0.5"],"mac":"02:00:00:00:00:05"}}}`
	b, err := LoadBridge([]byte(conf), "IgnoreUnknown=1;IP=nonsense;MAC=not-a-mac")
	if err != nil {
		t.Fatalf("LoadBridge: %v", err)
	}
	if b.MAC.String() != "02:00:00:00:00:05" {
		t.Errorf("MAC %s, want args.cni.mac's", b.MAC)
	}
	// Without args, CNI_ARGS IP= is IPAM's to check: host-local refuses a
	// bad one (code 4); the bridge reads MAC= only, as the reference (an
	// L2 network, or another IPAM plugin, may be given anything there).
	const plain = `{"cniVersion":"1.1.0","name":"n","type":"bridge","ipam":{"type":"host-local","subnet":"10.0.0.0/24"}}`
	if _, err := LoadIPAM([]byte(plain), "IP=nonsense"); err == nil || err.(*types.Error).Code != types.ErrInvalidEnvironmentVariables {
		t.Errorf("host-local with a bad CNI_ARGS IP= and no args.cni.ips: %v; want code 4", err)
	}
	for _, conf := range []string{plain, `{"cniVersion":"1.1.0","name":"n","type":"bridge","ipam":{}}`} {
		if _, err := LoadBridge([]byte(conf), "IgnoreUnknown=1;IP=auto"); err != nil {
			t.Errorf("bridge %s with CNI_ARGS IP=auto: %v", conf, err)
		}
	}
}

// A bad MAC is an invalid environment variable (code 4) in CNI_ARGS, as a
// bad IP= there, and an invalid configuration (7) in args or runtimeConfig;
// each message names where it came from.
func TestLoadBridgeBadMACCodes(t *testing.T) {
	const base = `{"cniVersion":"1.1.0","name":"n","type":"bridge","ipam":{"type":"host-local"}%s}`
	for _, tc := range []struct {
		extra, env, key string
		code            uint
	}{
		{"", "IgnoreUnknown=1;MAC=zz", "CNI_ARGS MAC", types.ErrInvalidEnvironmentVariables},
		{"", "IgnoreUnknown=1;MAC=01:00:5e:00:00:01", "CNI_ARGS MAC", types.ErrInvalidEnvironmentVariables},
		{`,"args":{"cni":{"mac":"zz"}}`, "", "args.cni.mac", types.ErrInvalidNetworkConfig},
		{`,"runtimeConfig":{"mac":"00:00:00:00:00:00"}`, "", "runtimeConfig.mac", types.ErrInvalidNetworkConfig},
	} {
		_, err := LoadBridge([]byte(fmt.Sprintf(base, tc.extra)), tc.env)
		var e *types.Error
		if !errors.As(err, &e) || e.Code != tc.code || !strings.HasPrefix(e.Msg, tc.key+": ") {
			t.Errorf("%s%s: %v, want code %d naming %s", tc.extra, tc.env, err, tc.code, tc.key)
		}
	}
}
