package integration

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"debug/elf"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/flatcni/plugins/internal/testns"
)

// TestCRI runs our plugins the way a Kubernetes node does: containerd's CRI
// plugin (driven with crictl, as the kubelet drives it) sets up its pods
// through a conflist of our bridge, publishing the pods' hostPorts itself,
// and host-local (dual-stack). containerd runs inside the node namespace,
// with its own configuration, sockets and directories, in a mount namespace
// of its own whose /run and /var/lib/cni are fresh tmpfs file systems
// (runtimeMounts), so nothing of the machine's containerd, /run or CNI
// directories is used or left. Checked: the pod IPs containerd reports are
// the leases, pod to pod over IPv4 and IPv6, a hostPort from a remote host
// (which the pod sees as itself), from the node (127.0.0.1) and from the
// pod itself, a container started in the pod sharing its network, and that
// removing the pods leaves no veth, lease or rule of ours. Needs
// containerd, ctr, runc, crictl and a static busybox (scripts/deps.sh
// installs them) and the reference loopback plugin, which CRI calls for
// every pod (make reference).
func TestCRI(t *testing.T) {
	requireRoot(t)
	tools := criTools(t)
	loopback := filepath.Join(refBinDir(t), "loopback")
	if _, err := os.Stat(loopback); err != nil {
		t.Fatal("reference loopback plugin not built (make reference)")
	}
	node, remote := masqUplinkNode(t)
	c := startCRI(t, node, tools, loopback, remote)
	if os.Getenv("FLATCNI_CRI_DIE") != "" {
		// TestCRIKilled: the test process dies with its pods running,
		// no clean-up of its own run (as at a go test -timeout panic).
		c.die(t, node, remote, c.runPod(t, "a", 18080))
	}

	a := c.runPod(t, "a", 18080)
	b := c.runPod(t, "b", 0)
	for _, p := range []*criPod{a, b} {
		leases := c.leases(t)
		for _, ip := range p.ips {
			if leases[ip] != p.id {
				t.Errorf("pod %s: containerd reports %s, leased to %q", p.name, ip, leases[ip])
			}
		}
	}

	// A container of the pod joins the sandbox's network namespace.
	ctr := c.startContainer(t, a)
	if got, want := netnsOf(t, ctr), netnsOf(t, a.pid); got != want {
		t.Errorf("container in pod a is in network namespace %s, the sandbox in %s", got, want)
	}

	portsServe(t, a.netns, "a", 80)
	portsExpect(t, b.netns, "tcp", a.ips[0], 80, "a", b.ips[0], "pod b to pod a over IPv4")
	portsExpect(t, b.netns, "tcp", a.ips[1], 80, "a", b.ips[1], "pod b to pod a over IPv6")
	portsExpect(t, remote, "tcp", uplinkNode4, 18080, "a", uplinkRemote4, "hostPort from a remote host")
	portsExpect(t, remote, "tcp", uplinkNode6, 18080, "a", uplinkRemote6, "hostPort from a remote host over IPv6")
	portsExpect(t, node.Netns, "tcp", "127.0.0.1", 18080, "a", "", "hostPort from the node, 127.0.0.1")
	portsExpect(t, a.netns, "tcp", uplinkNode4, 18080, "a", "", "hostPort from the pod itself (hairpin)")

	c.crictl(t, "stopp", a.id, b.id)
	c.crictl(t, "rmp", a.id, b.id)
	if v := hostVeths(t, node); len(v) != 1 || v[0] != "up0" {
		t.Errorf("veths left in the node after the pods went: %v", v)
	}
	if l := c.leases(t); len(l) != 0 {
		t.Errorf("leases left after the pods went: %v", l)
	}
	masqRequireNoTrace(t, node.Netns, criNetwork)
	if got := strings.TrimSpace(node.MustRun(t, "sysctl", "-n", "net.ipv4.conf."+criBridge+".route_localnet")); got != "0" {
		t.Errorf("route_localnet on %s after the pods went: %s", criBridge, got)
	}
}

