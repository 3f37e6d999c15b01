package firewall

import (
	"errors"
	"net/netip"
	"strconv"
	"strings"
	"testing"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
)

var (
	ownerA = Attachment{ContainerID: "aaa", IfName: "eth0"}
	ownerB = Attachment{ContainerID: "bbb", IfName: "eth0"}
	pnet   = PortNetwork{Name: "net1", Bridge: "br1", Subnets: pfx("10.1.0.0/24", "fd01::/64")}
)

func mp(proto, hostIP string, hostPort uint16, cip string, cport uint16) Mapping {
	m := Mapping{Protocol: proto, HostPort: hostPort, ContainerIP: netip.MustParseAddr(cip), ContainerPort: cport}
	if hostIP != "" {
		m.HostIP = netip.MustParseAddr(hostIP)
	}
	return m
}

func TestFindConflict(t *testing.T) {
	held := []Published{{Network: "net1", Owner: ownerA, Mapping: mp("tcp", "", 8080, "10.1.0.2", 80)}}
	heldIP := []Published{{Network: "net2", Owner: ownerA, Mapping: mp("udp", "192.0.2.1", 53, "10.2.0.2", 53)}}
	for _, c := range []struct {
		name     string
		existing []Published
		network  string
		owner    Attachment
		m        Mapping
		conflict bool
	}{
		{"same port, wildcard held", held, "net2", ownerB, mp("tcp", "", 8080, "10.2.0.3", 80), true},
		{"host address against a held wildcard", held, "net1", ownerB, mp("tcp", "192.0.2.1", 8080, "10.1.0.3", 80), true},
		{"other protocol", held, "net1", ownerB, mp("udp", "", 8080, "10.1.0.3", 80), false},
		{"other family", held, "net1", ownerB, mp("tcp", "", 8080, "fd01::3", 80), false},
		{"other port", held, "net1", ownerB, mp("tcp", "", 8081, "10.1.0.3", 80), false},
		{"the holder itself", held, "net1", ownerA, mp("tcp", "", 8080, "10.1.0.2", 81), false},
		{"the holder's ID on another network", held, "net2", ownerA, mp("tcp", "", 8080, "10.2.0.2", 81), true},
		{"wildcard against a held host address", heldIP, "net1", ownerB, mp("udp", "", 53, "10.1.0.3", 53), true},
		{"other host address", heldIP, "net1", ownerB, mp("udp", "192.0.2.9", 53, "10.1.0.3", 53), false},
	} {
		err := FindConflict(c.existing, c.network, c.owner, []Mapping{c.m})
		var ce *PortConflictError
		if got := errors.As(err, &ce); got != c.conflict {
			t.Errorf("%s: FindConflict = %v, want conflict %t", c.name, err, c.conflict)
			continue
		}
		if c.conflict {
			for _, want := range []string{":" + strconv.Itoa(int(c.m.HostPort)) + "/" + c.m.Protocol, `"aaa"`, c.existing[0].Network} {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("%s: error %q does not name %q", c.name, err, want)
				}
			}
		}
	}
}

func TestCheckPublishValidation(t *testing.T) {
	for _, c := range []struct {
		name  string
		n     PortNetwork
		owner Attachment
		maps  []Mapping
		want  string
	}{
		{"protocol", pnet, ownerA, []Mapping{mp("icmp", "", 1, "10.1.0.2", 1)}, "unknown protocol"},
		{"port 0", pnet, ownerA, []Mapping{mp("tcp", "", 0, "10.1.0.2", 1)}, "1-65535"},
		{"families", pnet, ownerA, []Mapping{mp("tcp", "fd00::1", 80, "10.1.0.2", 80)}, "differ in family"},
		{"twice", pnet, ownerA, []Mapping{mp("tcp", "", 80, "10.1.0.2", 80), mp("tcp", "192.0.2.1", 80, "10.1.0.2", 81)}, "mapped twice"},
		{"owner", pnet, Attachment{ContainerID: "a/b", IfName: "eth0"}, nil, "invalid character"},
		{"owner newline", pnet, Attachment{ContainerID: "a\nb", IfName: "eth0"}, nil, "invalid character"},
		{"ifname tab", pnet, Attachment{ContainerID: "ab", IfName: "eth\t0"}, nil, "invalid character"},
		{"long owner", pnet, Attachment{ContainerID: strings.Repeat("x", 250), IfName: "eth0"}, nil, "longer than"},
		{"bridge", PortNetwork{Name: "n"}, ownerA, nil, "invalid bridge name"},
		{"network", PortNetwork{Name: "-n", Bridge: "br"}, ownerA, nil, "invalid network name"},
	} {
		if _, err := checkPublish(c.n, c.owner, c.maps, nil); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: checkPublish = %v, want an error with %q", c.name, err, c.want)
		}
	}
}

