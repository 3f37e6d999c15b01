package integration

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// relKillAfter starts a plugin and SIGKILLs its process group (the plugin
// and the IPAM plugin it runs) after delay; it reports whether the plugin
// was still running when killed.
func relKillAfter(t *testing.T, n *Node, plugin, command, id, netns string, conf []byte, delay time.Duration) bool {
	t.Helper()
	var out bytes.Buffer
	cmd, err := relStart(n, plugin, command, id, netns, "eth0", conf, &out)
	if err != nil {
		t.Fatalf("start %s %s: %v", plugin, command, err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case <-done:
		return false
	case <-time.After(delay):
	}
	_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	err = <-done
	ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus)
	return err != nil && ok && ws.Signaled()
}

// relLeaseFilesWhole checks only that every lease file is complete (what
// must hold at any moment, even right after a crash).
func relLeaseFilesWhole(t *testing.T, dir string) {
	t.Helper()
	for _, p := range relHalfWritten(dir) {
		t.Error(p)
	}
}

// TestCrashDuringAdd kills the bridge plugin (with its host-local child) at
// random moments of ADD, and sometimes the DEL that follows, as a node
// losing processes would. After each crash the runtime's DEL must leave no
// lease, link or rule, and the lease store must never hold a half-written
// lease or an index that disagrees with the lease files. At the end GC
// finds nothing left either. Both masquerade backends are used in turn.
func TestCrashDuringAdd(t *testing.T) {
	const rounds = 50
	e := newRelEnv(t)
	confs := map[string][]byte{}
	var span time.Duration // the longest warm-up ADD: kills land anywhere in an ADD
	for _, b := range []string{"iptables", "nftables"} {
		confs[b] = relConf(strings.Replace(relConcConf, "%s", b, 1), e.dataDir, "crash", "br-crash")
		start := time.Now()
		out, err := e.node.Exec(t, "bridge", "ADD", "warm", e.cont.Path, "eth0", confs[b])
		span = max(span, time.Since(start)*5/4, 30*time.Millisecond)
		if err != nil {
			t.Fatalf("warm-up ADD (%s): %v\n%s", b, err, out)
		}
		if out, err := e.node.Exec(t, "bridge", "DEL", "warm", e.cont.Path, "eth0", confs[b]); err != nil {
			t.Fatalf("warm-up DEL (%s): %v\n%s", b, err, out)
		}
	}
	relSettle(t, e.node, "br-crash")
	baseline := e.node.Snapshot(t)
	leaseDir := filepath.Join(e.dataDir, "crash")
	// A second container stays attached throughout: crashes must not
	// disturb its lease, link or rules.
	keeper := NewNetns(t, "keep")

	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 1))
	killedAdd, killedDel := 0, 0
	for i := 0; i < rounds; i++ {
		backend := []string{"iptables", "nftables"}[i%2]
		conf := confs[backend]
		id := "crash-" + uniq()
		if i == rounds/2 {
			if out, err := e.node.Exec(t, "bridge", "ADD", "keeper", keeper.Path, "eth0", conf); err != nil {
				t.Fatalf("keeper ADD: %v\n%s", err, out)
			}
		}
		if relKillAfter(t, e.node, "bridge", "ADD", id, e.cont.Path, conf, time.Duration(rng.Int64N(int64(span)))) {
			killedAdd++
		}
		relLeaseFilesWhole(t, leaseDir)
		if rng.IntN(3) == 0 && relKillAfter(t, e.node, "bridge", "DEL", id, e.cont.Path, conf, time.Duration(rng.Int64N(int64(span)))) {
			killedDel++
			relLeaseFilesWhole(t, leaseDir)
		}
		if out, err := e.node.Exec(t, "bridge", "DEL", id, e.cont.Path, "eth0", conf); err != nil {
			t.Fatalf("round %d (%s): DEL after the crash: %v\n%s", i, backend, err, out)
		}
		if out := e.cont.MustRun(t, "ip", "-o", "link", "show"); strings.Contains(out, "eth0") {
			t.Errorf("round %d: container still has eth0 after DEL:\n%s", i, out)
		}
		if probs := relLeaseProblems(leaseDir); len(probs) > 0 {
			t.Errorf("round %d: lease store: %s", i, strings.Join(probs, "; "))
		}
		if leases := relLeasesOf(leaseDir, id); len(leases) > 0 {
			t.Errorf("round %d: %s still holds %v after DEL", i, id, leases)
		}
		if i < rounds/2 {
			relSettle(t, e.node, "br-crash")
			RequireSame(t, baseline, e.node.Snapshot(t))
		}
		if t.Failed() {
			t.Fatalf("round %d failed (%s, ADD killed %d times so far)", i, backend, killedAdd)
		}
	}
	t.Logf("kills within %v of the start", span)
	t.Logf("%d rounds: ADD killed %d times, DEL killed %d times (the rest finished before the kill)", rounds, killedAdd, killedDel)

	// The keeper is not valid any more: GC must take its lease, link and rules.
	if err := relGC(t, e.node, confs["iptables"], nil); err != nil {
		t.Fatalf("GC: %v", err)
	}
	keeper.Delete() // its namespace is gone, as after a container crash: GC removes the host veth
	if err := relGC(t, e.node, confs["iptables"], nil); err != nil {
		t.Fatalf("GC: %v", err)
	}
	if err := relGC(t, e.node, confs["nftables"], nil); err != nil {
		t.Fatalf("GC (nftables): %v", err)
	}
	relSettle(t, e.node, "br-crash")
	RequireSame(t, baseline, e.node.Snapshot(t))
	if probs := relLeaseProblems(leaseDir); len(probs) > 0 {
		t.Errorf("lease store after GC: %s", strings.Join(probs, "; "))
	}
	if tmp, _ := filepath.Glob(filepath.Join(leaseDir, ".flatcni", "tmp.*")); len(tmp) > 0 {
		t.Errorf("temporary files left by crashed writers: %v", tmp)
	}
}