// criLeft is what a TestCRI that dies (FLATCNI_CRI_DIE) reports of its
// run, for TestCRIKilled to look for.
type criLeft struct {
	Dir        string   // containerd's directory
	Tmp        string   // the test's temporary directory
	Cgroup     string   // the pods' cgroup parent
	Netns      []string // the node's and the remote's names
	Namespaces []string // the mount namespace's and the pod's network namespace (as /proc/*/ns/* name them)
	Pod        string   // the pod's ID
}

// die exits the test process with containerd and the pod p running, after
// printing a criLeft.
func (c *criNode) die(t *testing.T, node *Node, remote *Netns, p *criPod) {
	t.Helper()
	// libcni's cache of the pod's network, in the mount namespace:
	// TestCRIKilled looks for it on the machine under this name.
	m, _ := filepath.Glob(c.mounts.inNS(criCache(p.id)))
	if !slices.ContainsFunc(m, func(f string) bool { return strings.HasPrefix(filepath.Base(f), criNetwork+"-") }) {
		t.Fatalf("no libcni cache of %s in containerd's mount namespace (%s): %v", criNetwork, criCache(p.id), m)
	}
	mnt, err := os.Readlink(c.mounts.path)
	if err != nil {
		t.Fatal(err)
	}
	left := criLeft{Dir: c.dir, Tmp: filepath.Dir(node.Dir), Cgroup: c.cgroup, Netns: []string{node.Name, remote.Name},
		Namespaces: []string{mnt, netnsOf(t, p.pid)}, Pod: p.id}
	exitDying(t, "cri-left ", left)
}

// criCache is the pattern of libcni's cache files of the pod sandbox id
// (<network>-<ID>-<interface>: ours and CRI's loopback network), where
// containerd keeps them (libcni's default directory).
func criCache(id string) string {
	return "/var/lib/cni/results/*-" + id + "-*"
}

// TestCRIKilled: TestCRI's process dying with a pod running, without its
// clean-up (as at a go test -timeout panic or a kill), leaves no
// containerd, shim or pod process, no process in its namespaces, no
// cgroup, namespace, directory or file of its run (libcni's cache of the
// pod, the mount point /var/lib/cni, /run/mount) behind.
func TestCRIKilled(t *testing.T) {
	requireRoot(t)
	criTools(t)
	refBinDir(t)
	newDirs := missingDirs(cniMountPoint, "/run/mount")
	var left criLeft
	out, err := runDying(t, "TestCRI", "FLATCNI_CRI_DIE", "cri-left ", &left)
	if left.Dir == "" {
		t.Fatalf("TestCRI did not get to its pod: %v\n%s", err, out)
	}
	if left.Cgroup == "" || left.Pod == "" || len(left.Netns) != 2 || len(left.Namespaces) != 2 {
		t.Fatalf("TestCRI reported %+v", left)
	}
	l := leftovers{cmdline: left.Dir, namespaces: left.Namespaces, newDirs: newDirs,
		globs: []string{left.Dir, left.Tmp, "/sys/fs/cgroup/*" + left.Cgroup, "/sys/fs/cgroup" + left.Cgroup, criCache(left.Pod)}}
	for _, n := range left.Netns {
		l.globs = append(l.globs, "/run/netns/"+n)
	}
	if found := l.find(15 * time.Second); len(found) != 0 {
		t.Errorf("left by a killed TestCRI (remove them by hand):\n%s", strings.Join(found, "\n"))
	}
}

const (
	criNetwork = "flatcni-cri"
	criBridge  = "fcri0"
	criImage   = "docker.io/flatcni/busybox:it"
)

type criToolPaths struct{ containerd, ctr, crictl, busybox string }

