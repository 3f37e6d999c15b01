package firewall

import (
	"errors"
	"net/netip"
	"slices"
	"strings"
	"testing"
)

func pfx(ss ...string) []netip.Prefix {
	var out []netip.Prefix
	for _, s := range ss {
		out = append(out, netip.MustParsePrefix(s))
	}
	return out
}

func TestIPTChainName(t *testing.T) {
	names := []string{"a", "mynet", strings.Repeat("x", maxNameLen)}
	seen := map[string]bool{}
	for _, n := range names {
		c := iptChainName(n)
		if len(c) != iptChainMaxLen || !strings.HasPrefix(c, iptChainPrefix) {
			t.Errorf("iptChainName(%q) = %q: want %d chars with prefix %s", n, c, iptChainMaxLen, iptChainPrefix)
		}
		if c != iptChainName(n) {
			t.Errorf("iptChainName(%q) not deterministic", n)
		}
		if seen[c] {
			t.Errorf("iptChainName(%q) = %q collides", n, c)
		}
		seen[c] = true
	}
}

func TestValidateName(t *testing.T) {
	tests := []struct {
		name string
		ok   bool
	}{
		{"mynet", true},
		{"my-net_1.2", true},
		{"0net", true},
		{"", false},
		{"-net", false},
		{"my net", false},
		{`my"net`, false},
		{strings.Repeat("a", maxNameLen+1), false},
	}
	for _, tc := range tests {
		if err := validateName(tc.name); (err == nil) != tc.ok {
			t.Errorf("validateName(%q) = %v, want ok=%v", tc.name, err, tc.ok)
		}
	}
}

func TestNormalize(t *testing.T) {
	n, err := Network{
		Name:          "n",
		Subnets:       pfx("10.1.0.7/24", "fd00::5/64", "10.1.0.0/24", "::ffff:10.2.0.0/112"),
		NonMasquerade: pfx("192.168.1.1/16"),
	}.normalize()
	if err != nil {
		t.Fatal(err)
	}
	if want := pfx("10.1.0.0/24", "10.2.0.0/16", "fd00::/64"); !slices.Equal(n.Subnets, want) {
		t.Errorf("subnets = %v, want %v", n.Subnets, want)
	}
	if want := pfx("192.168.0.0/16"); !slices.Equal(n.NonMasquerade, want) {
		t.Errorf("nonMasquerade = %v, want %v", n.NonMasquerade, want)
	}
	if _, err := (Network{Name: "n", Forward: true}).normalize(); err == nil {
		t.Error("Forward without a bridge accepted")
	}
	if _, err := (Network{Name: "bad name"}).normalize(); err == nil || !strings.Contains(err.Error(), "bad name") {
		t.Errorf("bad name: err = %v, want it to name the network", err)
	}
}

func TestFingerprint(t *testing.T) {
	base := Network{Name: "n", Bridge: "br0", Subnets: pfx("10.1.0.0/24"), Masquerade: true}
	variants := []Network{
		{Name: "n2", Bridge: "br0", Subnets: pfx("10.1.0.0/24"), Masquerade: true},
		{Name: "n", Bridge: "br1", Subnets: pfx("10.1.0.0/24"), Masquerade: true},
		{Name: "n", Bridge: "br0", Subnets: pfx("10.1.0.0/25"), Masquerade: true},
		{Name: "n", Bridge: "br0", Subnets: pfx("10.1.0.0/24"), Masquerade: true, Forward: true},
		{Name: "n", Bridge: "br0", Subnets: pfx("10.1.0.0/24"), Masquerade: true, NonMasquerade: pfx("10.9.0.0/16")},
	}
	for _, v := range variants {
		if v.fingerprint() == base.fingerprint() {
			t.Errorf("fingerprint of %+v equals the base one", v)
		}
	}
	if base.fingerprint() != base.fingerprint() {
		t.Error("fingerprint not deterministic")
	}
}

