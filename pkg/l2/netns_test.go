package l2

import (
	"crypto/rand"
	"encoding/hex"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/containernetworking/plugins/pkg/ns"
)

// requireRoot skips a test that changes the kernel's network state.
func requireRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("skipped: needs root to create throwaway network namespaces")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		t.Skip("skipped: needs the ip command (iproute2) to build the test topology")
	}
}

// randomSuffix returns n random bytes as hex.
func randomSuffix(t *testing.T, n int) string {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

// newNetns creates a throwaway named network namespace, removed (with all it
// holds) when the test ends, and returns its name.
func newNetns(t *testing.T, purpose string) string {
	t.Helper()
	name := "flatcni-l2-" + purpose + "-" + randomSuffix(t, 4)
	run(t, "ip", "netns", "add", name)
	t.Cleanup(func() {
		if out, err := exec.Command("ip", "netns", "del", name).CombinedOutput(); err != nil {
			t.Errorf("remove netns %s: %v: %s", name, err, out)
		}
	})
	run(t, "ip", "-n", name, "link", "set", "lo", "up")
	return name
}

// run runs a command that must succeed and returns its output.
func run(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v: %s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// inNetns runs f on an OS thread that is inside the named namespace.
func inNetns(t *testing.T, name string, f func() error) error {
	t.Helper()
	netns, err := ns.GetNS("/var/run/netns/" + name)
	if err != nil {
		t.Fatalf("open netns %s: %v", name, err)
	}
	defer netns.Close()
	return netns.Do(func(ns.NetNS) error { return f() })
}

// pingOK reports whether one ICMP echo from namespace from to addr is
// answered within a second.
func pingOK(nsName, addr string) bool {
	return exec.Command("ip", "netns", "exec", nsName, "ping", "-n", "-q", "-c1", "-W1", addr).Run() == nil
}

// topology is a node namespace with bridge br0 and container namespaces
// each plugged into it with a veth pair: eth0 inside, a host end on br0.
type topology struct {
	node       string
	containers []container
}

type container struct {
	netns    string
	hostVeth string
	addr     string // without prefix length
}

// newTopology builds a node namespace with bridge br0 holding gw/24 and one
// container namespace per address in addrs, all on one subnet.
func newTopology(t *testing.T, purpose, gw string, addrs ...string) topology {
	t.Helper()
	top := topology{node: newNetns(t, purpose+"n")}
	run(t, "ip", "-n", top.node, "link", "add", "br0", "type", "bridge")
	run(t, "ip", "-n", top.node, "addr", "add", gw+"/24", "dev", "br0")
	run(t, "ip", "-n", top.node, "link", "set", "br0", "up")
	for _, addr := range addrs {
		c := container{netns: newNetns(t, purpose+"c"), hostVeth: "veth" + randomSuffix(t, 4), addr: addr}
		run(t, "ip", "-n", top.node, "link", "add", c.hostVeth, "type", "veth", "peer", "name", "eth0", "netns", c.netns)
		run(t, "ip", "-n", top.node, "link", "set", c.hostVeth, "master", "br0", "up")
		run(t, "ip", "-n", c.netns, "addr", "add", addr+"/24", "dev", "eth0")
		run(t, "ip", "-n", c.netns, "link", "set", "eth0", "up")
		top.containers = append(top.containers, c)
	}
	return top
}