// criTools finds the programs the test runs. As root, scripts/deps.sh
// installs them (make test runs it): one missing is a failure, not a skip,
// so that a broken install step shows.
func criTools(t *testing.T) criToolPaths {
	t.Helper()
	var p criToolPaths
	for _, x := range []struct {
		dst  *string
		name string
	}{{&p.containerd, "containerd"}, {&p.ctr, "ctr"}, {&p.busybox, "busybox"}, {new(string), "runc"}, {new(string), "containerd-shim-runc-v2"}} {
		path, err := exec.LookPath(x.name)
		if err != nil {
			t.Fatalf("%s not installed (scripts/deps.sh installs containerd, runc, busybox-static)", x.name)
		}
		*x.dst = path
	}
	if f, err := elf.Open(p.busybox); err != nil || f.Section(".interp") != nil {
		t.Fatalf("%s is not a static busybox (apt-get install busybox-static)", p.busybox)
	}
	p.crictl, _ = exec.LookPath("crictl")
	if p.crictl == "" {
		p.crictl = filepath.Join(strings.TrimSpace(goEnv("GOPATH")), "bin", "crictl")
		if _, err := os.Stat(p.crictl); err != nil {
			t.Fatal("crictl not installed (scripts/deps.sh)")
		}
	}
	return p
}

// criNode is a containerd serving CRI inside a node namespace.
type criNode struct {
	node   *Node
	tools  criToolPaths
	dir    string
	sock   string
	cgroup string         // the pods' cgroup parent, unique to this run
	mounts *runtimeMounts // the mount namespace containerd runs in
}

// startCRI writes the network configuration, the containerd configuration
// and a busybox image, starts containerd in node (stopped, and everything
// it started killed, at cleanup) and imports the image.
func startCRI(t *testing.T, node *Node, tools criToolPaths, loopback string, others ...*Netns) *criNode {
	t.Helper()
	dir, err := os.MkdirTemp("", "flatcni-cri-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	c := &criNode{node: node, tools: tools, dir: dir, sock: filepath.Join(dir, "containerd.sock"), cgroup: "/flatcni-it-cri-" + uniq()}
	for _, d := range []string{"bin", "net.d", "leases", "logs"} {
		if err := os.Mkdir(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for name, target := range map[string]string{"bridge": filepath.Join(node.Bin, "bridge"), "host-local": filepath.Join(node.Bin, "host-local"), "loopback": loopback} {
		if err := os.Symlink(target, filepath.Join(dir, "bin", name)); err != nil {
			t.Fatal(err)
		}
	}
	conflist := fmt.Sprintf(`{"cniVersion":"1.0.0","name":%q,"plugins":[{"type":"bridge","bridge":%q,
		"isGateway":true,"ipMasq":true,"hairpinMode":true,"capabilities":{"portMappings":true},
		"ipam":{"type":"host-local","dataDir":%q,"ranges":[[{"subnet":"10.31.0.0/24"}],[{"subnet":"fd31::/64"}]],
		"routes":[{"dst":"0.0.0.0/0"},{"dst":"::/0"}]}}]}`, criNetwork, criBridge, filepath.Join(dir, "leases"))
	writeFile(t, filepath.Join(dir, "net.d", "10-flatcni.conflist"), conflist)
	// restrict_oom_score_adj: a sandbox without CAP_SYS_RESOURCE cannot
	// lower its score as CRI otherwise asks. native: no overlay mount left
	// behind if containerd dies.
	writeFile(t, filepath.Join(dir, "containerd.toml"), fmt.Sprintf(`version = 2
root = %[1]q
state = %[2]q
disabled_plugins = ["io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper"]
[grpc]
  address = %[3]q
[ttrpc]
  address = "%[3]s.ttrpc"
[plugins."io.containerd.internal.v1.opt"]
  path = %[4]q
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = %[5]q
  netns_mounts_under_state_dir = true
  restrict_oom_score_adj = true
  disable_apparmor = true
  stream_server_address = "127.0.0.1"
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "native"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        Root = %[6]q
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = %[7]q
    conf_dir = %[8]q
    max_conf_num = 1
`, filepath.Join(dir, "root"), filepath.Join(dir, "state"), c.sock, filepath.Join(dir, "opt"), criImage,
		filepath.Join(dir, "runc"), filepath.Join(dir, "bin"), filepath.Join(dir, "net.d")))
	writeFile(t, filepath.Join(dir, "crictl.yaml"), fmt.Sprintf("runtime-endpoint: unix://%s\nimage-endpoint: unix://%s\ntimeout: 60\n", c.sock, c.sock))

	// A mount namespace of its own (runtimeMounts): the shims' sockets
	// (/run/containerd/s), the plugins' locks and state (/run/flatcni),
	// iptables' lock and libcni's cache (/var/lib/cni/results) are this
	// containerd's alone. Should this process die without its clean-up,
	// the watchdog kills the holder (its process group), containerd and
	// the shims (their command lines name dir) and the pods (their
	// cgroups, removed then), deletes the namespaces, removes dir and the
	// test's temporary directory and the mount point if made here. It
	// stops after stop's clean-up, registered later.
	c.mounts = newRuntimeMounts(t, dir, "", watchdog{dirs: []string{dir}, cgroups: []string{c.cgroup},
		netns: append([]*Netns{node.Netns}, others...), remove: []string{dir, filepath.Dir(node.Dir)}})
	logf, err := os.Create(filepath.Join(dir, "containerd.log"))
	if err != nil {
		t.Fatal(err)
	}
	// containerd in the node's network namespace and that mount
	// namespace, in a process group of its own.
	cmd := exec.Command("nsenter", "--mount="+c.mounts.path, "--net="+node.Path, tools.containerd, "--config", filepath.Join(dir, "containerd.toml"))
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); logf.Close(); close(exited) }()
	t.Cleanup(func() {
		if t.Failed() {
			if b, err := os.ReadFile(filepath.Join(dir, "containerd.log")); err == nil {
				t.Logf("containerd log (last 4 KB):\n%s", tail(b, 4096))
			}
		}
		c.stop(t, cmd, exited)
	})
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		if _, err := c.tryCrictl("version"); err == nil {
			break
		}
		select {
		case <-exited:
			t.Fatalf("containerd exited at start")
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("containerd did not answer on %s", c.sock)
		}
	}
	archive := filepath.Join(dir, "busybox.tar")
	writeBusyboxImage(t, archive, tools.busybox)
	if out, err := exec.Command(tools.ctr, "-a", c.sock, "-n", "k8s.io", "images", "import", "--snapshotter", "native", archive).CombinedOutput(); err != nil {
		t.Fatalf("ctr images import: %v: %s", err, out)
	}
	return c
}

