package firewall

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// Environment of the child processes of TestIPTablesRemoveStartsNoProcess.
const (
	iptRmNSEnv   = "FLATCNI_FW_IPTRM_NS"
	iptRmStepEnv = "FLATCNI_FW_IPTRM_STEP"
)

// iptRmNetwork returns the test's isolated networks.
func iptRmNetwork(name, bridge, v4, v6 string) Network {
	n := testNetwork(name, bridge, v4, v6)
	n.Isolation = IsolationIsolated
	n.NoICC = true
	return n
}

// TestIPTablesRemoveStartsNoProcess: on iptables-nft, a network's last DEL
// (RemoveLegacy and Remove) deletes everything of the network through
// netlink, starting no process: its chains in filter, nat and mangle, every
// jump to them (also one of an older configuration), its rule in the shared
// isolation chain, and the reference plugin's per-container rules. The
// other network keeps its rules and the shared chain; once it goes too, the
// shared chain goes. Removing a network that has no rules starts no process
// either. Each step runs in a child where exec fails.
func TestIPTablesRemoveStartsNoProcess(t *testing.T) {
	requireRoot(t)
	if nsName := os.Getenv(iptRmNSEnv); nsName != "" {
		iptRmChild(t, nsName, os.Getenv(iptRmStepEnv))
		return
	}
	requireIPTablesNFT(t, "Remove runs iptables")
	n := newTestNS(t, "iptrm")
	prepareForward(t, n)
	lockDir := t.TempDir()
	b, err := New(IPTablesName, WithLockDir(lockDir))
	if err != nil {
		t.Fatal(err)
	}
	gone := iptRmNetwork("gone", "brg", "10.7.0.0/24", "fd07::/64")
	kept := iptRmNetwork("kept", "brk", "10.8.0.0/24", "fd08::/64")
	err = n.do(t, func() error {
		if err := b.Ensure(gone); err != nil {
			return err
		}
		return b.Ensure(kept)
	})
	if err != nil {
		t.Fatal(err)
	}
	chain := iptChainName("gone")
	for _, cmd := range []string{"iptables", "ip6tables"} {
		// A jump of an older configuration, as a crash may leave.
		n.exec(t, cmd, "-t", "nat", "-A", "POSTROUTING", "-m", "comment", "--comment", jumpComment("gone", "old"), "-j", chain)
		// The reference plugin's rules for a container of the network.
		ref := legacyChain("gone", "c1")
		comment := fmt.Sprintf("name: %q id: %q", "gone", "c1")
		n.exec(t, cmd, "-t", "nat", "-N", ref)
		n.exec(t, cmd, "-t", "nat", "-A", ref, "-j", "MASQUERADE", "-m", "comment", "--comment", comment)
		n.exec(t, cmd, "-t", "nat", "-A", "POSTROUTING", "-j", ref, "-m", "comment", "--comment", comment)
	}
	save := func() string {
		return n.exec(t, "iptables-save") + n.exec(t, "ip6tables-save")
	}
	before := save()
	for _, want := range []string{chain, "net=gone cfg=old", legacyChain("gone", "c1"), "-o brg", "-o brk"} {
		if !strings.Contains(before, want) {
			t.Fatalf("setup: %q missing:\n%s", want, before)
		}
	}
	child := func(step string) {
		t.Helper()
		cmd := exec.Command(os.Args[0], "-test.run=^TestIPTablesRemoveStartsNoProcess$", "-test.v", "-test.count=1")
		cmd.Env = append(os.Environ(), iptRmNSEnv+"="+n.name, iptRmStepEnv+"="+step, noExecLockEnv+"="+lockDir)
		if out, err := cmd.CombinedOutput(); err != nil || !strings.Contains(string(out), "exec forbidden as expected") {
			t.Fatalf("child (%s) failed: %v\n%s", step, err, out)
		}
	}

	child("gone")
	after := save()
	for _, gone := range []string{chain, "net=gone", legacyChain("gone", "c1"), `id: "c1"`, "-o brg", "-i brg"} {
		if strings.Contains(after, gone) {
			t.Errorf("after removing network gone, %q is still there:\n%s", gone, after)
		}
	}
	for _, kept := range []string{iptChainName("kept"), "net=kept cfg=", "-A " + iptIsolatedChain + " -o brk"} {
		if strings.Count(after, kept) != strings.Count(before, kept) {
			t.Errorf("after removing network gone, %q changed:\nbefore:\n%s\nafter:\n%s", kept, before, after)
		}
	}
	if !strings.Contains(n.ruleset(t), "fd08::/64") {
		t.Errorf("network kept lost its IPv6 rules:\n%s", after)
	}

	child("kept")
	if rs := n.ruleset(t); strings.Contains(strings.ToLower(rs), "flatcni") || strings.Contains(rs, "CNI-") {
		t.Errorf("after removing both networks:\n%s", rs)
	}
}

func iptRmChild(t *testing.T, nsName, step string) {
	n, b := noExecIPTables(t, nsName)
	err := n.do(t, func() error {
		// As the last DEL: the network's rules, then the reference's.
		for range 2 { // idempotent
			if err := b.Remove(step); err != nil {
				return err
			}
			if err := b.RemoveLegacy(step, nil); err != nil {
				return err
			}
		}
		// A network without rules.
		if err := b.Remove("never"); err != nil {
			return err
		}
		return b.RemoveLegacy("never", nil)
	})
	if err != nil {
		t.Fatalf("step %s: %v", step, err)
	}
}

