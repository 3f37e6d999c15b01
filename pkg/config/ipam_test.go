package config

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/containernetworking/cni/pkg/types"
)

// summary prints the parts of an IPAM config the tests compare.
func summary(c *IPAM) string {
	var sets []string
	for _, s := range c.Ranges {
		var rs []string
		for _, r := range s.All() {
			rs = append(rs, fmt.Sprintf("%s:%s-%s gw %s", r.Subnet, r.Start, r.End, r.Gateway))
		}
		sets = append(sets, "["+strings.Join(rs, "; ")+"]")
	}
	var routes []string
	for _, r := range c.Routes {
		routes = append(routes, r.String())
	}
	return fmt.Sprintf("sets=%s req=%v routes=%d", strings.Join(sets, " "), c.Requested, len(routes))
}

func TestLoadIPAM(t *testing.T) {
	tests := []struct {
		name    string
		conf    string // the ipam object; the rest of the network config is added
		extra   string // more top-level keys, with a leading comma
		cniVer  string
		envArgs string
		want    string
	}{
		{name: "legacy subnet",
			conf: `{"type":"host-local","subnet":"10.0.0.0/24"}`,
			want: "sets=[10.0.0.0/24:10.0.0.1-10.0.0.254 gw 10.0.0.1] req=[] routes=0"},
		{name: "legacy with range and gateway",
			conf: `{"type":"host-local","subnet":"10.0.0.0/24","rangeStart":"10.0.0.50","rangeEnd":"10.0.0.60","gateway":"10.0.0.254"}`,
			want: "sets=[10.0.0.0/24:10.0.0.50-10.0.0.60 gw 10.0.0.254] req=[] routes=0"},
		{name: "dual stack ranges",
			conf: `{"type":"host-local","ranges":[[{"subnet":"10.0.0.0/24"}],[{"subnet":"fd00::/64"}]]}`,
			want: "sets=[10.0.0.0/24:10.0.0.1-10.0.0.254 gw 10.0.0.1] [fd00::/64:fd00::1-fd00::ffff:ffff:ffff:ffff gw fd00::1] req=[] routes=0"},
		{name: "legacy subnet comes before ranges",
			conf: `{"type":"host-local","subnet":"10.9.0.0/24","ranges":[[{"subnet":"10.0.0.0/24"}]]}`,
			want: "sets=[10.9.0.0/24:10.9.0.1-10.9.0.254 gw 10.9.0.1] [10.0.0.0/24:10.0.0.1-10.0.0.254 gw 10.0.0.1] req=[] routes=0"},
		{name: "set of two ranges",
			conf: `{"type":"host-local","ranges":[[{"subnet":"10.0.0.0/30"},{"subnet":"10.0.1.0/30"}]]}`,
			want: "sets=[10.0.0.0/30:10.0.0.1-10.0.0.2 gw 10.0.0.1; 10.0.1.0/30:10.0.1.1-10.0.1.2 gw 10.0.1.1] req=[] routes=0"},
		{name: "routes",
			conf: `{"type":"host-local","subnet":"10.0.0.0/24","routes":[{"dst":"0.0.0.0/0"},{"dst":"192.168.0.0/16","gw":"10.0.0.9"}]}`,
			want: "sets=[10.0.0.0/24:10.0.0.1-10.0.0.254 gw 10.0.0.1] req=[] routes=2"},
		{name: "runtime ipRanges first, then the legacy range, then ranges (as the reference)",
			conf:  `{"type":"host-local","subnet":"10.9.0.0/24","ranges":[[{"subnet":"10.0.0.0/24"}]]}`,
			extra: `,"runtimeConfig":{"ipRanges":[[{"subnet":"10.5.0.0/24"}]]}`,
			want:  "sets=[10.5.0.0/24:10.5.0.1-10.5.0.254 gw 10.5.0.1] [10.9.0.0/24:10.9.0.1-10.9.0.254 gw 10.9.0.1] [10.0.0.0/24:10.0.0.1-10.0.0.254 gw 10.0.0.1] req=[] routes=0"},
		{name: "legacy gateway without subnet is ignored (as the reference)",
			conf: `{"type":"host-local","gateway":"10.6.0.1","rangeStart":"10.6.0.9","ranges":[[{"subnet":"10.0.0.0/24"}]]}`,
			want: "sets=[10.0.0.0/24:10.0.0.1-10.0.0.254 gw 10.0.0.1] req=[] routes=0"},
		{name: "empty runtime ipRanges keep ranges",
			conf:  `{"type":"host-local","ranges":[[{"subnet":"10.0.0.0/24"}]]}`,
			extra: `,"runtimeConfig":{"ipRanges":[]}`,
			want:  "sets=[10.0.0.0/24:10.0.0.1-10.0.0.254 gw 10.0.0.1] req=[] routes=0"},
		{name: "requested from CNI_ARGS and runtimeConfig",
			conf:    `{"type":"host-local","ranges":[[{"subnet":"10.0.0.0/24"}],[{"subnet":"fd00::/64"}]]}`,
			extra:   `,"runtimeConfig":{"ips":["fd00::7"]}`,
			envArgs: "IgnoreUnknown=1;IP=10.0.0.6",
			want:    "sets=[10.0.0.0/24:10.0.0.1-10.0.0.254 gw 10.0.0.1] [fd00::/64:fd00::1-fd00::ffff:ffff:ffff:ffff gw fd00::1] req=[10.0.0.6 fd00::7] routes=0"},
		{name: "requested from args and runtimeConfig (CNI_ARGS IP ignored then)",
			conf:    `{"type":"host-local","ranges":[[{"subnet":"10.0.0.0/24"}],[{"subnet":"fd00::/64"}]]}`,
			extra:   `,"args":{"cni":{"ips":["10.0.0.7/24"]}},"runtimeConfig":{"ips":["fd00::7"]}`,
			envArgs: "IgnoreUnknown=1;IP=10.0.0.6",
			want:    "sets=[10.0.0.0/24:10.0.0.1-10.0.0.254 gw 10.0.0.1] [fd00::/64:fd00::1-fd00::ffff:ffff:ffff:ffff gw fd00::1] req=[10.0.0.7 fd00::7] routes=0"},
		{name: "two v4 sets at 0.3.0", cniVer: "0.3.0",
			conf: `{"type":"host-local","ranges":[[{"subnet":"10.0.0.0/24"}],[{"subnet":"10.1.0.0/24"}]]}`,
			want: "sets=[10.0.0.0/24:10.0.0.1-10.0.0.254 gw 10.0.0.1] [10.1.0.0/24:10.1.0.1-10.1.0.254 gw 10.1.0.1] req=[] routes=0"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ver := tt.cniVer
			if ver == "" {
				ver = "1.0.0"
			}
			stdin := fmt.Sprintf(`{"cniVersion":%q,"name":"net1","type":"bridge","ipam":%s%s}`, ver, tt.conf, tt.extra)
			c, err := LoadIPAM([]byte(stdin), tt.envArgs)
			if err != nil {
				t.Fatalf("LoadIPAM: %v", err)
			}
			if c.Network != "net1" || c.CNIVersion != ver {
				t.Fatalf("network %q version %q", c.Network, c.CNIVersion)
			}
			if got := summary(c); got != tt.want {
				t.Fatalf("got  %s\nwant %s", got, tt.want)
			}
		})
	}
}

