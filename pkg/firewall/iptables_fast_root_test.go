package firewall

import (
	"errors"
	"os"
	"os/exec"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

const iptFastNSEnv = "FLATCNI_FW_IPTFAST_NS"

// TestIPTablesEnsureHotPathStartsNoProcess: once a network's rules exist, an
// Ensure (every ADD) reads them through netlink on iptables-nft and starts
// no iptables process. The second Ensure runs in a child where exec fails.
func TestIPTablesEnsureHotPathStartsNoProcess(t *testing.T) {
	requireRoot(t)
	if nsName := os.Getenv(iptFastNSEnv); nsName != "" {
		iptFastChild(t, nsName)
		return
	}
	requireIPTablesNFT(t, "the hot path falls back to running iptables")
	n := newTestNS(t, "iptfast")
	lockDir := t.TempDir()
	b, err := New(IPTablesName, WithLockDir(lockDir))
	if err != nil {
		t.Fatal(err)
	}
	net := testNetwork("fast", "br0", "10.7.0.0/24", "fd07::/64")
	if err := n.do(t, func() error { return b.Ensure(net) }); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestIPTablesEnsureHotPathStartsNoProcess$", "-test.v", "-test.count=1")
	cmd.Env = append(os.Environ(), iptFastNSEnv+"="+n.name, noExecLockEnv+"="+lockDir)
	if out, err := cmd.CombinedOutput(); err != nil || !strings.Contains(string(out), "exec forbidden as expected") {
		t.Fatalf("child failed: %v\n%s", err, out)
	}
}

// noExecIPTables is the start of a child test process that may start no
// other process: exec is forbidden (a seccomp filter), and it returns the
// node namespace nsName and an iptables backend with the lock directory
// its parent gave.
func noExecIPTables(t *testing.T, nsName string) (*testNS, Backend) {
	t.Helper()
	if err := forbidExec(); err != nil {
		t.Fatalf("install seccomp filter: %v", err)
	}
	if err := exec.Command("/bin/true").Run(); !errors.Is(err, unix.EPERM) {
		t.Fatalf("exec not forbidden: %v", err)
	}
	t.Log("exec forbidden as expected")
	n := &testNS{name: nsName}
	var err error
	if n.ns, err = nsGet(nsName); err != nil {
		t.Fatal(err)
	}
	b, err := New(IPTablesName, WithLockDir(os.Getenv(noExecLockEnv)))
	if err != nil {
		t.Fatal(err)
	}
	return n, b
}

func iptFastChild(t *testing.T, nsName string) {
	n, b := noExecIPTables(t, nsName)
	if err := n.do(t, func() error { return b.Ensure(testNetwork("fast", "br0", "10.7.0.0/24", "fd07::/64")) }); err != nil {
		t.Fatalf("Ensure of an up-to-date network needed a process: %v", err)
	}
}
