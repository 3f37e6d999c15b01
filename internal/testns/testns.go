// Package testns gives the project's root tests throwaway named network
// namespaces (ip netns add), so that links, sysctls and firewall rules they
// make never touch the machine's own namespace, and are removed with the
// namespace when the test ends, even on failure.
package testns

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/containernetworking/plugins/pkg/ns"
)

// RequireRoot skips the test unless it can create namespaces.
func RequireRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root to create throwaway network namespaces")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		t.Skip("needs the ip command (iproute2) to create network namespaces")
	}
}

// Suffix returns n random bytes as hex, for names unique to one test run.
func Suffix(t testing.TB, n int) string {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

// NS is a named network namespace made by a test.
type NS struct {
	Name string
	Path string
}

// New creates "flatcni-<purpose>-<random>" with loopback up; it is deleted
// when the test ends (deleting it earlier is fine). FLATCNI_TESTNS_PREFIX,
// when set, replaces "flatcni-" (runs beside each other keep their
// namespaces apart by name).
func New(t testing.TB, purpose string) *NS {
	t.Helper()
	RequireRoot(t)
	prefix := os.Getenv("FLATCNI_TESTNS_PREFIX")
	if prefix == "" {
		prefix = "flatcni-"
	}
	name := prefix + purpose + "-" + Suffix(t, 4)
	if out, err := exec.Command("ip", "netns", "add", name).CombinedOutput(); err != nil {
		t.Fatalf("ip netns add %s: %v: %s", name, err, out)
	}
	n := &NS{Name: name, Path: "/var/run/netns/" + name}
	t.Cleanup(func() {
		if _, err := os.Stat(n.Path); err != nil {
			return
		}
		if out, err := exec.Command("ip", "netns", "del", name).CombinedOutput(); err != nil {
			t.Errorf("ip netns del %s: %v: %s", name, err, out)
		}
	})
	n.MustRun(t, "ip", "link", "set", "lo", "up")
	return n
}

// Delete removes the namespace now (idempotent).
func (n *NS) Delete() { _ = exec.Command("ip", "netns", "del", n.Name).Run() }

// Run runs a command inside the namespace and returns its combined output,
// less the lines "Error: Peer netns reference is invalid." that ip prints
// on stderr for a veth whose peer is in a namespace it cannot name: it
// looks every file of /run/netns up, and one that is no namespace (another
// program's, or being deleted) gives that line each time. They say nothing
// of the namespace, and would make the same links list differently.
func (n *NS) Run(args ...string) (string, error) {
	out, err := exec.Command("ip", append([]string{"netns", "exec", n.Name}, args...)...).CombinedOutput()
	return strings.ReplaceAll(string(out), peerNetnsError, ""), err
}

const peerNetnsError = "Error: Peer netns reference is invalid.\n"

// MustRun is Run that fails the test on error.
func (n *NS) MustRun(t testing.TB, args ...string) string {
	t.Helper()
	out, err := n.Run(args...)
	if err != nil {
		t.Fatalf("in %s: %s: %v\n%s", n.Name, strings.Join(args, " "), err, out)
	}
	return out
}

// Do runs fn on a locked OS thread inside the namespace and returns its
// error; processes fn starts inherit the namespace. Safe from any goroutine.
func Do(path string, fn func() error) error {
	target, err := ns.GetNS(path)
	if err != nil {
		return err
	}
	defer target.Close()
	return target.Do(func(ns.NetNS) error { return fn() })
}

// Do runs fn inside this namespace (see the package function Do).
func (n *NS) Do(fn func() error) error { return Do(n.Path, fn) }

// NeighLLAddr returns the link-layer address of the namespace's neighbour
// entry of ip on dev, "" when it has none.
func (n *NS) NeighLLAddr(t testing.TB, dev, ip string) string {
	t.Helper()
	out := n.MustRun(t, "ip", "-j", "neigh", "show", "to", ip, "dev", dev)
	var entries []struct {
		Dst    string `json:"dst"`
		LLAddr string `json:"lladdr"`
	}
	if err := json.Unmarshal([]byte(strings.TrimSpace(out)), &entries); err != nil {
		t.Fatalf("ip -j neigh in %s: %v: %s", n.Name, err, out)
	}
	for _, e := range entries {
		if e.Dst == ip {
			return e.LLAddr
		}
	}
	return ""
}