func TestLoadIPAMKeys(t *testing.T) {
	stdin := `{"cniVersion":"1.0.0","name":"n","ipam":{"type":"host-local","subnet":"10.0.0.0/24","dataDir":"/tmp/x","resolvConf":"/etc/r.conf"}}`
	c, err := LoadIPAM([]byte(stdin), "")
	if err != nil {
		t.Fatal(err)
	}
	if c.DataDir != "/tmp/x" || c.ResolvConf != "/etc/r.conf" {
		t.Fatalf("dataDir %q resolvConf %q", c.DataDir, c.ResolvConf)
	}
}

func TestLoadIPAMErrors(t *testing.T) {
	tests := []struct {
		name     string
		stdin    string
		envArgs  string
		wantCode uint
		wantMsg  string // must appear in the message: the key or value at fault
	}{
		{name: "not json", stdin: `{"cniVersion":`, wantCode: types.ErrDecodingFailure, wantMsg: "network configuration"},
		{name: "no ipam", stdin: `{"cniVersion":"1.0.0","name":"n"}`, wantCode: types.ErrInvalidNetworkConfig, wantMsg: "ipam"},
		{name: "no name", stdin: `{"cniVersion":"1.0.0","ipam":{"subnet":"10.0.0.0/24"}}`, wantCode: types.ErrInvalidNetworkConfig, wantMsg: "name"},
		{name: "name with slash", stdin: `{"cniVersion":"1.0.0","name":"../etc","ipam":{"subnet":"10.0.0.0/24"}}`, wantCode: types.ErrInvalidNetworkConfig, wantMsg: `"../etc"`},
		{name: "name dot", stdin: `{"cniVersion":"1.0.0","name":".","ipam":{"subnet":"10.0.0.0/24"}}`, wantCode: types.ErrInvalidNetworkConfig, wantMsg: "name"},
		{name: "name index dir", stdin: `{"cniVersion":"1.0.0","name":".flatcni","ipam":{"subnet":"10.0.0.0/24"}}`, wantCode: types.ErrInvalidNetworkConfig, wantMsg: "name"},
		{name: "no ranges", stdin: `{"cniVersion":"1.0.0","name":"n","ipam":{"type":"host-local"}}`, wantCode: types.ErrInvalidNetworkConfig, wantMsg: "ipam.ranges"},
		{name: "runtime ipRanges overlap ranges", stdin: `{"cniVersion":"1.0.0","name":"n","ipam":{"ranges":[[{"subnet":"10.0.0.0/24"}]]},"runtimeConfig":{"ipRanges":[[{"subnet":"10.0.0.0/16"}]]}}`, wantCode: types.ErrInvalidNetworkConfig, wantMsg: "overlaps"},
		{name: "rangeStart without subnet", stdin: `{"cniVersion":"1.0.0","name":"n","ipam":{"rangeStart":"10.0.0.5"}}`, wantCode: types.ErrInvalidNetworkConfig, wantMsg: "ipam.subnet"},
		{name: "bad subnet", stdin: `{"cniVersion":"1.0.0","name":"n","ipam":{"subnet":"10.0.0.0/33"}}`, wantCode: types.ErrInvalidNetworkConfig, wantMsg: `"10.0.0.0/33"`},
		{name: "subnet wrong type", stdin: `{"cniVersion":"1.0.0","name":"n","ipam":{"subnet":5}}`, wantCode: types.ErrInvalidNetworkConfig, wantMsg: "subnet"},
		{name: "bad range subnet", stdin: `{"cniVersion":"1.0.0","name":"n","ipam":{"ranges":[[{"subnet":"nope"}]]}}`, wantCode: types.ErrInvalidNetworkConfig, wantMsg: "ipam.ranges[0][0].subnet"},
		{name: "missing range subnet", stdin: `{"cniVersion":"1.0.0","name":"n","ipam":{"ranges":[[{"subnet":"10.0.0.0/24"}],[{"gateway":"10.1.0.1"}]]}}`, wantCode: types.ErrInvalidNetworkConfig, wantMsg: "ipam.ranges[1][0].subnet"},
		{name: "bad rangeStart", stdin: `{"cniVersion":"1.0.0","name":"n","ipam":{"ranges":[[{"subnet":"10.0.0.0/24","rangeStart":"x"}]]}}`, wantCode: types.ErrInvalidNetworkConfig, wantMsg: "ipam.ranges[0][0].rangeStart"},
		{name: "bad gateway", stdin: `{"cniVersion":"1.0.0","name":"n","ipam":{"subnet":"10.0.0.0/24","gateway":"10.0.0.999"}}`, wantCode: types.ErrInvalidNetworkConfig, wantMsg: "gateway"},
		{name: "rangeEnd outside", stdin: `{"cniVersion":"1.0.0","name":"n","ipam":{"subnet":"10.0.0.0/24","rangeEnd":"10.0.1.5"}}`, wantCode: types.ErrInvalidNetworkConfig, wantMsg: "10.0.1.5"},
		{name: "empty range set", stdin: `{"cniVersion":"1.0.0","name":"n","ipam":{"ranges":[[]]}}`, wantCode: types.ErrInvalidNetworkConfig, wantMsg: "ipam.ranges[0]"},
		{name: "mixed families in set", stdin: `{"cniVersion":"1.0.0","name":"n","ipam":{"ranges":[[{"subnet":"10.0.0.0/24"},{"subnet":"fd00::/64"}]]}}`, wantCode: types.ErrInvalidNetworkConfig, wantMsg: "ipam.ranges[0]"},
		{name: "overlapping sets", stdin: `{"cniVersion":"1.0.0","name":"n","ipam":{"ranges":[[{"subnet":"10.0.0.0/24"}],[{"subnet":"10.0.0.0/16"}]]}}`, wantCode: types.ErrInvalidNetworkConfig, wantMsg: "ipam.ranges[1]"},
		{name: "legacy overlaps ranges", stdin: `{"cniVersion":"1.0.0","name":"n","ipam":{"subnet":"10.0.0.0/24","ranges":[[{"subnet":"10.0.0.0/24"}]]}}`, wantCode: types.ErrInvalidNetworkConfig, wantMsg: "overlaps"},
		{name: "too small", stdin: `{"cniVersion":"1.0.0","name":"n","ipam":{"subnet":"10.0.0.1/32"}}`, wantCode: types.ErrInvalidNetworkConfig, wantMsg: "10.0.0.1/32"},
		{name: "/127", stdin: `{"cniVersion":"1.0.0","name":"n","ipam":{"subnet":"fd00::/127"}}`, wantCode: types.ErrInvalidNetworkConfig, wantMsg: "fd00::/127"},
		{name: "host bits", stdin: `{"cniVersion":"1.0.0","name":"n","ipam":{"subnet":"10.0.0.1/24"}}`, wantCode: types.ErrInvalidNetworkConfig, wantMsg: "host bits"},
		{name: "bad runtime ipRanges", stdin: `{"cniVersion":"1.0.0","name":"n","ipam":{"subnet":"10.0.0.0/24"},"runtimeConfig":{"ipRanges":[[{"subnet":"bad"}]]}}`, wantCode: types.ErrInvalidNetworkConfig, wantMsg: "runtimeConfig.ipRanges[0][0].subnet"},
		{name: "route without dst", stdin: `{"cniVersion":"1.0.0","name":"n","ipam":{"subnet":"10.0.0.0/24","routes":[{"gw":"10.0.0.1"}]}}`, wantCode: types.ErrInvalidNetworkConfig, wantMsg: "ipam.routes[0].dst"},
		{name: "route bad dst", stdin: `{"cniVersion":"1.0.0","name":"n","ipam":{"subnet":"10.0.0.0/24","routes":[{"dst":"nope"}]}}`, wantCode: types.ErrInvalidNetworkConfig, wantMsg: "nope"},
		{name: "bad args ip", stdin: `{"cniVersion":"1.0.0","name":"n","ipam":{"subnet":"10.0.0.0/24"},"args":{"cni":{"ips":["10.0.0.x"]}}}`, wantCode: types.ErrInvalidNetworkConfig, wantMsg: "10.0.0.x"},
		{name: "bad runtime ip", stdin: `{"cniVersion":"1.0.0","name":"n","ipam":{"subnet":"10.0.0.0/24"},"runtimeConfig":{"ips":["zz"]}}`, wantCode: types.ErrInvalidNetworkConfig, wantMsg: "zz"},
		{name: "bad env ip", stdin: `{"cniVersion":"1.0.0","name":"n","ipam":{"subnet":"10.0.0.0/24"}}`, envArgs: "IP=1.2.3", wantCode: types.ErrInvalidEnvironmentVariables, wantMsg: "IP=1.2.3"},
		{name: "two v4 sets at 0.2.0", stdin: `{"cniVersion":"0.2.0","name":"n","ipam":{"ranges":[[{"subnet":"10.0.0.0/24"}],[{"subnet":"10.1.0.0/24"}]]}}`, wantCode: types.ErrInvalidNetworkConfig, wantMsg: "cniVersion"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := LoadIPAM([]byte(tt.stdin), tt.envArgs)
			var e *types.Error
			if !errors.As(err, &e) {
				t.Fatalf("LoadIPAM() = %+v, %v; want a CNI error", c, err)
			}
			if e.Code != tt.wantCode || !strings.Contains(e.Msg, tt.wantMsg) {
				t.Fatalf("error code %d msg %q; want code %d naming %q", e.Code, e.Msg, tt.wantCode, tt.wantMsg)
			}
		})
	}
}

