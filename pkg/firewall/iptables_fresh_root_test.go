package firewall

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// logCommands puts shims of the iptables commands first on PATH, each
// logging its name to a file before running the real command; the returned
// function reads and empties the log.
func logCommands(t *testing.T) func() []string {
	t.Helper()
	dir := t.TempDir()
	logFile := filepath.Join(dir, "log")
	for _, name := range []string{"iptables", "ip6tables", "iptables-restore", "ip6tables-restore"} {
		real, err := exec.LookPath(name)
		if err != nil {
			t.Skipf("%s: %v", name, err)
		}
		shim := "#!/bin/sh\necho " + name + " >> " + logFile + "\nexec " + real + ` "$@"` + "\n"
		if err := os.WriteFile(filepath.Join(dir, name), []byte(shim), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	t.Setenv("PATH", dir+string(os.PathListSeparator)+os.Getenv("PATH"))
	return func() []string {
		data, _ := os.ReadFile(logFile)
		_ = os.Remove(logFile)
		return strings.Fields(string(data))
	}
}

// TestIPTablesFreshEnsure: the first Ensure of a network with the iptables
// backend writes each family's rules with one iptables-restore, and writes
// what the commands write (compared with a namespace where the network's
// empty nat chain made Ensure take the commands' way); a second isolated
// network keeps the first one's member of the shared isolation chain
// (declaring that chain again would flush it); an Ensure of a network whose
// rules exist starts nothing.
func TestIPTablesFreshEnsure(t *testing.T) {
	requireRoot(t)
	requireIPTablesNFT(t, "")
	b, err := New(IPTablesName, WithLockDir(t.TempDir()))
	if err != nil {
		t.Fatal(err)
	}
	first := iptRmNetwork("fresh-a", "bra", "10.7.0.0/24", "fd07::/64")
	second := iptRmNetwork("fresh-b", "brb", "10.8.0.0/24", "fd08::/64")
	fresh, byCmd := newTestNS(t, "fresh"), newTestNS(t, "freshcmd")
	// The empty chain: something of the network is there, not fresh.
	byCmd.exec(t, "iptables", "-t", "nat", "-N", iptChainName(first.Name))
	commands := logCommands(t)
	for _, n := range []*testNS{fresh, byCmd} {
		if err := n.do(t, func() error { return b.Ensure(first) }); err != nil {
			t.Fatal(err)
		}
		got := commands()
		if n == fresh && strings.Join(got, " ") != "iptables-restore ip6tables-restore" {
			t.Errorf("first Ensure started %v, want one iptables-restore and one ip6tables-restore", got)
		}
		if n == byCmd && len(got) < 5 {
			t.Errorf("Ensure over the network's empty chain started %v: not the commands' way", got)
		}
	}
	if a, c := savedRules(t, fresh), savedRules(t, byCmd); a != c {
		t.Errorf("rules written with iptables-restore:\n%s\nwith the commands:\n%s", a, c)
	}
	commands()
	if err := fresh.do(t, func() error { return b.Ensure(first) }); err != nil {
		t.Fatal(err)
	}
	if got := commands(); len(got) != 0 {
		t.Errorf("Ensure of a network whose rules exist started %v", got)
	}
	if err := fresh.do(t, func() error { return b.Ensure(second) }); err != nil {
		t.Fatal(err)
	}
	all := savedRules(t, fresh)
	for _, member := range []string{"-A " + iptIsolatedChain + " -o bra ", "-A " + iptIsolatedChain + " -o brb "} {
		if !strings.Contains(all, member) {
			t.Errorf("shared isolation chain lacks %q after the second network's Ensure:\n%s", member, all)
		}
	}
}

// TestIPTablesPortsWithoutCommands: on iptables-nft, the first Publish of a
// network writes its port chain and fixed rules with iptables-restore
// (what the commands write: compared with a namespace where the network's
// empty chain made Publish take the commands' way), and the last Unpublish
// deletes them through netlink, starting no process.
func TestIPTablesPortsWithoutCommands(t *testing.T) {
	requireRoot(t)
	requireIPTablesNFT(t, "")
	n := PortNetwork{Name: "pfresh", Bridge: "brp", Subnets: pfx("10.44.0.0/24")}
	owner := Attachment{ContainerID: "c1", IfName: "eth0"}
	maps := []Mapping{mp("tcp", "", 8080, "10.44.0.2", 80)}
	fresh, byCmd := newTestNS(t, "pfresh"), newTestNS(t, "pfreshcmd")
	byCmd.exec(t, "iptables", "-t", "nat", "-N", iptPortsChain(n.Name))
	commands := logCommands(t)
	for _, ns := range []*testNS{fresh, byCmd} {
		b, err := NewPorts(IPTablesName, WithLockDir(t.TempDir()))
		if err != nil {
			t.Fatal(err)
		}
		if err := ns.do(t, func() error { return b.Publish(n, owner, maps) }); err != nil {
			t.Fatal(err)
		}
		got := commands()
		if ns == fresh && slices.ContainsFunc(got, func(c string) bool { return !strings.HasSuffix(c, "-restore") }) {
			t.Errorf("first Publish started %v, want iptables-restore only", got)
		}
		if ns == byCmd {
			// The commands' way, for the comparison below; then the
			// last Unpublish of the fresh namespace.
			continue
		}
		defer func() {
			if err := ns.do(t, func() error { return b.Unpublish(n.Name, owner) }); err != nil {
				t.Fatal(err)
			}
			if got := commands(); len(got) != 0 {
				t.Errorf("last Unpublish started %v, want no process", got)
			}
			if all := savedRules(t, ns); strings.Contains(all, "flatcni") || strings.Contains(all, iptPortsChainPrefix) {
				t.Errorf("rules left after the last Unpublish:\n%s", all)
			}
		}()
	}
	if a, c := savedRules(t, fresh), savedRules(t, byCmd); a != c {
		t.Errorf("port rules written with iptables-restore:\n%s\nwith the commands:\n%s", a, c)
	}
}

// TestIPTablesPortsRestoreHalfDone: iptables-nft-restore commits table by
// table (a later table's failure leaves the earlier ones written), so a
// first Publish killed between COMMITs leaves the raw drop and the FORWARD
// accepts without the network's nat chain. The last removal must still
// take them away, and a later Publish must not write them twice.
func TestIPTablesPortsRestoreHalfDone(t *testing.T) {
	requireRoot(t)
	requireIPTablesNFT(t, "")
	n := PortNetwork{Name: "phalf", Bridge: "brh", Subnets: pfx("10.45.0.0/24")}
	owner := Attachment{ContainerID: "c1", IfName: "eth0"}
	ns := newTestNS(t, "phalf")
	in := iptFreshFixedInput(n.Name, iptPortsFixed(n, ipv4, "0123456789abcdef"), 1)
	at := strings.Index(in, "*nat\n")
	if at < 0 || !strings.Contains(in[:at], "*raw") || !strings.Contains(in[:at], "*filter") {
		t.Fatalf("restore input not raw, filter, then nat:\n%s", in)
	}
	// The nat table's part fails, as a kill there would stop it.
	half := in[:at] + "*nat\n-A NOSUCHCHAIN -j ACCEPT\nCOMMIT\n"
	if err := ns.do(t, func() error { return iptRestore(ipv4, half) }); err == nil {
		t.Fatal("restore with a bad nat part succeeded")
	}
	if got := ns.exec(t, "iptables-save"); !strings.Contains(got, "-j DROP") || strings.Contains(got, iptPortsChainPrefix) {
		t.Skipf("this iptables-restore did not commit the raw table alone:\n%s", got)
	}
	b, err := NewPorts(IPTablesName, WithLockDir(t.TempDir()))
	if err != nil {
		t.Fatal(err)
	}
	if err := ns.do(t, func() error { return b.Retain(n.Name, nil) }); err != nil {
		t.Fatal(err)
	}
	if all := ns.exec(t, "iptables-save"); strings.Contains(all, "flatcni") {
		t.Errorf("the network's fixed rules left after Retain(nil) (its last DEL, GC):\n%s", all)
	}
	// Half done again, then a Publish and its last Unpublish: nothing left.
	if err := ns.do(t, func() error { return iptRestore(ipv4, half) }); err == nil {
		t.Fatal("restore with a bad nat part succeeded")
	}
	if err := ns.do(t, func() error { return b.Publish(n, owner, []Mapping{mp("tcp", "", 8080, "10.45.0.2", 80)}) }); err != nil {
		t.Fatal(err)
	}
	if drops := strings.Count(ns.exec(t, "iptables", "-t", "raw", "-S", "PREROUTING"), "-j DROP"); drops != 1 {
		t.Errorf("after Publish over a half-done restore: %d drops in raw PREROUTING, want 1", drops)
	}
	if err := ns.do(t, func() error { return b.Unpublish(n.Name, owner) }); err != nil {
		t.Fatal(err)
	}
	if all := ns.exec(t, "iptables-save"); strings.Contains(all, "flatcni") {
		t.Errorf("rules left after the last Unpublish:\n%s", all)
	}
}

// A reload that flushed the nat table's PREROUTING (the fixed rules' hot
// path looks at its jump) makes the next Publish put the fixed rules back:
// those that are missing only, not a second copy of the others.
func TestIPTablesPortsFixedNotDoubled(t *testing.T) {
	requireRoot(t)
	requireIPTablesNFT(t, "")
	n := PortNetwork{Name: "pdbl", Bridge: "brd", Subnets: pfx("10.46.0.0/24")}
	ns := newTestNS(t, "pdbl")
	b, err := NewPorts(IPTablesName, WithLockDir(t.TempDir()))
	if err != nil {
		t.Fatal(err)
	}
	publish := func(id string, port uint16) {
		t.Helper()
		owner := Attachment{ContainerID: id, IfName: "eth0"}
		if err := ns.do(t, func() error { return b.Publish(n, owner, []Mapping{mp("tcp", "", port, "10.46.0.2", 80)}) }); err != nil {
			t.Fatal(err)
		}
	}
	fixed := func() []string {
		var out []string
		for _, l := range strings.Split(ns.exec(t, "iptables-save"), "\n") {
			if strings.HasPrefix(l, "-A ") && strings.Contains(l, "cfg") && strings.Contains(l, n.Name) {
				out = append(out, l)
			}
		}
		return out
	}
	publish("c1", 8080)
	want := len(fixed())
	if want == 0 {
		t.Fatal("no fixed rules after Publish")
	}
	for i := 0; i < 2; i++ {
		ns.exec(t, "iptables", "-t", "nat", "-F", "PREROUTING")
		publish(fmt.Sprintf("c%d", i+2), uint16(8081+i))
	}
	if got := fixed(); len(got) != want {
		t.Errorf("%d fixed rules after two repairs, want %d:\n%s", len(got), want, strings.Join(got, "\n"))
	}
	if err := ns.do(t, func() error { return b.Retain(n.Name, nil) }); err != nil {
		t.Fatal(err)
	}
}

// A reload that flushed another built-in chain than nat PREROUTING (filter
// FORWARD: published ports dead under a FORWARD DROP policy; raw
// PREROUTING: the 127.0.0.0/8 drop gone while route_localnet is on; nat
// POSTROUTING, OUTPUT) makes the next Publish put its fixed rules back,
// also where a stamp line (which spares the check while nothing but
// mappings was committed) was written before. Publish makes no marker (it
// would say that the network may have masquerade rules).
func TestIPTablesPortsFixedBackAfterReload(t *testing.T) {
	requireRoot(t)
	requireIPTablesNFT(t, "")
	n := PortNetwork{Name: "prel", Bridge: "brr", Subnets: pfx("10.47.0.0/24")}
	ns := newTestNS(t, "prel")
	lockDir := t.TempDir()
	b, err := NewPorts(IPTablesName, WithLockDir(lockDir))
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = ns.do(t, func() error { return b.Retain(n.Name, nil) }) }()
	port := uint16(8080)
	publish := func() {
		t.Helper()
		owner := Attachment{ContainerID: fmt.Sprintf("c%d", port), IfName: "eth0"}
		if err := ns.do(t, func() error { return b.Publish(n, owner, []Mapping{mp("tcp", "", port, "10.47.0.2", 80)}) }); err != nil {
			t.Fatal(err)
		}
		port++
	}
	fixedIn := func(table, chain string) int {
		t.Helper()
		return strings.Count(ns.exec(t, "iptables", "-t", table, "-S", chain), "flatcni-ports net="+n.Name+" cfg=")
	}
	stamped := func() bool {
		t.Helper()
		var ok bool
		_ = ns.do(t, func() error {
			_, ok = options{lockDir: lockDir}.stamped(portsStamps(n.Name), portsStampKey(IPTablesName, ipv4), n.fingerprint())
			return nil
		})
		return ok
	}
	publish()
	publish() // finds the rules in place: stamps them
	// Carried across the Publish's own commit of its mapping: the next
	// Publish reads no rule.
	if !stamped() {
		got, err := os.ReadFile(filepath.Join(lockDir, portsStamps(n.Name)))
		t.Errorf("the fixed rules' stamp line not at the ruleset's generation after Publish: %q, %v", got, err)
	}
	if _, err := os.Lstat(filepath.Join(lockDir, networkMarker(n.Name))); err == nil {
		t.Error("Publish made the network's marker")
	}
	for _, tc := range [][2]string{{filterTable, forwardChain}, {rawTable, preroutingChain}, {natTable, postroutingChain}, {natTable, outputChain}} {
		want := fixedIn(tc[0], tc[1])
		if want == 0 {
			t.Fatalf("no fixed rule in %s %s after Publish", tc[0], tc[1])
		}
		ns.exec(t, "iptables", "-t", tc[0], "-F", tc[1])
		publish()
		if got := fixedIn(tc[0], tc[1]); got != want {
			t.Errorf("after %s %s was flushed, the next Publish left %d of the network's %d fixed rules there", tc[0], tc[1], got, want)
		}
		publish() // stamps again
		if !stamped() {
			t.Errorf("not stamped again after %s %s was put back", tc[0], tc[1])
		}
	}
}

// A network's own chain emptied by hand (or by a tool), its jump left in
// place: the next Ensure writes the chain's rules again, also after an
// Ensure that stamped them (the flush moved the generation on).
func TestIPTablesChainEmptiedRefilled(t *testing.T) {
	requireRoot(t)
	requireIPTablesNFT(t, "")
	b, err := New(IPTablesName, WithLockDir(t.TempDir()))
	if err != nil {
		t.Fatal(err)
	}
	net := iptRmNetwork("refill", "brf", "10.49.0.0/24", "fd49::/64")
	ns := newTestNS(t, "refill")
	prepareForward(t, ns)
	chain := iptChainName(net.Name)
	ensure := func() {
		t.Helper()
		if err := ns.do(t, func() error { return b.Ensure(net) }); err != nil {
			t.Fatal(err)
		}
	}
	rulesIn := func(table string) int {
		t.Helper()
		return strings.Count(ns.exec(t, "iptables", "-t", table, "-S", chain), "\n-A ")
	}
	ensure()
	ensure() // stamps
	for _, table := range []string{natTable, filterTable, mangleTable} {
		want := rulesIn(table)
		if want == 0 {
			t.Fatalf("no rule in the network's %s chain after Ensure", table)
		}
		ns.exec(t, "iptables", "-t", table, "-F", chain)
		ensure()
		if got := rulesIn(table); got != want {
			t.Errorf("the network's %s chain emptied: %d rules after the next Ensure, want %d", table, got, want)
		}
		ensure()
	}
	if err := ns.do(t, func() error { return b.Remove(net.Name) }); err != nil {
		t.Fatal(err)
	}
}