// stop removes every pod, stops containerd, then kills what it left: its
// shims (found by their -address argument, our socket) and any process in
// the pods' cgroups, whose directories it removes.
func (c *criNode) stop(t *testing.T, cmd *exec.Cmd, exited chan struct{}) {
	if ids, err := c.tryCrictl("pods", "-q"); err == nil && strings.TrimSpace(ids) != "" {
		_, _ = c.tryCrictl(append([]string{"rmp", "-f"}, strings.Fields(ids)...)...)
	}
	_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
	select {
	case <-exited:
	case <-time.After(10 * time.Second):
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		<-exited
	}
	procs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, p := range procs {
		if b, err := os.ReadFile(p); err == nil && bytes.Contains(b, []byte(c.sock+"\x00")) {
			var pid int
			if _, err := fmt.Sscanf(p, "/proc/%d/cmdline", &pid); err == nil {
				_ = syscall.Kill(pid, syscall.SIGKILL)
			}
		}
	}
	// cgroup v1 (one tree per controller) or v2 (one tree).
	roots, _ := filepath.Glob("/sys/fs/cgroup/*" + c.cgroup)
	if d := "/sys/fs/cgroup" + c.cgroup; fileExists(d) {
		roots = append(roots, d)
	}
	for _, root := range roots {
		for try := 0; try < 50; try++ {
			left := false
			_ = filepath.WalkDir(root, func(path string, d os.DirEntry, err error) error {
				if err == nil && !d.IsDir() && d.Name() == "cgroup.procs" {
					b, _ := os.ReadFile(path)
					for _, f := range strings.Fields(string(b)) {
						var pid int
						if _, err := fmt.Sscan(f, &pid); err == nil {
							_ = syscall.Kill(pid, syscall.SIGKILL)
							left = true
						}
					}
				}
				return nil
			})
			if !left && removeCgroupTree(root) == nil {
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
		if fileExists(root) {
			t.Errorf("cgroup %s left", root)
		}
	}
}

// removeCgroupTree removes a cgroup directory and those below it, deepest first.
func removeCgroupTree(root string) error {
	var dirs []string
	_ = filepath.WalkDir(root, func(path string, d os.DirEntry, err error) error {
		if err == nil && d.IsDir() {
			dirs = append(dirs, path)
		}
		return nil
	})
	var last error
	for i := len(dirs) - 1; i >= 0; i-- {
		if err := syscall.Rmdir(dirs[i]); err != nil {
			last = err
		}
	}
	return last
}

func (c *criNode) tryCrictl(args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, c.tools.crictl, append([]string{"--config", filepath.Join(c.dir, "crictl.yaml")}, args...)...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.String(), fmt.Errorf("crictl %s: %v: %s", strings.Join(args, " "), err, stderr.String())
	}
	return stdout.String(), nil
}

func (c *criNode) crictl(t *testing.T, args ...string) string {
	t.Helper()
	out, err := c.tryCrictl(args...)
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(out)
}

// criPod is a pod sandbox: its ID, the IPs containerd reports (IPv4
// first), its pause process and its network namespace.
type criPod struct {
	name  string
	id    string
	ips   []string
	pid   int
	netns *Netns
}

// runPod runs a pod sandbox, publishing hostPort (if not 0) to its port 80.
func (c *criNode) runPod(t *testing.T, name string, hostPort int) *criPod {
	t.Helper()
	ports := "[]"
	if hostPort != 0 {
		ports = fmt.Sprintf(`[{"container_port":80,"host_port":%d,"protocol":0}]`, hostPort)
	}
	path := filepath.Join(c.dir, "pod-"+name+".json")
	writeFile(t, path, fmt.Sprintf(`{"metadata":{"name":%q,"namespace":"default","uid":"uid-%s"},"hostname":%q,
		"log_directory":%q,"port_mappings":%s,"linux":{"cgroup_parent":%q}}`,
		name, name, name, filepath.Join(c.dir, "logs", name), ports, c.cgroup))
	p := &criPod{name: name, id: c.crictl(t, "runp", path)}
	var st struct {
		Status struct {
			State   string `json:"state"`
			Network struct {
				IP            string `json:"ip"`
				AdditionalIPs []struct {
					IP string `json:"ip"`
				} `json:"additionalIps"`
			} `json:"network"`
		} `json:"status"`
		Info struct {
			Pid int `json:"pid"`
		} `json:"info"`
	}
	if err := json.Unmarshal([]byte(c.crictl(t, "inspectp", p.id)), &st); err != nil {
		t.Fatalf("crictl inspectp %s: %v", p.id, err)
	}
	if st.Status.State != "SANDBOX_READY" || st.Info.Pid == 0 {
		t.Fatalf("pod %s: state %s, pid %d", name, st.Status.State, st.Info.Pid)
	}
	p.pid = st.Info.Pid
	p.ips = []string{st.Status.Network.IP}
	for _, a := range st.Status.Network.AdditionalIPs {
		p.ips = append(p.ips, a.IP)
	}
	if len(p.ips) != 2 || !strings.HasPrefix(p.ips[0], "10.31.0.") || !strings.HasPrefix(p.ips[1], "fd31::") {
		t.Fatalf("pod %s: containerd reports IPs %v, want one of 10.31.0.0/24 then one of fd31::/64", name, p.ips)
	}
	p.netns = &Netns{&testns.NS{Name: "pod-" + name, Path: fmt.Sprintf("/proc/%d/ns/net", p.pid)}}
	return p
}

// startContainer creates and starts a container (the image's sleep) in the
// pod and returns its process.
func (c *criNode) startContainer(t *testing.T, p *criPod) int {
	t.Helper()
	path := filepath.Join(c.dir, "ctr-"+p.name+".json")
	writeFile(t, path, fmt.Sprintf(`{"metadata":{"name":"sleep"},"image":{"image":%q},"log_path":"sleep.log","linux":{}}`, criImage))
	id := c.crictl(t, "create", p.id, path, filepath.Join(c.dir, "pod-"+p.name+".json"))
	c.crictl(t, "start", id)
	var st struct {
		Status struct {
			State string `json:"state"`
		} `json:"status"`
		Info struct {
			Pid int `json:"pid"`
		} `json:"info"`
	}
	if err := json.Unmarshal([]byte(c.crictl(t, "inspect", id)), &st); err != nil {
		t.Fatalf("crictl inspect %s: %v", id, err)
	}
	if st.Status.State != "CONTAINER_RUNNING" || st.Info.Pid == 0 {
		t.Fatalf("container in pod %s: state %s, pid %d", p.name, st.Status.State, st.Info.Pid)
	}
	return st.Info.Pid
}

// leases returns host-local's leases of the network: address -> container ID.
func (c *criNode) leases(t *testing.T) map[string]string {
	t.Helper()
	dir := filepath.Join(c.dir, "leases", criNetwork)
	entries, _ := os.ReadDir(dir)
	out := map[string]string{}
	for _, e := range entries {
		if !strings.ContainsAny(e.Name(), ".:") || strings.HasPrefix(e.Name(), "last_reserved_ip") || strings.HasPrefix(e.Name(), ".") {
			continue
		}
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		id, _, _ := strings.Cut(string(b), "\r\n")
		out[e.Name()] = id
	}
	return out
}

// netnsOf names the network namespace of a process.
func netnsOf(t *testing.T, pid int) string {
	t.Helper()
	l, err := os.Readlink(fmt.Sprintf("/proc/%d/ns/net", pid))
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// writeBusyboxImage writes a Docker image archive (manifest, config, one
// layer) of a root file system holding the static busybox as sh and sleep;
// the image's command, a long sleep, serves as the pods' pause process.
func writeBusyboxImage(t *testing.T, archive, busybox string) {
	t.Helper()
	bin, err := os.ReadFile(busybox)
	if err != nil {
		t.Fatal(err)
	}
	var layer bytes.Buffer
	tw := tar.NewWriter(&layer)
	for _, d := range []string{"bin/", "dev/", "etc/", "proc/", "sys/", "tmp/"} {
		must(t, tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: d, Mode: 0o755}))
	}
	must(t, tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: "bin/busybox", Mode: 0o755, Size: int64(len(bin))}))
	_, err = tw.Write(bin)
	must(t, err)
	for _, applet := range []string{"sh", "sleep"} {
		must(t, tw.WriteHeader(&tar.Header{Typeflag: tar.TypeSymlink, Name: "bin/" + applet, Linkname: "busybox", Mode: 0o777}))
	}
	must(t, tw.Close())
	sum := sha256.Sum256(layer.Bytes())
	config, err := json.Marshal(map[string]any{
		"architecture": runtime.GOARCH, "os": "linux",
		"config": map[string]any{"Env": []string{"PATH=/bin"}, "Cmd": []string{"/bin/sleep", "2147483647"}},
		"rootfs": map[string]any{"type": "layers", "diff_ids": []string{"sha256:" + hex.EncodeToString(sum[:])}},
	})
	must(t, err)
	manifest, err := json.Marshal([]map[string]any{{"Config": "config.json", "RepoTags": []string{strings.TrimPrefix(criImage, "docker.io/")}, "Layers": []string{"layer.tar"}}})
	must(t, err)
	f, err := os.Create(archive)
	must(t, err)
	defer f.Close()
	aw := tar.NewWriter(f)
	for _, e := range []struct {
		name string
		data []byte
	}{{"manifest.json", manifest}, {"config.json", config}, {"layer.tar", layer.Bytes()}} {
		must(t, aw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: e.name, Mode: 0o644, Size: int64(len(e.data))}))
		_, err := aw.Write(e.data)
		must(t, err)
	}
	must(t, aw.Close())
}

func writeFile(t *testing.T, path, data string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
}

func fileExists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

func tail(b []byte, n int) []byte {
	if len(b) > n {
		return b[len(b)-n:]
	}
	return b
}
