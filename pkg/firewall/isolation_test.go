package firewall

import (
	"encoding/hex"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"

	"crypto/sha256"
)

func TestIsolationNormalize(t *testing.T) {
	base := Network{Name: "n", Bridge: "br0", Subnets: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/24")}}
	tests := []struct {
		name    string
		mod     func(*Network)
		wantErr string
	}{
		{name: "default is none", mod: func(n *Network) {}},
		{name: "isolated", mod: func(n *Network) { n.Isolation = IsolationIsolated }},
		{name: "unknown", mod: func(n *Network) { n.Isolation = "open" }, wantErr: `network "n": unknown isolation "open"`},
		{name: "internal masquerade", mod: func(n *Network) { n.Internal, n.Masquerade = true, true }, wantErr: "internal network cannot be masqueraded"},
		{name: "no bridge", mod: func(n *Network) { n.NoICC, n.Bridge = true, "" }, wantErr: "invalid bridge name"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			n := base
			tc.mod(&n)
			f := NewFake()
			err := f.Ensure(n)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
		})
	}
	// Isolation alone makes a rule set, also without masquerade or subnets.
	f := NewFake()
	if err := f.Ensure(Network{Name: "l2", Bridge: "br1", NoICC: true}); err != nil {
		t.Fatal(err)
	}
	got, ok := f.Network("l2")
	if !ok || got.Isolation != IsolationNone || !got.NoICC {
		t.Errorf("fake holds %+v, %v", got, ok)
	}
}