func TestNFTElementRoundTrip(t *testing.T) {
	for _, m := range []Mapping{
		mp("tcp", "", 8080, "10.1.0.2", 80),
		mp("udp", "192.0.2.1", 53, "10.1.0.2", 5353),
		mp("sctp", "", 9, "fd01::2", 9),
		mp("tcp", "2001:db8::1", 443, "fd01::2", 8443),
	} {
		pm := mapOf(m)
		e := element(m, ownerA)
		s := pm.set(nftPortsTable("n"))
		if int(s.KeyType.Bytes) != len(e.Key) || int(s.DataType.Bytes) != len(e.Val) {
			t.Errorf("%v: element key/value of %d/%d bytes, map %s wants %d/%d", m, len(e.Key), len(e.Val), pm.name, s.KeyType.Bytes, s.DataType.Bytes)
		}
		got, owner, ok := parseElement(pm, e)
		if !ok || got != m || owner != ownerA {
			t.Errorf("%v: parsed back as %v %v %t", m, got, owner, ok)
		}
	}
}

// TestNFTPublishRegisters checks the registers of the DNAT rules: the map's
// data (address, then port in its own 32-bit register) is what NAT reads.
func TestNFTPublishRegisters(t *testing.T) {
	sets := map[string]*nftables.Set{}
	for _, pm := range portMaps() {
		sets[pm.name] = pm.set(nftPortsTable("n"))
	}
	rules := nftPublishRules(sets)
	if len(rules) != 4 {
		t.Fatalf("%d publish rules, want 4", len(rules))
	}
	want := map[string]uint32{"host4": 9, "any4": 9, "host6": 12, "any6": 12}
	for i, pm := range portMaps() {
		var nat *expr.NAT
		var lookup *expr.Lookup
		var dport *expr.Payload
		for _, e := range rules[i] {
			switch e := e.(type) {
			case *expr.NAT:
				nat = e
			case *expr.Lookup:
				lookup = e
			case *expr.Payload:
				if e.Base == expr.PayloadBaseTransportHeader {
					dport = e
				}
			}
		}
		if nat == nil || lookup == nil || dport == nil {
			t.Fatalf("%s: rule lacks nat, lookup or port load: %v", pm.name, rules[i])
		}
		if lookup.SetName != pm.name || nat.RegAddrMin != reg1 || nat.RegProtoMin != want[pm.name] {
			t.Errorf("%s: lookup %s, nat addr reg %d proto reg %d; want %s, 1, %d", pm.name, lookup.SetName, nat.RegAddrMin, nat.RegProtoMin, pm.name, want[pm.name])
		}
		// The key is contiguous: the port lands right after the address
		// (host maps) and the protocol.
		keyRegs := uint32(2)
		if pm.host {
			keyRegs += pm.addrType().Bytes / 4
		}
		if dport.DestRegister != reg32_0+keyRegs-1 {
			t.Errorf("%s: port loaded into register %d, want %d", pm.name, dport.DestRegister, reg32_0+keyRegs-1)
		}
	}
}

