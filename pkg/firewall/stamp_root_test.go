package firewall

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestStamp: an Ensure that finds the network's rules in place records the
// ruleset's stamp in the network's marker, and the next one trusts it; any
// commit moves the stamp on (here the rules removed by hand: the next
// Ensure puts them back); a stamp recorded in another namespace, with the
// same lock directory and network, never matches there.
func TestStamp(t *testing.T) {
	requireRoot(t)
	lockDir := t.TempDir()
	for _, name := range []string{IPTablesName, NFTablesName} {
		t.Run(name, func(t *testing.T) {
			b, err := New(name, WithLockDir(lockDir))
			if err != nil {
				t.Fatal(err)
			}
			net := testNetwork("stamp-"+name, "br0", "10.1.0.0/24", "fd01::/64")
			ensure := func(in *testNS) {
				t.Helper()
				if err := in.do(t, func() error { return b.Ensure(net) }); err != nil {
					t.Fatal(err)
				}
			}
			// The network's hook in the ruleset: the nat jump with its
			// fingerprint (iptables), the network's table (nftables).
			hooked := func(in *testNS) bool {
				t.Helper()
				if name == IPTablesName {
					return strings.Contains(in.exec(t, "iptables", "-t", "nat", "-S", "POSTROUTING"), jumpComment(net.Name, net.fingerprint()))
				}
				return strings.Contains(in.ruleset(t), "table inet "+networkTable(net.Name).Name+" {")
			}
			unhook := func(in *testNS) {
				t.Helper()
				if name == IPTablesName {
					in.exec(t, "iptables", "-t", "nat", "-F", "POSTROUTING")
				} else {
					in.exec(t, "nft", "delete", "table", "inet", networkTable(net.Name).Name)
				}
			}
			marker := filepath.Join(lockDir, networkMarker(net.Name))
			wantLine := " " + name + " " + net.fingerprint() + " "

			n := newTestNS(t, "stamp")
			prepareForward(t, n)
			ensure(n) // writes the rules
			ensure(n) // finds them: stamps
			if got, err := os.ReadFile(marker); err != nil || !strings.Contains(string(got), wantLine) {
				t.Fatalf("marker after an Ensure that found the rules: %q, %v; want a line with %q", got, err, wantLine)
			}
			// Only a marker of ours is trusted.
			stampedNow := func() (ok bool) {
				t.Helper()
				_ = n.do(t, func() error {
					_, ok = options{lockDir: lockDir}.stamped(net.Name, name, net.fingerprint())
					return nil
				})
				return ok
			}
			if !stampedNow() {
				t.Fatal("the stamp just recorded does not match")
			}
			if err := os.Chown(marker, 65534, 65534); err != nil {
				t.Fatal(err)
			}
			if stampedNow() {
				t.Error("a marker owned by another user was trusted")
			}
			if err := os.Chown(marker, os.Geteuid(), os.Getegid()); err != nil {
				t.Fatal(err)
			}
			before := n.exec(t, "nft", "-a", "list", "ruleset")
			ensure(n) // trusts the stamp
			if after := n.exec(t, "nft", "-a", "list", "ruleset"); after != before {
				t.Errorf("an Ensure with a current stamp changed the ruleset:\n%s\n---\n%s", before, after)
			}

			unhook(n)
			if hooked(n) {
				t.Fatal("the rules are still hooked after their removal by hand")
			}
			ensure(n)
			if !hooked(n) {
				t.Errorf("an Ensure after the rules were removed by hand did not put them back:\n%s", n.ruleset(t))
			}

			// The marker now stamps n's ruleset; another namespace has none
			// of the network's rules.
			ensure(n)
			other := newTestNS(t, "stamp2")
			prepareForward(t, other)
			ensure(other)
			if !hooked(other) {
				t.Errorf("a stamp recorded in another namespace kept Ensure from writing the rules:\n%s", other.ruleset(t))
			}
		})
	}
}