// TestCrashHostLocal kills host-local itself at random moments of ADD and
// DEL (it is fast: the window is a few milliseconds) and checks the lease
// store after each crash and after the DEL that follows.
func TestCrashHostLocal(t *testing.T) {
	const rounds = 50
	e := newRelEnv(t)
	conf := relConf(`{"cniVersion":"1.0.0","name":"hlcrash","type":"bridge","ipam":{"type":"host-local","dataDir":"@DATA@","ranges":[[{"subnet":"10.89.0.0/24"}],[{"subnet":"fd89::/120"}]]}}`, e.dataDir, "", "")
	leaseDir := filepath.Join(e.dataDir, "hlcrash")
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 2))
	// Some attachments stay, so that the store is not empty.
	for i := 0; i < 5; i++ {
		if out, err := e.node.Exec(t, "host-local", "ADD", "stay-"+uniq(), e.cont.Path, "eth0", conf); err != nil {
			t.Fatalf("ADD: %v\n%s", err, out)
		}
	}
	before := relLeaseCount(leaseDir)
	killed := 0
	for i := 0; i < rounds; i++ {
		id := "hl-" + uniq()
		if relKillAfter(t, e.node, "host-local", "ADD", id, e.cont.Path, conf, time.Duration(rng.IntN(4000))*time.Microsecond) {
			killed++
		}
		relLeaseFilesWhole(t, leaseDir)
		if rng.IntN(2) == 0 {
			// A retried ADD (what a runtime may do) gets a full result.
			out, err := e.node.Exec(t, "host-local", "ADD", id, e.cont.Path, "eth0", conf)
			if err != nil {
				t.Fatalf("round %d: ADD after the crash: %v\n%s", i, err, out)
			}
			if a := relAddrs(t, relResult(t, out)); len(a) != 2 {
				t.Fatalf("round %d: retried ADD gave %v, want an IPv4 and an IPv6 address", i, a)
			}
			if rng.IntN(2) == 0 && relKillAfter(t, e.node, "host-local", "DEL", id, e.cont.Path, conf, time.Duration(rng.IntN(4000))*time.Microsecond) {
				killed++
				relLeaseFilesWhole(t, leaseDir)
			}
		}
		if out, err := e.node.Exec(t, "host-local", "DEL", id, e.cont.Path, "eth0", conf); err != nil {
			t.Fatalf("round %d: DEL after the crash: %v\n%s", i, err, out)
		}
		if probs := relLeaseProblems(leaseDir); len(probs) > 0 {
			t.Fatalf("round %d: lease store: %s", i, strings.Join(probs, "; "))
		}
		if leases := relLeasesOf(leaseDir, id); len(leases) > 0 {
			t.Fatalf("round %d: %s still holds %v after DEL", i, id, leases)
		}
	}
	if got := relLeaseCount(leaseDir); got != before {
		t.Errorf("%d leases after the crashes, want the %d that stayed", got, before)
	}
	t.Logf("%d rounds, %d kills while running", rounds, killed)
}