// CONVENTIONS.md, CNI_ARGS: "If a runtime passes an equivalent key via args
// (eg the ips args Area and the CNI_ARGS IP Field) and the plugin
// understands args, the plugin must ignore the CNI_ARGS Field." host-local
// understands args.cni.ips, so CNI_ARGS IP= is not requested beside it, and
// a CNI_ARGS IP= that does not parse does not fail the call.
func TestLoadIPAMArgsIPsOverrideEnvIP(t *testing.T) {
	ipamConf := `{"type":"host-local","ranges":[[{"subnet":"10.0.0.0/24"}],[{"subnet":"fd00::/64"}]]}`
	for _, tt := range []struct {
		name, extra, envArgs, want string
	}{
		{"args.cni.ips wins over CNI_ARGS IP", `,"args":{"cni":{"ips":["10.0.0.7/24"]}}`, "IgnoreUnknown=1;IP=10.0.0.6", "[10.0.0.7]"},
		{"CNI_ARGS IP of the other family ignored too", `,"args":{"cni":{"ips":["10.0.0.7"]}}`, "IP=fd00::6", "[10.0.0.7]"},
		{"bad CNI_ARGS IP ignored", `,"args":{"cni":{"ips":["10.0.0.7"]}}`, "IP=nonsense", "[10.0.0.7]"},
		{"runtimeConfig.ips kept", `,"args":{"cni":{"ips":["10.0.0.7"]}},"runtimeConfig":{"ips":["fd00::7"]}`, "IP=10.0.0.6", "[10.0.0.7 fd00::7]"},
		{"CNI_ARGS IP used without args.cni.ips", `,"args":{"cni":{}}`, "IP=10.0.0.6", "[10.0.0.6]"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			stdin := fmt.Sprintf(`{"cniVersion":"1.0.0","name":"net1","type":"bridge","ipam":%s%s}`, ipamConf, tt.extra)
			c, err := LoadIPAM([]byte(stdin), tt.envArgs)
			if err != nil {
				t.Fatalf("LoadIPAM: %v", err)
			}
			if got := fmt.Sprint(c.Requested); got != tt.want {
				t.Fatalf("requested %s, want %s", got, tt.want)
			}
		})
	}
}