// TestIPTablesRemoveLegacyCommands: where iptables is iptables-legacy,
// netlink sees none of the network's rules but the kernel has legacy
// tables, and Remove and RemoveLegacy delete with the commands as before.
func TestIPTablesRemoveLegacyCommands(t *testing.T) {
	requireRoot(t)
	bin := t.TempDir()
	for cmd, legacyName := range map[string]string{
		"iptables": "iptables-legacy", "ip6tables": "ip6tables-legacy",
		"iptables-save": "iptables-legacy-save", "ip6tables-save": "ip6tables-legacy-save",
	} {
		legacy, err := exec.LookPath(legacyName)
		if err != nil {
			t.Skipf("no %s: %v", legacyName, err)
		}
		if err := os.Symlink(legacy, filepath.Join(bin, cmd)); err != nil {
			t.Fatal(err)
		}
	}
	t.Setenv("PATH", bin+string(os.PathListSeparator)+os.Getenv("PATH"))
	if out, err := exec.Command("iptables", "--version").Output(); err != nil || !strings.Contains(string(out), "legacy") {
		t.Skipf("iptables-legacy unusable: %v %s", err, out)
	}
	n := newTestNS(t, "iptrmleg")
	prepareForward(t, n)
	b, err := New(IPTablesName, WithLockDir(t.TempDir()))
	if err != nil {
		t.Fatal(err)
	}
	net := iptRmNetwork("legacy", "brl", "10.9.0.0/24", "fd09::/64")
	if err := n.do(t, func() error { return b.Ensure(net) }); err != nil {
		t.Fatal(err)
	}
	ref := legacyChain("legacy", "c1")
	comment := fmt.Sprintf("name: %q id: %q", "legacy", "c1")
	n.exec(t, "iptables", "-t", "nat", "-N", ref)
	n.exec(t, "iptables", "-t", "nat", "-A", ref, "-j", "MASQUERADE", "-m", "comment", "--comment", comment)
	n.exec(t, "iptables", "-t", "nat", "-A", "POSTROUTING", "-j", ref, "-m", "comment", "--comment", comment)
	save := func() string { return n.exec(t, "iptables-save") + n.exec(t, "ip6tables-save") }
	if s := save(); !strings.Contains(s, iptChainName("legacy")) || !strings.Contains(s, ref) || !strings.Contains(s, iptIsolatedChain) {
		t.Fatalf("setup: rules missing from iptables-legacy:\n%s", s)
	}
	if rs := n.ruleset(t); strings.Contains(strings.ToLower(rs), "flatcni") {
		t.Fatalf("setup: rules in nftables:\n%s", rs)
	}
	err = n.do(t, func() error {
		if err := b.Remove("legacy"); err != nil {
			return err
		}
		return b.RemoveLegacy("legacy", nil)
	})
	if err != nil {
		t.Fatal(err)
	}
	if s := save(); strings.Contains(strings.ToLower(s), "flatcni") || strings.Contains(s, "CNI-") {
		t.Errorf("iptables-legacy rules left:\n%s", s)
	}
}

// TestIPTablesRemoveLegacyMany: removing the reference's rules of hundreds
// of containers (a GC after switching from the reference) is one netlink
// transaction whose answers overflow the socket after the commit; that
// must not be taken for a failure and sent to the commands (which would
// list both families' chains again with iptables).
func TestIPTablesRemoveLegacyMany(t *testing.T) {
	requireRoot(t)
	requireIPTablesNFT(t, "")
	n := newTestNS(t, "iptrmmany")
	b, err := New(IPTablesName, WithLockDir(t.TempDir()))
	if err != nil {
		t.Fatal(err)
	}
	var in strings.Builder
	in.WriteString("*nat\n")
	for i := range 300 {
		in.WriteString(":" + legacyChain("many", fmt.Sprintf("c%d", i)) + " - [0:0]\n")
	}
	for i := range 300 {
		ref := legacyChain("many", fmt.Sprintf("c%d", i))
		comment := fmt.Sprintf("name: %q id: %q", "many", fmt.Sprintf("c%d", i))
		in.WriteString(restoreLine("-A", ref, "-j", "MASQUERADE", "-m", "comment", "--comment", comment) + "\n")
		in.WriteString(restoreLine("-A", "POSTROUTING", "-j", ref, "-m", "comment", "--comment", comment) + "\n")
	}
	in.WriteString("COMMIT\n")
	if err := n.do(t, func() error { return iptRestore(ipv4, in.String()) }); err != nil {
		t.Fatal(err)
	}
	if got := strings.Count(n.exec(t, "iptables-save"), "CNI-"); got < 900 {
		t.Fatalf("setup: %d mentions of CNI- chains, want 900", got)
	}
	overflowAnswers(t)
	commands := logCommands(t)
	if err := n.do(t, func() error { return b.RemoveLegacy("many", nil) }); err != nil {
		t.Fatal(err)
	}
	if got := commands(); len(got) != 0 {
		t.Errorf("RemoveLegacy of 300 containers' rules started %v, want no process", got)
	}
	if all := n.exec(t, "iptables-save"); strings.Contains(all, "CNI-") {
		t.Errorf("the reference's rules left:\n%s", all)
	}
}