func TestIPTRules(t *testing.T) {
	n, err := Network{
		Name: "n", Bridge: "br0", Masquerade: true, Forward: true,
		Subnets: pfx("10.1.0.0/24", "fd00::/64"), NonMasquerade: pfx("10.9.0.0/16"),
	}.normalize()
	if err != nil {
		t.Fatal(err)
	}
	c := "--comment " + ruleComment("n")
	tests := []struct {
		f    family
		want []string
	}{
		{ipv4, []string{
			"-i br0 -m comment " + c + " -j ACCEPT",
			"-o br0 -m conntrack --ctstate RELATED,ESTABLISHED -m comment " + c + " -j ACCEPT",
			"-d 10.1.0.0/24 -m comment " + c + " -j RETURN",
			"-d 224.0.0.0/4 -m comment " + c + " -j RETURN",
			"-d 10.9.0.0/16 -m comment " + c + " -j RETURN",
			"-s 10.1.0.0/24 -m comment " + c + " -j MASQUERADE",
		}},
		{ipv6, []string{
			"-i br0 -m comment " + c + " -j ACCEPT",
			"-o br0 -m conntrack --ctstate RELATED,ESTABLISHED -m comment " + c + " -j ACCEPT",
			"-d fd00::/64 -m comment " + c + " -j RETURN",
			"-d ff00::/8 -m comment " + c + " -j RETURN",
			"-s fd00::/64 -m comment " + c + " -j MASQUERADE",
		}},
	}
	for _, tc := range tests {
		var got []string
		for _, p := range iptParts(n, tc.f) {
			for _, r := range p.rules {
				got = append(got, strings.Join(r, " "))
			}
		}
		if !slices.Equal(got, tc.want) {
			t.Errorf("%s rules:\n got %q\nwant %q", tc.f, got, tc.want)
		}
	}
	if got := iptParts(Network{Name: "n", Masquerade: true}, ipv4); len(got) != 1 || got[0].table != natTable {
		t.Errorf("masquerade-only parts = %+v, want just nat", got)
	}
}

func TestSplitRuleLine(t *testing.T) {
	tests := []struct {
		line  string
		chain string
		spec  []string
		ok    bool
	}{
		{`-A POSTROUTING -s 10.0.0.5/32 -m comment --comment "name: \"n1\" id: \"c1\"" -j CNI-abc`, "POSTROUTING",
			[]string{"-s", "10.0.0.5/32", "-m", "comment", "--comment", `name: "n1" id: "c1"`, "-j", "CNI-abc"}, true},
		{`-A FORWARD -m comment --comment "flatcni net=a cfg=1" -j FLATCNI-x`, "FORWARD",
			[]string{"-m", "comment", "--comment", "flatcni net=a cfg=1", "-j", "FLATCNI-x"}, true},
		{`-A X -m comment --comment "back\\slash" -j ACCEPT`, "X", []string{"-m", "comment", "--comment", `back\slash`, "-j", "ACCEPT"}, true},
		{`-P FORWARD DROP`, "", nil, false},
		{`-N FLATCNI-x`, "", nil, false},
	}
	for _, tc := range tests {
		chain, spec, ok := splitRuleLine(tc.line)
		if chain != tc.chain || ok != tc.ok || !slices.Equal(spec, tc.spec) {
			t.Errorf("splitRuleLine(%q) = %q %q %v, want %q %q %v", tc.line, chain, spec, ok, tc.chain, tc.spec, tc.ok)
		}
	}
}

func TestParseComment(t *testing.T) {
	tests := []struct {
		in   string
		name string
		ok   bool
	}{
		{ruleComment("mynet"), "mynet", true},
		{jumpComment("my.net-1", "abc"), "my.net-1", true},
		{"flatcni net=", "", false},
		{`name: "mynet" id: "x"`, "", false},
	}
	for _, tc := range tests {
		if name, ok := parseComment(tc.in); name != tc.name || ok != tc.ok {
			t.Errorf("parseComment(%q) = %q %v, want %q %v", tc.in, name, ok, tc.name, tc.ok)
		}
	}
}

