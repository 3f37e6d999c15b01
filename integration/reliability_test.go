package integration

// Helpers shared by the reliability tests (bad input, concurrency, crashes,
// full disks). Names start with "rel" so they do not collide with other
// tests of the package.

import (
	"bytes"
	"encoding/json"
	"fmt"
	"github.com/flatcni/plugins/pkg/ipam/disk"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	current "github.com/containernetworking/cni/pkg/types/100"
)

// relEnv is what one reliability test works in: a node, a container
// namespace and a lease directory.
type relEnv struct {
	node    *Node
	cont    *Netns
	dataDir string
}

func newRelEnv(t *testing.T) *relEnv {
	t.Helper()
	requireRoot(t)
	n := NewNode(t)
	return &relEnv{node: n, cont: NewNetns(t, "cont"), dataDir: n.LeaseDir()}
}

// relConf fills a configuration template: @DATA@ is the lease directory,
// @NET@ the network name, @BR@ the bridge name.
func relConf(tmpl, dataDir, network, bridge string) []byte {
	return []byte(strings.NewReplacer("@DATA@", dataDir, "@NET@", network, "@BR@", bridge).Replace(tmpl))
}

// relResult decodes an ADD result.
func relResult(t testing.TB, out []byte) *current.Result {
	t.Helper()
	var r current.Result
	if err := json.Unmarshal(out, &r); err != nil {
		t.Fatalf("decode ADD result %q: %v", out, err)
	}
	return &r
}

// relAddrs returns the addresses of an ADD result.
func relAddrs(t testing.TB, r *current.Result) []netip.Prefix {
	t.Helper()
	var out []netip.Prefix
	for _, ipc := range r.IPs {
		a, ok := netip.AddrFromSlice(ipc.Address.IP)
		if !ok {
			t.Fatalf("bad address in result: %v", ipc.Address)
		}
		ones, _ := ipc.Address.Mask.Size()
		out = append(out, netip.PrefixFrom(a.Unmap(), ones))
	}
	return out
}

// relStart starts a plugin in the node like Node.Exec, in a process group of
// its own (so that it and the IPAM plugin it execs can be killed together).
func relStart(n *Node, plugin, command, containerID, netnsPath, ifname string, conf []byte, stdout *bytes.Buffer) (*exec.Cmd, error) {
	cmd := exec.Command("ip", "netns", "exec", n.Name, filepath.Join(n.Bin, plugin))
	cmd.Env = append(os.Environ(),
		"CNI_COMMAND="+command, "CNI_CONTAINERID="+containerID, "CNI_NETNS="+netnsPath,
		"CNI_IFNAME="+ifname, "CNI_PATH="+n.Bin)
	cmd.Stdin = bytes.NewReader(conf)
	cmd.Stdout = stdout
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	return cmd, cmd.Start()
}

// relLeaseProblems checks a network's lease directory (disk.Check: leases and
// index agree) and that no lease file is half-written.
func relLeaseProblems(dir string) []string {
	return append(disk.Check(dir), relHalfWritten(dir)...)
}

// relHalfWritten lists lease files without "\r\n<ifname>": our plugins always
// write both parts, so such a file would be half-written.
func relHalfWritten(dir string) []string {
	leases, _ := disk.ReadLeases(dir)
	var probs []string
	for _, l := range leases {
		if l.ContainerID == "" || l.IfName == "" {
			probs = append(probs, fmt.Sprintf("half-written lease %s: %q/%q", l.Addr, l.ContainerID, l.IfName))
		}
	}
	return probs
}

// relGC runs the bridge GC with the given valid attachments.
func relGC(t testing.TB, n *Node, conf []byte, valid []map[string]string) error {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(conf, &m); err != nil {
		t.Fatal(err)
	}
	m["cniVersion"] = "1.1.0"
	if valid == nil {
		valid = []map[string]string{}
	}
	m["cni.dev/valid-attachments"] = valid
	b, _ := json.Marshal(m)
	_, err := n.Exec(t, "bridge", "GC", "", "", "", b)
	return err
}

// relSettle waits (bounded) until a bridge without ports has lost its carrier
// and the node's links have finished duplicate address detection: the kernel changes both a moment
// after the last port goes, and a snapshot taken before would differ from one
// taken after for that reason alone. A bridge with ports is left as it is.
func relSettle(t testing.TB, n *Node, bridge string) {
	t.Helper()
	for i := 0; i < 100; i++ {
		out, err := n.Run("ip", "-o", "link", "show", bridge)
		if err != nil {
			return
		}
		ports, _ := n.Run("ip", "-o", "link", "show", "master", bridge)
		addrs, _ := n.Run("ip", "-o", "addr", "show") // any link of the node: DAD ends on its own
		if (strings.TrimSpace(ports) != "" || strings.Contains(out, "NO-CARRIER")) && !strings.Contains(addrs, "tentative") {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Logf("bridge %s has not settled after 5s", bridge)
}

// relConcConf is the network of the concurrency and crash tests.
const relConcConf = `{"cniVersion":"1.0.0","name":"@NET@","type":"bridge","bridge":"@BR@","isGateway":true,
"ipMasq":true,"ipMasqBackend":"%s","ipam":{"type":"host-local","dataDir":"@DATA@","subnet":"10.88.0.0/24"}}`

// relParallel runs fn(i) for i in [0,n) on workers goroutines.
func relParallel(n, workers int, fn func(i int)) {
	next := make(chan int)
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				fn(i)
			}
		}()
	}
	for i := 0; i < n; i++ {
		next <- i
	}
	close(next)
	wg.Wait()
}

