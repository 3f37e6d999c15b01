package integration

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/containernetworking/cni/libcni"
	"github.com/containernetworking/cni/pkg/types"

	"github.com/flatcni/plugins/internal/testns"
)

// binDir is where our built plugins are (make test exports FLATCNI_BIN).
func binDir(t testing.TB) string {
	t.Helper()
	dir := os.Getenv("FLATCNI_BIN")
	if dir == "" {
		dir, _ = filepath.Abs("../bin")
	}
	for _, p := range []string{"bridge", "host-local"} {
		if _, err := os.Stat(filepath.Join(dir, p)); err != nil {
			t.Fatalf("plugin %s not built in %s (run make build): %v", p, dir, err)
		}
	}
	return dir
}

// refBinDir is where the reference plugins are built, or "" (test skips).
func refBinDir(t testing.TB) string {
	for _, dir := range []string{os.Getenv("FLATCNI_REF_BIN"), "../.bench/ref-v1.9.1"} {
		if dir == "" {
			continue
		}
		if _, err := os.Stat(filepath.Join(dir, "host-local")); err == nil {
			abs, _ := filepath.Abs(dir)
			return abs
		}
	}
	t.Skip("reference plugins not built (make reference)")
	return ""
}

func requireRoot(t testing.TB) {
	t.Helper()
	testns.RequireRoot(t)
}

// uniq returns a short random suffix for names made by one test run.
func uniq() string {
	var b [3]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// Netns is a named network namespace made by a test (ip netns add).
type Netns struct{ *testns.NS }

// NewNetns makes a namespace "flatcni-it-<role>-<random>", removed at cleanup.
func NewNetns(t testing.TB, role string) *Netns {
	t.Helper()
	return &Netns{testns.New(t, "it-"+role)}
}

// Do runs fn on a locked OS thread inside the namespace; processes started by
// fn (plugins exec'd by libcni) inherit it.
func (n *Netns) Do(t testing.TB, fn func() error) error {
	t.Helper()
	return n.NS.Do(fn)
}

// Node is a throwaway node: a namespace where the plugins run, a directory
// for network configurations and leases.
type Node struct {
	*Netns
	Dir     string // temp dir: conf/ and leases/
	ConfDir string
	Bin     string
}

func NewNode(t testing.TB) *Node {
	t.Helper()
	n := &Node{Netns: NewNetns(t, "node"), Dir: t.TempDir(), Bin: binDir(t)}
	n.ConfDir = filepath.Join(n.Dir, "conf")
	if err := os.MkdirAll(n.ConfDir, 0o755); err != nil {
		t.Fatal(err)
	}
	return n
}

// LeaseDir is a dataDir for host-local inside the node's temp dir.
func (n *Node) LeaseDir() string { return filepath.Join(n.Dir, "leases") }

// WriteConfList writes a network configuration list for cnitool and returns it.
func (n *Node) WriteConfList(t testing.TB, name string, conflist []byte) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(n.ConfDir, name+".conflist"), conflist, 0o644); err != nil {
		t.Fatal(err)
	}
}

// CNITool runs "cnitool <verb> <net> <netns>" inside the node.
func (n *Node) CNITool(t testing.TB, verb, network, netnsPath string, env ...string) (string, error) {
	t.Helper()
	tool, err := exec.LookPath("cnitool")
	if err != nil {
		gopath := strings.TrimSpace(goEnv("GOPATH"))
		tool = filepath.Join(gopath, "bin", "cnitool")
	}
	cmd := exec.Command("ip", "netns", "exec", n.Name, tool, verb, network, netnsPath)
	cmd.Env = append(os.Environ(), "NETCONFPATH="+n.ConfDir, "CNI_PATH="+n.Bin)
	cmd.Env = append(cmd.Env, env...)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func goEnv(key string) string {
	out, _ := exec.Command("go", "env", key).Output()
	return string(out)
}

// Exec runs one plugin binary inside the node with the CNI environment and
// conf on stdin, like a runtime; stdout is returned, and a non-zero exit is an
// error holding the CNI error JSON.
func (n *Node) Exec(t testing.TB, plugin, command, containerID, netnsPath, ifname string, conf []byte, extraEnv ...string) ([]byte, error) {
	t.Helper()
	// A call that hangs (a FIFO opened blocking, say) fails the test instead
	// of stopping the run.
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "ip", "netns", "exec", n.Name, filepath.Join(n.Bin, plugin))
	cmd.Env = append(os.Environ(),
		"CNI_COMMAND="+command, "CNI_CONTAINERID="+containerID, "CNI_NETNS="+netnsPath,
		"CNI_IFNAME="+ifname, "CNI_PATH="+n.Bin)
	cmd.Env = append(cmd.Env, extraEnv...)
	cmd.Stdin = bytes.NewReader(conf)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.Bytes(), fmt.Errorf("%s %s: %v: %s%s", plugin, command, err, stdout.String(), stderr.String())
	}
	return stdout.Bytes(), nil
}

// CNIError decodes the CNI error a failed plugin printed on stdout.
func CNIError(t testing.TB, stdout []byte) *types.Error {
	t.Helper()
	var e types.Error
	if err := json.Unmarshal(stdout, &e); err != nil || e.Code == 0 {
		t.Fatalf("expected CNI error JSON on stdout, got %q (%v)", stdout, err)
	}
	return &e
}

// LibCNI returns a libcni runtime that execs our plugins (from inside the node
// when called within n.Do).
func (n *Node) LibCNI() *libcni.CNIConfig {
	return libcni.NewCNIConfig([]string{n.Bin}, nil)
}

// RuntimeConf is what a runtime passes libcni for one attachment.
func RuntimeConf(containerID string, netns *Netns, ifname string) *libcni.RuntimeConf {
	return &libcni.RuntimeConf{ContainerID: containerID, NetNS: netns.Path, IfName: ifname}
}