func TestLegacyIPT(t *testing.T) {
	chains := []struct {
		chain string
		want  bool
	}{
		{"CNI-0123456789abcdef01234567", true},
		{"CNI-DN-0123456789abcdef0123", false},
		{"CNI-0123456789ABCDEF01234567", false},
		{"CNI-HOSTPORT-MASQ", false},
		{"FLATCNI-0123456789abcdef0123", false},
	}
	for _, tc := range chains {
		if got := isLegacyMasqChain(tc.chain); got != tc.want {
			t.Errorf("isLegacyMasqChain(%q) = %v", tc.chain, got)
		}
	}
	comments := []struct {
		in      string
		net, id string
		ok      bool
	}{
		{`name: "mynet" id: "abc123"`, "mynet", "abc123", true},
		{`name: "a\"b" id: "c"`, `a"b`, "c", true},
		{`name: "mynet" id: "abc" extra`, "", "", false},
		{`CNI portfwd requiring masquerade`, "", "", false},
	}
	for _, tc := range comments {
		net, id, ok := parseLegacyComment(tc.in)
		if net != tc.net || id != tc.id || ok != tc.ok {
			t.Errorf("parseLegacyComment(%q) = %q %q %v", tc.in, net, id, ok)
		}
	}
}

func TestLegacyNFTKeep(t *testing.T) {
	h := legacyNFTNetworkHash("mynet")
	long := strings.Repeat("f", 64)
	full := h + "-0123456789abcdef, net: mynet, if: eth0, id: " + long + long
	truncated := full[:legacyNFTCommentMax]
	tests := []struct {
		name    string
		comment string
		keep    map[string]bool
		want    bool
	}{
		{"gone", h + "-0123456789abcdef, net: mynet, if: eth0, id: c1", nil, false},
		{"kept", h + "-0123456789abcdef, net: mynet, if: eth0, id: c1", map[string]bool{"c1": true}, true},
		{"other network", legacyNFTNetworkHash("other") + "-0123456789abcdef, net: other, if: eth0, id: c1", nil, true},
		{"no comment", "", nil, true},
		{"truncated kept", truncated, map[string]bool{long + long: true}, true},
		{"truncated gone", truncated, map[string]bool{"c9": true}, false},
	}
	for _, tc := range tests {
		if got := legacyNFTKeep(tc.comment, "mynet", staleUnlessKept(tc.keep)); got != tc.want {
			t.Errorf("%s: legacyNFTKeep = %v, want %v", tc.name, got, tc.want)
		}
	}
	// One container's rules (DEL): its own, also truncated; never another's,
	// nor one whose ID was cut off entirely.
	cutOff := (h + "-0123456789abcdef, net: mynet, if: " + strings.Repeat("e", 200))[:legacyNFTCommentMax]
	only := []struct {
		name, comment, id string
		want              bool
	}{
		{"its own", h + "-0123456789abcdef, net: mynet, if: eth0, id: c1", "c1", false},
		{"another's", h + "-0123456789abcdef, net: mynet, if: eth0, id: c2", "c1", true},
		{"its own truncated", truncated, long + long, false},
		{"another's truncated", truncated, "c1", true},
		{"ID cut off", cutOff, "c1", true},
		{"other network", legacyNFTNetworkHash("other") + "-0123456789abcdef, net: other, if: eth0, id: c1", "c1", true},
	}
	for _, tc := range only {
		if got := legacyNFTKeep(tc.comment, "mynet", staleOnly(tc.id)); got != tc.want {
			t.Errorf("only %s: legacyNFTKeep = %v, want %v", tc.name, got, tc.want)
		}
	}
}