// TestConcurrentAddDel runs 100 bridge ADDs from 16 parallel workers on one
// network with ipMasq, then 100 DELs in parallel, for each masquerade backend:
// every container gets its own address and reaches the gateway, and the node
// ends as it was after one warm-up ADD and DEL.
func TestConcurrentAddDel(t *testing.T) {
	const containers, workers = 100, 16
	for _, backend := range []string{"iptables", "nftables"} {
		t.Run(backend, func(t *testing.T) {
			e := newRelEnv(t)
			conf := relConf(strings.Replace(relConcConf, "%s", backend, 1), e.dataDir, "conc", "br-conc")
			if out, err := e.node.Exec(t, "bridge", "ADD", "warm", e.cont.Path, "eth0", conf); err != nil {
				t.Fatalf("warm-up ADD: %v\n%s", err, out)
			}
			if out, err := e.node.Exec(t, "bridge", "DEL", "warm", e.cont.Path, "eth0", conf); err != nil {
				t.Fatalf("warm-up DEL: %v\n%s", err, out)
			}
			relSettle(t, e.node, "br-conc")
			baseline := e.node.Snapshot(t)

			conts := make([]*Netns, containers)
			for i := range conts {
				conts[i] = NewNetns(t, "c")
			}
			id := func(i int) string { return fmt.Sprintf("conc-%03d", i) }

			addrs := make([]netip.Prefix, containers)
			relParallel(containers, workers, func(i int) {
				out, err := e.node.Exec(t, "bridge", "ADD", id(i), conts[i].Path, "eth0", conf)
				if err != nil {
					t.Errorf("ADD %s: %v", id(i), err)
					return
				}
				a := relAddrs(t, relResult(t, out))
				if len(a) != 1 {
					t.Errorf("ADD %s: addresses %v, want one", id(i), a)
					return
				}
				addrs[i] = a[0]
			})
			if t.Failed() {
				t.FailNow()
			}
			seen := map[netip.Addr]string{}
			subnet := netip.MustParsePrefix("10.88.0.0/24")
			for i, a := range addrs {
				if prev, dup := seen[a.Addr()]; dup {
					t.Errorf("%s and %s both got %s", prev, id(i), a)
				}
				seen[a.Addr()] = id(i)
				if !subnet.Contains(a.Addr()) || a.Addr() == netip.MustParseAddr("10.88.0.1") {
					t.Errorf("%s got %s: outside the range or the gateway", id(i), a)
				}
			}
			if s := e.node.Snapshot(t); s.IPTables == baseline.IPTables && s.NFT == baseline.NFT {
				t.Errorf("no masquerade rules with %d containers attached (%s)", containers, backend)
			}
			if probs := relLeaseProblems(filepath.Join(e.dataDir, "conc")); len(probs) > 0 {
				t.Errorf("lease store: %s", strings.Join(probs, "; "))
			}
			relParallel(containers, workers, func(i int) {
				if out, err := conts[i].Run("ping", "-c1", "-W2", "10.88.0.1"); err != nil {
					diag, _ := conts[i].Run("sh", "-c", "ip -o addr; ip route; ip neigh; ip -s -o link show eth0")
					again, aerr := conts[i].Run("ping", "-c1", "-W2", "10.88.0.1")
					t.Errorf("%s (%s) cannot reach the gateway: %v\n%s\ncontainer:\n%s\nping again: %v\n%s", id(i), addrs[i], err, out, diag, aerr, again)
				}
			})

			relParallel(containers, workers, func(i int) {
				if out, err := e.node.Exec(t, "bridge", "DEL", id(i), conts[i].Path, "eth0", conf); err != nil {
					t.Errorf("DEL %s: %v\n%s", id(i), err, out)
				}
			})
			relSettle(t, e.node, "br-conc")
			RequireSame(t, baseline, e.node.Snapshot(t))
			if probs := relLeaseProblems(filepath.Join(e.dataDir, "conc")); len(probs) > 0 {
				t.Errorf("lease store: %s", strings.Join(probs, "; "))
			}
			for i, c := range conts {
				if out := c.MustRun(t, "ip", "-o", "link", "show"); strings.Contains(out, "eth0") {
					t.Errorf("%s still has eth0 after DEL", id(i))
				}
			}
		})
	}
}