// relLeasesOf lists the lease files held by a container.
func relLeasesOf(dir, id string) []string {
	var out []string
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if b, err := os.ReadFile(filepath.Join(dir, e.Name())); err == nil && strings.HasPrefix(string(b), id+"\r\n") {
			out = append(out, e.Name())
		}
	}
	return out
}

// relLeaseCount counts lease files.
func relLeaseCount(dir string) int {
	n := 0
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if b, err := os.ReadFile(filepath.Join(dir, e.Name())); err == nil && strings.Contains(string(b), "\r\n") {
			n++
		}
	}
	return n
}

// TestRuntimeRetries covers what runtimes do after failures and reboots: DEL
// before any ADD, DEL repeated, DEL after the container's namespace is gone,
// and an ADD retried after a success. DEL never fails on what is already
// gone, and nothing is left afterwards.
func TestRuntimeRetries(t *testing.T) {
	e := newRelEnv(t)
	conf := relConf(strings.Replace(relConcConf, "%s", "nftables", 1), e.dataDir, "retry", "br-retry")
	leaseDir := filepath.Join(e.dataDir, "retry")
	run := func(command, id string, netns *Netns) ([]byte, error) {
		return e.node.Exec(t, "bridge", command, id, netns.Path, "eth0", conf)
	}

	t.Run("DEL before ADD creates nothing", func(t *testing.T) {
		before := e.node.Snapshot(t)
		if out, err := run("DEL", "never-added", e.cont); err != nil {
			t.Fatalf("DEL: %v\n%s", err, out)
		}
		RequireSame(t, before, e.node.Snapshot(t))
		if _, err := os.Stat(leaseDir); !os.IsNotExist(err) {
			t.Errorf("DEL created the lease directory %s (%v)", leaseDir, err)
		}
	})

	if out, err := run("ADD", "warm", e.cont); err != nil {
		t.Fatalf("warm-up ADD: %v\n%s", err, out)
	}
	if out, err := run("DEL", "warm", e.cont); err != nil {
		t.Fatalf("warm-up DEL: %v\n%s", err, out)
	}
	relSettle(t, e.node, "br-retry")
	baseline := e.node.Snapshot(t)

	t.Run("DEL twice", func(t *testing.T) {
		if out, err := run("ADD", "twice", e.cont); err != nil {
			t.Fatalf("ADD: %v\n%s", err, out)
		}
		for i := 0; i < 2; i++ {
			if out, err := run("DEL", "twice", e.cont); err != nil {
				t.Fatalf("DEL %d: %v\n%s", i+1, err, out)
			}
		}
		relSettle(t, e.node, "br-retry")
		RequireSame(t, baseline, e.node.Snapshot(t))
	})

	t.Run("DEL after the namespace is gone", func(t *testing.T) {
		c := NewNetns(t, "gone")
		if out, err := run("ADD", "gone", c); err != nil {
			t.Fatalf("ADD: %v\n%s", err, out)
		}
		c.Delete()
		for i := 0; i < 2; i++ {
			if out, err := run("DEL", "gone", c); err != nil {
				t.Fatalf("DEL %d with the namespace gone: %v\n%s", i+1, err, out)
			}
		}
		if leases := relLeasesOf(leaseDir, "gone"); len(leases) > 0 {
			t.Errorf("leases left: %v", leases)
		}
		relSettle(t, e.node, "br-retry")
		RequireSame(t, baseline, e.node.Snapshot(t))
	})

	t.Run("ADD retried after success", func(t *testing.T) {
		first, err := run("ADD", "again", e.cont)
		if err != nil {
			t.Fatalf("ADD: %v\n%s", err, first)
		}
		second, err := run("ADD", "again", e.cont)
		if err == nil {
			if a, b := relAddrs(t, relResult(t, first)), relAddrs(t, relResult(t, second)); fmt.Sprint(a) != fmt.Sprint(b) {
				t.Errorf("retried ADD moved the container from %v to %v", a, b)
			}
		} else {
			t.Logf("retried ADD refused: %s", CNIError(t, second).Error())
		}
		if leases := relLeasesOf(leaseDir, "again"); len(leases) != 1 {
			t.Errorf("after a retried ADD the container holds %v, want one lease", leases)
		}
		if out, err := run("DEL", "again", e.cont); err != nil {
			t.Fatalf("DEL: %v\n%s", err, out)
		}
		relSettle(t, e.node, "br-retry")
		RequireSame(t, baseline, e.node.Snapshot(t))
		if probs := relLeaseProblems(leaseDir); len(probs) > 0 {
			t.Errorf("lease store: %s", strings.Join(probs, "; "))
		}
	})
}