func TestUserDataComment(t *testing.T) {
	for _, c := range []string{"", "x", jumpComment("mynet", "0123456789ab")} {
		if got := userDataComment(commentUserData(c)); got != c {
			t.Errorf("round trip of %q gave %q", c, got)
		}
	}
	if got := userDataComment([]byte{0, 200, 'x'}); got != "" {
		t.Errorf("malformed user data gave %q", got)
	}
}

func TestPrefixMask(t *testing.T) {
	tests := []struct {
		bits, size int
		want       []byte
	}{
		{24, 4, []byte{255, 255, 255, 0}},
		{4, 4, []byte{0xf0, 0, 0, 0}},
		{0, 4, []byte{0, 0, 0, 0}},
		{65, 16, []byte{255, 255, 255, 255, 255, 255, 255, 255, 0x80, 0, 0, 0, 0, 0, 0, 0}},
	}
	for _, tc := range tests {
		if got := prefixMask(tc.bits, tc.size); !slices.Equal(got, tc.want) {
			t.Errorf("prefixMask(%d, %d) = %v, want %v", tc.bits, tc.size, got, tc.want)
		}
	}
}

func TestNewBackendName(t *testing.T) {
	tests := []struct {
		name    string
		want    string
		wantErr bool
	}{
		{"iptables", "iptables", false},
		{"nftables", "nftables", false},
		{"pf", "", true},
	}
	for _, tc := range tests {
		b, err := New(tc.name)
		if tc.wantErr {
			if err == nil || !strings.Contains(err.Error(), "ipMasqBackend") || !strings.Contains(err.Error(), tc.name) {
				t.Errorf("New(%q) error = %v, want one naming ipMasqBackend and the value", tc.name, err)
			}
			continue
		}
		if err != nil || b.Name() != tc.want {
			t.Errorf("New(%q) = %v, %v", tc.name, b, err)
		}
	}
}

func TestFake(t *testing.T) {
	f := NewFake()
	n := Network{Name: "a", Bridge: "br0", Subnets: pfx("10.1.0.9/24"), Masquerade: true}
	if err := f.Ensure(n); err != nil {
		t.Fatal(err)
	}
	if err := f.Ensure(Network{Name: "b", Bridge: "br1", Subnets: pfx("10.2.0.0/24"), Forward: true}); err != nil {
		t.Fatal(err)
	}
	if got, _ := f.Networks(); !slices.Equal(got, []string{"a", "b"}) {
		t.Errorf("Networks = %v", got)
	}
	if got, ok := f.Network("a"); !ok || !slices.Equal(got.Subnets, pfx("10.1.0.0/24")) {
		t.Errorf("Network(a) = %+v %v, want normalized subnets", got, ok)
	}
	if err := f.Ensure(Network{Name: "bad name"}); err == nil {
		t.Error("invalid network accepted")
	}
	// A network needing no rules is removed.
	if err := f.Ensure(Network{Name: "b", Bridge: "br1", Subnets: pfx("10.2.0.0/24")}); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if err := f.Remove("a"); err != nil {
			t.Fatal(err)
		}
	}
	if got, _ := f.Networks(); len(got) != 0 {
		t.Errorf("Networks after removals = %v", got)
	}
	f.AddLegacy("a", "c1")
	f.AddLegacy("a", "c2")
	if err := f.RemoveLegacy("a", map[string]bool{"c2": true}); err != nil {
		t.Fatal(err)
	}
	if got := f.Legacy("a"); !slices.Equal(got, []string{"c2"}) {
		t.Errorf("Legacy = %v", got)
	}
	boom := errors.New("boom")
	f.SetError(boom)
	if err := f.Ensure(n); !errors.Is(err, boom) {
		t.Errorf("Ensure with injected error = %v", err)
	}
	if calls := f.Calls(); len(calls) == 0 || calls[0] != "Ensure a" {
		t.Errorf("Calls = %v", calls)
	}
}
