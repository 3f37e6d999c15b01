package firewall

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/nftables"
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
					_, ok = options{lockDir: lockDir}.stamped(networkMarker(net.Name), name, net.fingerprint())
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

// TestStampCarriedAcrossOwnCommits: publishing a port, or removing it,
// commits, which moves the ruleset's generation on; the network's marker
// line follows when the port commit was the only one since the line's
// generation, so the next Ensure still trusts the stamp. A foreign commit in between is never
// carried over: the next Ensure reads the rules (and puts back what the
// foreign commit took away).
func TestStampCarriedAcrossOwnCommits(t *testing.T) {
	requireRoot(t)
	out, _ := exec.Command("iptables", "--version").Output()
	iptNFT := strings.Contains(string(out), "nf_tables")
	for _, name := range []string{IPTablesName, NFTablesName} {
		t.Run(name, func(t *testing.T) {
			lockDir := t.TempDir()
			opts := options{lockDir: lockDir}
			masq, err := New(name, WithLockDir(lockDir))
			if err != nil {
				t.Fatal(err)
			}
			ports, err := NewPorts(name, WithLockDir(lockDir))
			if err != nil {
				t.Fatal(err)
			}
			net := testNetwork("carry-"+name, "brc0", "10.51.0.0/24", "fd51::/64")
			pnet := PortNetwork{Name: net.Name, Bridge: "brc0", Subnets: pfx("10.51.0.0/24", "fd51::/64")}
			n := newTestNS(t, "carry")
			prepareForward(t, n)
			do := func(fn func() error) {
				t.Helper()
				if err := n.do(t, fn); err != nil {
					t.Fatal(err)
				}
			}
			ensure := func() { t.Helper(); do(func() error { return masq.Ensure(net) }) }
			stamped := func() (ok bool) {
				t.Helper()
				do(func() error { _, ok = opts.stamped(networkMarker(net.Name), name, net.fingerprint()); return nil })
				return ok
			}
			publish := func(id string, port uint16) {
				t.Helper()
				do(func() error {
					return ports.Publish(pnet, Attachment{ContainerID: id, IfName: "eth0"}, []Mapping{mp("tcp", "", port, "10.51.0.2", 80)})
				})
			}
			ensure()
			ensure()
			if !stamped() {
				t.Fatal("no stamp after an Ensure that found the rules")
			}
			publish("first", 8080) // writes the port rule set's fixed rules too
			if !stamped() {
				ensure() // the fixed rules went in by iptables-restore: not ours
			}
			if !stamped() {
				t.Fatal("no stamp after an Ensure that found the rules")
			}
			publish("second", 8081)
			if name == NFTablesName || iptNFT {
				if !stamped() {
					t.Fatalf("a port's commit left the masquerade rules' stamp behind; marker:\n%s", readMarker(t, lockDir, net.Name))
				}
			}

			// And across a mapping's removal (a DEL's).
			do(func() error { return ports.Unpublish(net.Name, Attachment{ContainerID: "second", IfName: "eth0"}) })
			if name == NFTablesName || iptNFT {
				if !stamped() {
					t.Fatalf("a port's removal left the masquerade rules' stamp behind; marker:\n%s", readMarker(t, lockDir, net.Name))
				}
			}

			// Carried only across the caller's own commits: one of them
			// is; not with a foreign commit beside it (another process's,
			// or another goroutine's of this process, on its own thread);
			// not when the own commit changed nothing (a table that is
			// there added again: no generation) and a foreign one took
			// its place.
			addTable := func(name string) error {
				c, err := nftables.New()
				if err != nil {
					return err
				}
				c.AddTable(&nftables.Table{Name: name, Family: nftables.TableFamilyINet})
				return c.Flush()
			}
			ownCommit := func(table, foreign, sibling string) {
				t.Helper()
				do(func() error {
					own := opts.ownCommits(net.Name)
					defer own.close()
					if foreign != "" {
						n.exec(t, "nft", "add", "table", "inet", foreign)
					}
					if sibling != "" {
						done := make(chan error)
						go func() { done <- n.do(t, func() error { return addTable(sibling) }) }()
						if err := <-done; err != nil {
							return err
						}
					}
					if err := addTable(table); err != nil {
						return err
					}
					own.carry()
					return nil
				})
			}
			for _, tc := range []struct {
				why, table, foreign, sibling string
				carried                      bool
			}{
				{"one own commit", "carry-own", "", "", true},
				{"an own commit and another process's", "carry-own2", "carry-foreign", "", false},
				{"an own commit and another goroutine's", "carry-own3", "", "carry-sibling", false},
				{"an own commit that changed nothing and another process's", "carry-own", "carry-foreign2", "", false},
			} {
				ensure() // reads (the generation moved), stamps
				if !stamped() {
					t.Fatal("no stamp after an Ensure that found the rules")
				}
				marker := readMarker(t, lockDir, net.Name)
				ownCommit(tc.table, tc.foreign, tc.sibling)
				if got := stamped(); got != tc.carried {
					t.Errorf("%s: stamp carried %t, want %t; marker before and after:\n%s---\n%s", tc.why, got, tc.carried, marker, readMarker(t, lockDir, net.Name))
				}
			}

			// The masquerade rules removed by hand, then a port published:
			// the removal is not carried, and the next Ensure puts them back.
			if name == IPTablesName {
				n.exec(t, "iptables", "-t", "nat", "-F", "POSTROUTING")
			} else {
				n.exec(t, "nft", "delete", "table", "inet", networkTable(net.Name).Name)
			}
			publish("third", 8082)
			if stamped() {
				t.Fatal("the stamp was carried across the removal of the masquerade rules")
			}
			ensure()
			rules := n.ruleset(t)
			if name == IPTablesName {
				rules = n.exec(t, "iptables", "-t", "nat", "-S", "POSTROUTING")
				if !strings.Contains(rules, jumpComment(net.Name, net.fingerprint())) {
					t.Errorf("Ensure did not put the removed rules back:\n%s", rules)
				}
			} else if !strings.Contains(rules, "table inet "+networkTable(net.Name).Name+" {") {
				t.Errorf("Ensure did not put the removed rules back:\n%s", rules)
			}
		})
	}
}

func readMarker(t *testing.T, lockDir, network string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(lockDir, networkMarker(network)))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
