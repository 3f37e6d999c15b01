package firewall

import (
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// failingRestore returns a PATH under which iptables-restore and
// ip6tables-restore fail without writing anything, so that Ensure takes
// the commands' way.
func failingRestore(t *testing.T, path string) string {
	t.Helper()
	dir := t.TempDir()
	for _, name := range []string{"iptables-restore", "ip6tables-restore"} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte("#!/bin/sh\nexit 1\n"), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return dir + string(os.PathListSeparator) + path
}

// savedRules is the namespace's iptables-save and ip6tables-save output
// without counters and comments.
func savedRules(t *testing.T, n *testNS) string {
	t.Helper()
	counters := regexp.MustCompile(`\[\d+:\d+\]`)
	var keep []string
	for _, l := range strings.Split(counters.ReplaceAllString(n.exec(t, "iptables-save")+n.exec(t, "ip6tables-save"), ""), "\n") {
		if !strings.HasPrefix(l, "#") {
			keep = append(keep, l)
		}
	}
	return strings.Join(keep, "\n")
}

// TestIPTablesFreshEnsureConfigs: for every kind of network configuration
// (families, isolation modes, internal, icc off, nonMasqueradeCIDRs), the
// first Ensure written with iptables-restore leaves what the commands
// write; a later Ensure with a changed configuration and the Remove after
// it leave the same in both namespaces too.
func TestIPTablesFreshEnsureConfigs(t *testing.T) {
	requireRoot(t)
	requireIPTablesNFT(t, "")
	base := func(v4, v6 string) Network {
		n := Network{Name: "cfg", Bridge: "brc", Masquerade: true, Forward: true}
		for _, s := range []string{v4, v6} {
			if s != "" {
				n.Subnets = append(n.Subnets, pfx(s)...)
			}
		}
		return n
	}
	with := func(n Network, f func(*Network)) Network { f(&n); return n }
	cases := []struct {
		name          string
		first, second Network
	}{
		{"dual", base("10.9.0.0/24", "fd09::/64"), with(base("10.9.0.0/24", "fd09::/64"), func(n *Network) { n.NonMasquerade = pfx("10.200.0.0/16") })},
		{"ipv4", base("10.9.0.0/24", ""), base("10.9.0.0/24", "fd09::/64")},
		{"ipv6", base("", "fd09::/64"), base("10.9.0.0/24", "")},
		{"nonmasq", with(base("10.9.0.0/24", "fd09::/64"), func(n *Network) { n.NonMasquerade = pfx("10.200.0.0/16", "fd20::/48") }), base("10.9.0.0/24", "fd09::/64")},
		{"isolated", with(base("10.9.0.0/24", "fd09::/64"), func(n *Network) { n.Isolation = IsolationIsolated }), base("10.9.0.0/24", "fd09::/64")},
		{"isolated-ipv4", with(base("10.9.0.0/24", ""), func(n *Network) { n.Isolation = IsolationIsolated }), with(base("10.9.0.0/24", ""), func(n *Network) { n.Isolation = IsolationStrict })},
		{"strict", with(base("10.9.0.0/24", "fd09::/64"), func(n *Network) { n.Isolation = IsolationStrict }), with(base("10.9.0.0/24", "fd09::/64"), func(n *Network) { n.Isolation = IsolationIsolated })},
		{"strict-ipv6", with(base("", "fd09::/64"), func(n *Network) { n.Isolation = IsolationStrict }), base("", "fd09::/64")},
		{"noicc", with(base("10.9.0.0/24", "fd09::/64"), func(n *Network) { n.NoICC = true }), with(base("10.9.0.0/24", "fd09::/64"), func(n *Network) { n.NoICC = true; n.Isolation = IsolationIsolated })},
		{"noicc-ipv6", with(base("", "fd09::/64"), func(n *Network) { n.NoICC = true }), base("", "fd09::/64")},
		{"internal", with(base("10.9.0.0/24", "fd09::/64"), func(n *Network) { n.Internal = true; n.Masquerade, n.Forward = false, false }), base("10.9.0.0/24", "fd09::/64")},
		{"isolation-only", with(base("10.9.0.0/24", ""), func(n *Network) { n.Isolation = IsolationIsolated; n.Masquerade, n.Forward = false, false }), with(base("10.9.0.0/24", ""), func(n *Network) { n.Isolation = IsolationIsolated })},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			b, err := New(IPTablesName, WithLockDir(t.TempDir()))
			if err != nil {
				t.Fatal(err)
			}
			fresh, byCmd := newTestNS(t, "cfg"), newTestNS(t, "cfgcmd")
			for _, n := range []*testNS{fresh, byCmd} {
				// Other bridges, for strict isolation.
				n.exec(t, "ip", "link", "add", "brc", "type", "bridge")
				n.exec(t, "ip", "link", "add", "name", "brq", "type", "bridge")
			}
			commands := logCommands(t)
			path := os.Getenv("PATH")
			noRestore := failingRestore(t, path)
			ensure := func(n *testNS, nw Network, p string) {
				t.Helper()
				t.Setenv("PATH", p)
				if err := n.do(t, func() error { return b.Ensure(nw) }); err != nil {
					t.Fatal(err)
				}
				t.Setenv("PATH", path)
			}
			ensure(fresh, tc.first, path)
			if got := commands(); len(got) == 0 || slices.ContainsFunc(got, func(c string) bool { return !strings.HasSuffix(c, "-restore") }) {
				t.Errorf("first Ensure started %v, want restores only", got)
			}
			ensure(byCmd, tc.first, noRestore)
			if got := commands(); !slices.Contains(got, "iptables") && !slices.Contains(got, "ip6tables") {
				t.Fatalf("Ensure without a working iptables-restore started %v: not the commands' way", got)
			}
			if a, c := savedRules(t, fresh), savedRules(t, byCmd); a != c {
				t.Errorf("first Ensure: written with iptables-restore:\n%s\nwith the commands:\n%s", a, c)
			}
			ensure(fresh, tc.first, path)
			if got := commands(); len(got) != 0 {
				t.Errorf("Ensure of a network whose rules exist started %v", got)
			}
			ensure(fresh, tc.second, path)
			ensure(byCmd, tc.second, path)
			if a, c := savedRules(t, fresh), savedRules(t, byCmd); a != c {
				t.Errorf("changed Ensure: after a restore:\n%s\nafter the commands:\n%s", a, c)
			}
			for _, n := range []*testNS{fresh, byCmd} {
				if err := n.do(t, func() error { return b.Remove(tc.first.Name) }); err != nil {
					t.Fatal(err)
				}
				if all := savedRules(t, n); strings.Contains(all, "flatcni") || strings.Contains(all, iptChainPrefix) {
					t.Errorf("%s: left after Remove:\n%s", n.name, all)
				}
			}
		})
	}
}