func TestIPTMappingRuleRoundTrip(t *testing.T) {
	for _, m := range []Mapping{
		mp("tcp", "", 8080, "10.1.0.2", 80),
		mp("udp", "192.0.2.1", 53, "10.1.0.2", 5353),
		mp("tcp", "2001:db8::1", 443, "fd01::2", 8443),
	} {
		spec := iptMappingRule("net1", ownerB, m)
		// As iptables -S prints it: the comment quoted.
		line := "-A " + iptPortsChain("net1")
		for _, w := range spec {
			if strings.Contains(w, " ") {
				w = `"` + w + `"`
			}
			line += " " + w
		}
		_, parsed, _ := splitRuleLine(line)
		if specValue(parsed, "--to-destination") != netip.AddrPortFrom(m.ContainerIP, m.ContainerPort).String() {
			t.Errorf("%v: rule %v", m, parsed)
		}
		net, owner, got, ok := parseMappingComment(specValue(parsed, "--comment"))
		if !ok || net != "net1" || owner != ownerB || got != m {
			t.Errorf("%v: parsed back as %q %v %v %t", m, net, owner, got, ok)
		}
	}
}

func TestIPTPortsFixed(t *testing.T) {
	fp := pnet.fingerprint()
	v4 := iptPortsFixed(pnet, ipv4, fp)
	v6 := iptPortsFixed(pnet, ipv6, fp)
	last := v4[len(v4)-1]
	if last.table != natTable || last.chain != preroutingChain || specValue(last.spec, "-j") != iptPortsChain("net1") {
		t.Errorf("the last fixed rule is %v, want the PREROUTING jump", last)
	}
	joined := func(rs []iptFixedRule) string {
		var b strings.Builder
		for _, r := range rs {
			b.WriteString(r.String() + "\n")
		}
		return b.String()
	}
	for _, want := range []string{"-s 10.1.0.0/24 -o br1", "-s 127.0.0.0/8 -o br1", "raw PREROUTING [! -i lo -d 127.0.0.0/8"} {
		if !strings.Contains(joined(v4), want) {
			t.Errorf("IPv4 fixed rules lack %q:\n%s", want, joined(v4))
		}
	}
	if s := joined(v6); strings.Contains(s, "127.0.0.0/8") || !strings.Contains(s, "-s fd01::/64 -o br1") {
		t.Errorf("IPv6 fixed rules:\n%s", s)
	}
	if want := "flatcni-ports net=net1 cfg=" + fp + " br=br1"; !strings.Contains(joined(v4), want) {
		t.Errorf("fixed rules lack the comment %q", want)
	}
}

// TestParseFixed: a fixed rule's comment gives back its fingerprint and
// bridge; one written before the bridge was recorded, its fingerprint and "".
func TestParseFixed(t *testing.T) {
	n := PortNetwork{Name: "n", Bridge: "cni0"}
	for c, want := range map[string][2]string{
		portsFixedComment(n, "abc"):   {"abc", "cni0"},
		"flatcni-ports net=n cfg=abc": {"abc", ""},
	} {
		_, rest, ok := parsePortsComment(c)
		fp, br, ok2 := parseFixed(rest)
		if !ok || !ok2 || fp != want[0] || br != want[1] {
			t.Errorf("%q: fingerprint %q, bridge %q (%t, %t), want %q", c, fp, br, ok, ok2, want)
		}
	}
	if _, _, ok := parseFixed("own=c1/eth0 map=tcp,*,80,10.0.0.2,80"); ok {
		t.Errorf("a mapping's comment taken for a fixed rule's")
	}
}

func TestPortsCommentsAreNotMasquerade(t *testing.T) {
	for _, c := range []string{portsFixedComment(PortNetwork{Name: "n", Bridge: "b"}, "abc"), portsMappingComment("n", ownerA, mp("udp", "2001:db8::1", 53, "fd01::2", 5353))} {
		if _, ok := parseComment(c); ok {
			t.Errorf("masquerade code takes %q for one of its comments", c)
		}
		if net, _, ok := parsePortsComment(c); !ok || net != "n" {
			t.Errorf("parsePortsComment(%q) = %q, %t", c, net, ok)
		}
	}
	if strings.HasPrefix(iptPortsChain("n"), iptChainPrefix) || strings.HasPrefix(nftPortsTablePrefix, nftTablePrefix) {
		t.Errorf("port chain or table names start like the masquerade ones")
	}
}

