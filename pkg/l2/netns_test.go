package l2

import (
	"os/exec"
	"strings"
	"testing"

	"github.com/flatcni/plugins/internal/testns"
)

// requireRoot skips a test that changes the kernel's network state.
func requireRoot(t *testing.T) {
	t.Helper()
	testns.RequireRoot(t)
}

// randomSuffix returns n random bytes as hex.
func randomSuffix(t *testing.T, n int) string {
	t.Helper()
	return testns.Suffix(t, n)
}

// newNetns creates a throwaway named network namespace, removed (with all it
// holds) when the test ends, and returns its name.
func newNetns(t *testing.T, purpose string) string {
	t.Helper()
	return testns.New(t, "l2-"+purpose).Name
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
	return testns.Do("/var/run/netns/"+name, f)
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
