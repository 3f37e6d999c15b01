package firewall

import (
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/containernetworking/plugins/pkg/ns"

	"github.com/flatcni/plugins/internal/testns"
)

// requireRoot skips tests that need to create network namespaces.
func requireRoot(t *testing.T) {
	t.Helper()
	testns.RequireRoot(t)
}

// testNS is a throwaway network namespace made with `ip netns add`.
type testNS struct {
	name string
	ns   ns.NetNS
}

// newTestNS creates a namespace named flatcni-fw-<purpose>-<random>, removed
// when the test ends.
func newTestNS(t *testing.T, purpose string) *testNS {
	t.Helper()
	made := testns.New(t, "fw-"+purpose)
	n, err := ns.GetNS(made.Path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close() })
	return &testNS{name: made.Name, ns: n}
}

// do runs fn on a thread inside the namespace.
func (n *testNS) do(t *testing.T, fn func() error) error {
	t.Helper()
	return n.ns.Do(func(ns.NetNS) error { return fn() })
}

// exec runs a command inside the namespace and returns its output.
func (n *testNS) exec(t *testing.T, args ...string) string {
	t.Helper()
	return run(t, append([]string{"ip", "netns", "exec", n.name}, args...)...)
}

// ruleset returns the namespace's whole netfilter ruleset (iptables here is
// iptables-nft, so nft shows both backends' rules).
func (n *testNS) ruleset(t *testing.T) string {
	t.Helper()
	return n.exec(t, "nft", "list", "ruleset")
}

func run(t *testing.T, args ...string) string {
	t.Helper()
	out, err := exec.Command(args[0], args[1:]...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s: %v: %s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// backendsForTest returns each real backend with a private lock directory.
func backendsForTest(t *testing.T) []Backend {
	t.Helper()
	var out []Backend
	for _, name := range []string{IPTablesName, NFTablesName} {
		b, err := New(name, WithLockDir(t.TempDir()))
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, b)
	}
	return out
}

func writeFile(path, content string) error {
	return os.WriteFile(path, []byte(content), 0o600)
}

func nsGet(name string) (ns.NetNS, error) {
	return ns.GetNS("/run/netns/" + name)
}

// requireIPTablesNFT skips the test unless the node's iptables is
// iptables-nft, saying why the test needs it (why may be "").
func requireIPTablesNFT(t *testing.T, why string) {
	t.Helper()
	if out, _ := exec.Command("iptables", "--version").Output(); !strings.Contains(string(out), "nf_tables") {
		if why != "" {
			why = ": " + why
		}
		t.Skip("iptables is not iptables-nft here" + why)
	}
}