// A network without isolation keeps the fingerprint it had before isolation
// existed, so an upgrade rewrites no rules; any isolation key changes it.
func TestIsolationFingerprint(t *testing.T) {
	n, err := Network{Name: "n", Bridge: "br0", Subnets: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/24")}, Masquerade: true, Forward: true}.normalize()
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256([]byte("v1|n|br0|true|true|10.0.0.0/24,|"))
	if want := hex.EncodeToString(sum[:])[:12]; n.fingerprint() != want {
		t.Errorf("fingerprint %s, want the pre-isolation %s", n.fingerprint(), want)
	}
	seen := map[string]bool{n.fingerprint(): true}
	for _, mod := range []func(*Network){
		func(n *Network) { n.Isolation = IsolationIsolated },
		func(n *Network) { n.Isolation = IsolationStrict },
		func(n *Network) { n.Isolation = IsolationStrict; n.strictPeers = []string{"docker0"} },
		func(n *Network) { n.Isolation = IsolationStrict; n.strictExempt = []string{"br-up"} },
		func(n *Network) { n.NoICC = true },
		func(n *Network) { n.Internal, n.Masquerade = true, false },
	} {
		m := n
		mod(&m)
		if fp := m.fingerprint(); seen[fp] {
			t.Errorf("%+v: fingerprint %s not new", m, fp)
		} else {
			seen[fp] = true
		}
	}
}

func TestIPTIsolationRules(t *testing.T) {
	c := `-m comment --comment flatcni net=n`
	n := Network{Name: "n", Bridge: "br0", Internal: true, NoICC: true, Isolation: IsolationIsolated}
	want := []string{
		"-i br0 ! -o br0 " + c + " -j DROP",
		"! -i br0 -o br0 " + c + " -j DROP",
		"-m conntrack --ctstate DNAT " + c + " -j RETURN",
		"-i br0 -o br0 " + c + " -j DROP",
		"-i br0 ! -o br0 " + c + " -j FLATCNI-ISOLATED",
	}
	if got := joinRules(iptIsolationRules(n)); !slices.Equal(got, want) {
		t.Errorf("rules:\n got %q\nwant %q", got, want)
	}
	s := Network{Name: "n", Bridge: "br0", Isolation: IsolationStrict, strictPeers: []string{"docker0", "cni0"}}
	want = []string{
		"-m conntrack --ctstate DNAT " + c + " -j RETURN",
		"-i br0 -o docker0 " + c + " -j DROP",
		"-i docker0 -o br0 " + c + " -j DROP",
		"-i br0 -o cni0 " + c + " -j DROP",
		"-i cni0 -o br0 " + c + " -j DROP",
	}
	if got := joinRules(iptIsolationRules(s)); !slices.Equal(got, want) {
		t.Errorf("strict rules:\n got %q\nwant %q", got, want)
	}
	if got := strings.Join(iptIsolatedMember(n), " "); got != "-o br0 "+c+" -j DROP" {
		t.Errorf("member %q", got)
	}

	// An IPv4-only isolated network: both families isolated, masquerade
	// and forwarding only where the subnets are.
	v4 := Network{Name: "n", Bridge: "br0", Subnets: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/24")}, Masquerade: true, Forward: true, Isolation: IsolationIsolated}
	if fams := v4.ruleFamilies(); !slices.Equal(fams, allFamilies()) {
		t.Errorf("families %v", fams)
	}
	for f, tables := range map[family][]string{ipv4: {filterTable, natTable, mangleTable}, ipv6: {mangleTable}} {
		var got []string
		for _, p := range iptParts(v4, f) {
			got = append(got, p.table)
		}
		if !slices.Equal(got, tables) {
			t.Errorf("%s parts %v, want %v", f, got, tables)
		}
	}
}

func joinRules(rules [][]string) []string {
	var out []string
	for _, r := range rules {
		out = append(out, strings.Join(r, " "))
	}
	return out
}

func TestNFTIsolationRules(t *testing.T) {
	tests := []struct {
		n    Network
		want []string // a short description of each rule
	}{
		{Network{Bridge: "br0", Isolation: IsolationIsolated}, nil},
		{Network{Bridge: "br0", NoICC: true}, []string{"ct accept", "iif=br0 oif=br0 drop"}},
		{Network{Bridge: "br0", Internal: true}, []string{"iif=br0 oif!=br0 drop", "oif=br0 iif!=br0 drop", "ct accept"}},
		{Network{Bridge: "br0", Isolation: IsolationStrict, strictExempt: []string{"up"}}, []string{
			"ct accept",
			"iif=br0 oif!=br0 oif!=up oifkind=bridge drop",
			"oif=br0 iif!=br0 iif!=up iifkind=bridge drop",
		}},
	}
	for _, tc := range tests {
		var got []string
		for _, r := range nftIsolationRules(tc.n) {
			got = append(got, describe(r))
		}
		if !slices.Equal(got, tc.want) {
			t.Errorf("%+v:\n got %q\nwant %q", tc.n, got, tc.want)
		}
	}
	set := &nftables.Set{Name: nftIsolatedSet, ID: 7}
	if got := describe(nftIsolatedRule(Network{Bridge: "br0"}, set)); got != "iif=br0 oif!=br0 oif@isolated drop" {
		t.Errorf("isolated rule %q", got)
	}
}

// describe renders the expressions of the isolation rules compactly.
func describe(exprs []expr.Any) string {
	names := map[expr.MetaKey]string{expr.MetaKeyIIFNAME: "iif", expr.MetaKeyOIFNAME: "oif", metaKeyIIFKIND: "iifkind", metaKeyOIFKIND: "oifkind"}
	var out []string
	var key string
	for _, e := range exprs {
		switch e := e.(type) {
		case *expr.Meta:
			key = names[e.Key]
		case *expr.Ct:
			key = "ct"
		case *expr.Cmp:
			if key == "ct" {
				continue
			}
			op := "="
			if e.Op == expr.CmpOpNeq {
				op = "!="
			}
			out = append(out, key+op+strings.TrimRight(string(e.Data), "\x00"))
		case *expr.Lookup:
			out = append(out, fmt.Sprintf("%s@%s", key, e.SetName))
		case *expr.Verdict:
			v := map[expr.VerdictKind]string{expr.VerdictAccept: "accept", expr.VerdictDrop: "drop"}[e.Kind]
			if key == "ct" {
				v = "ct " + v
			}
			out = append(out, v)
		}
	}
	return strings.Join(out, " ")
}
