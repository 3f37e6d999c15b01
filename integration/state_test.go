package integration

import (
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
)

// State is what a node holds that the plugins may change: links, addresses,
// routes, firewall rules and lease files. Two equal States mean the plugins
// left the node as they found it.
type State struct {
	Links, Addrs, Routes, IPTables, NFT, Leases string
}

var (
	counters = regexp.MustCompile(`\[\d+:\d+\]`)
	handles  = regexp.MustCompile(` # handle \d+`)
)

// Snapshot reads the node's state (inside its namespace).
func (n *Node) Snapshot(t testing.TB) State {
	t.Helper()
	var s State
	s.Links = n.MustRun(t, "ip", "-o", "link", "show")
	s.Addrs = n.MustRun(t, "ip", "-o", "addr", "show")
	s.Routes = n.MustRun(t, "ip", "route", "show", "table", "all")
	if out, err := n.Run("iptables-save"); err == nil {
		s.IPTables = stripIPTables(out)
	}
	if out, err := n.Run("ip6tables-save"); err == nil {
		s.IPTables += stripIPTables(out)
	}
	if out, err := n.Run("nft", "list", "ruleset"); err == nil {
		s.NFT = handles.ReplaceAllString(out, "")
	}
	var files []string
	_ = filepath.Walk(n.LeaseDir(), func(p string, fi os.FileInfo, err error) error {
		if err == nil && !fi.IsDir() && !strings.Contains(p, "/.flatcni/") && !strings.Contains(filepath.Base(p), "last_reserved_ip") && filepath.Base(p) != "lock" {
			files = append(files, strings.TrimPrefix(p, n.LeaseDir()))
		}
		return nil
	})
	sort.Strings(files)
	s.Leases = strings.Join(files, "\n")
	return s
}

func stripIPTables(s string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.HasPrefix(l, "#") {
			continue
		}
		out = append(out, counters.ReplaceAllString(l, ""))
	}
	return strings.Join(out, "\n")
}

// RequireSame fails with the differing parts when two states differ.
func RequireSame(t testing.TB, before, after State) {
	t.Helper()
	for _, f := range []struct{ name, a, b string }{
		{"links", before.Links, after.Links}, {"addresses", before.Addrs, after.Addrs},
		{"routes", before.Routes, after.Routes}, {"iptables", before.IPTables, after.IPTables},
		{"nftables", before.NFT, after.NFT}, {"leases", before.Leases, after.Leases},
	} {
		if f.a != f.b {
			t.Errorf("node %s changed:\nbefore:\n%s\nafter:\n%s", f.name, f.a, f.b)
		}
	}
}
