package integration

import (
	"bytes"
	"os"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// relKillWhen starts a plugin like relStart and SIGKILLs its process group
// as soon as one of its processes (an iptables the plugin runs, say) has a
// command line that match accepts; it reports whether it was killed, or
// false when the plugin finished first.
func relKillWhen(t *testing.T, n *Node, plugin, command, id, netns string, conf []byte, match func(cmdline string) bool) bool {
	t.Helper()
	var out bytes.Buffer
	cmd, err := relStart(n, plugin, command, id, netns, "eth0", conf, &out)
	if err != nil {
		t.Fatalf("start %s %s: %v", plugin, command, err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	pgid := cmd.Process.Pid
	deadline := time.After(2 * time.Minute)
	for {
		select {
		case <-done:
			return false
		case <-deadline:
			_ = syscall.Kill(-pgid, syscall.SIGKILL)
			<-done
			t.Fatalf("%s %s did not finish", plugin, command)
		default:
		}
		entries, _ := os.ReadDir("/proc")
		for _, e := range entries {
			pid, err := strconv.Atoi(e.Name())
			if err != nil || pid == pgid {
				continue
			}
			if g, err := syscall.Getpgid(pid); err != nil || g != pgid {
				continue
			}
			b, _ := os.ReadFile("/proc/" + e.Name() + "/cmdline")
			if match(strings.ReplaceAll(string(b), "\x00", " ")) {
				_ = syscall.Kill(-pgid, syscall.SIGKILL)
				<-done
				return true
			}
		}
		time.Sleep(200 * time.Microsecond)
	}
}

// relRemoveFilterPart deletes the network's part of the filter table with
// the iptables commands, in the order the iptables backend's removal on
// iptables-legacy does (jump, flush, chain): what a DEL killed when it
// reaches the nat table leaves.
func relRemoveFilterPart(t *testing.T, n *Node, network string) {
	t.Helper()
	jump := regexp.MustCompile(`^-A FORWARD -m comment --comment "(flatcni net=` + regexp.QuoteMeta(network) + ` cfg=[^"]*)" -j (FLATCNI-\S+)$`)
	chain := ""
	for _, l := range strings.Split(n.MustRun(t, "iptables", "-t", "filter", "-S", "FORWARD"), "\n") {
		if m := jump.FindStringSubmatch(strings.TrimSpace(l)); m != nil {
			n.MustRun(t, "iptables", "-t", "filter", "-D", "FORWARD", "-m", "comment", "--comment", m[1], "-j", m[2])
			chain = m[2]
		}
	}
	if chain == "" {
		t.Fatalf("no jump of network %s in filter FORWARD", network)
	}
	n.MustRun(t, "iptables", "-t", "filter", "-F", chain)
	n.MustRun(t, "iptables", "-t", "filter", "-X", chain)
}

// relNATRules returns the network's rules in the nat table of the node.
func relNATRules(t *testing.T, n *Node, network string) []string {
	t.Helper()
	var out []string
	for _, l := range strings.Split(n.MustRun(t, "iptables-save", "-t", "nat"), "\n") {
		if strings.HasPrefix(l, "-A ") && strings.Contains(l, "flatcni net="+network) {
			out = append(out, l)
		}
	}
	return out
}

// TestCrashRefillingRules: with the iptables backend, a DEL killed while it
// removes the network's rules (the filter table's part gone, the nat
// table's still whole) and then an ADD killed while it writes them again
// must not leave the network with a jump to an empty or partial chain: the
// next ADD takes rules whose jumps exist for complete. The kills are made
// at the iptables commands of those steps, not at random moments. (On
// iptables-nft, whose DEL starts no iptables, the killed DEL's state is
// made with the commands instead.)
func TestCrashRefillingRules(t *testing.T) {
	e := newRelEnv(t)
	conf := relConf(strings.Replace(relConcConf, "%s", "iptables", 1), e.dataDir, "refill", "br-refill")
	conts := []*Netns{NewNetns(t, "c"), NewNetns(t, "c"), NewNetns(t, "c")}
	if out, err := e.node.Exec(t, "bridge", "ADD", "a", conts[0].Path, "eth0", conf); err != nil {
		t.Fatalf("ADD: %v\n%s", err, out)
	}
	want := relNATRules(t, e.node, "refill")
	if !strings.Contains(strings.Join(want, "\n"), "MASQUERADE") {
		t.Fatalf("no masquerade rule after ADD: %q", want)
	}
	iptables := func(c string) bool { return strings.Contains(c, "iptables") }
	if strings.Contains(e.node.MustRun(t, "iptables", "--version"), "nf_tables") {
		// On iptables-nft the DEL removes the rules in one netlink
		// transaction, and cannot be killed half-way. The state such a
		// kill leaves on iptables-legacy is made with the commands.
		relRemoveFilterPart(t, e.node, "refill")
	} else if !relKillWhen(t, e.node, "bridge", "DEL", "a", conts[0].Path, conf, func(c string) bool {
		return iptables(c) && strings.Contains(c, "-t nat")
	}) {
		t.Fatal("DEL finished before it reached the nat table")
	}
	killed := relKillWhen(t, e.node, "bridge", "ADD", "b", conts[1].Path, conf, func(c string) bool {
		return iptables(c) && strings.Contains(c, "-t nat") && strings.Contains(c, " -A FLATCNI")
	})
	t.Logf("ADD killed while appending to the nat chain: %v", killed)
	if out, err := e.node.Exec(t, "bridge", "ADD", "c", conts[2].Path, "eth0", conf); err != nil {
		t.Fatalf("ADD after the crashes: %v\n%s", err, out)
	}
	if got := relNATRules(t, e.node, "refill"); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("nat rules of the network after the crashes and an ADD:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	for i, id := range []string{"a", "b", "c"} {
		if out, err := e.node.Exec(t, "bridge", "DEL", id, conts[i].Path, "eth0", conf); err != nil {
			t.Errorf("DEL %s: %v\n%s", id, err, out)
		}
	}
	if got := relNATRules(t, e.node, "refill"); len(got) > 0 {
		t.Errorf("nat rules left after the last DEL: %q", got)
	}
}