func TestFakePorts(t *testing.T) {
	f := NewFakePorts()
	a := []Mapping{mp("tcp", "", 8080, "10.1.0.2", 80), mp("tcp", "", 8080, "fd01::2", 80)}
	if err := f.Publish(pnet, ownerA, a); err != nil {
		t.Fatal(err)
	}
	net2 := PortNetwork{Name: "net2", Bridge: "br2"}
	err := f.Publish(net2, ownerB, []Mapping{mp("tcp", "", 8080, "10.2.0.2", 80)})
	var ce *PortConflictError
	if !errors.As(err, &ce) || ce.Holder.Owner != ownerA {
		t.Fatalf("conflicting Publish = %v", err)
	}
	if err := f.Publish(net2, ownerB, []Mapping{mp("udp", "", 8080, "10.2.0.2", 80)}); err != nil {
		t.Fatal(err)
	}
	// Publishing again replaces the owner's mappings.
	if err := f.Publish(pnet, ownerA, a[:1]); err != nil {
		t.Fatal(err)
	}
	if l, _ := f.List(); len(l) != 2 {
		t.Errorf("after replacing: %v", l)
	}
	if err := f.Retain("net1", func(Attachment) bool { return false }); err != nil {
		t.Fatal(err)
	}
	if _, ok := f.Network("net1"); ok {
		t.Errorf("net1 keeps a rule set without mappings")
	}
	if err := f.Unpublish("net2", ownerB); err != nil {
		t.Fatal(err)
	}
	if l, _ := f.List(); len(l) != 0 {
		t.Errorf("after Retain and Unpublish: %v", l)
	}
	if _, ok := f.Network("net2"); ok {
		t.Errorf("net2 keeps a rule set without mappings")
	}
}

func TestParseMappingCommentRejects(t *testing.T) {
	good := portsMappingComment("n", ownerA, mp("tcp", "", 80, "10.1.0.2", 8080))
	if _, _, _, ok := parseMappingComment(good); !ok {
		t.Fatalf("%q not parsed", good)
	}
	for _, c := range []string{
		"flatcni net=n own=aaa/eth0 map=tcp,*,80,10.1.0.2,8080", // the masquerade prefix
		"flatcni-ports net=n cfg=abc",
		"flatcni-ports net=n own=aaa map=tcp,*,80,10.1.0.2,8080",
		"flatcni-ports net=n own=aaa/eth0 map=tcp,*,80,10.1.0.2",
		"flatcni-ports net=n own=aaa/eth0 map=icmp,*,80,10.1.0.2,8080",
		"flatcni-ports net=n own=aaa/eth0 map=tcp,*,0,10.1.0.2,8080",
		"flatcni-ports net=n own=aaa/eth0 map=tcp,fd00::1,80,10.1.0.2,8080",
		"flatcni-ports net=n own=aaa/eth0 map=tcp,*,80,nope,8080",
	} {
		if _, _, _, ok := parseMappingComment(c); ok {
			t.Errorf("parseMappingComment(%q) accepted", c)
		}
	}
}

func TestRestoreQuote(t *testing.T) {
	for in, want := range map[string]string{
		"DNAT":                        "DNAT",
		"10.1.0.2:80":                 "10.1.0.2:80",
		"flatcni-ports net=n own=c/e": `"flatcni-ports net=n own=c/e"`,
		`a"b\c`:                       `"a\"b\\c"`,
		"":                            `""`,
	} {
		if got := restoreQuote(in); got != want {
			t.Errorf("restoreQuote(%q) = %s, want %s", in, got, want)
		}
	}
}
