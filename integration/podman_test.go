package integration

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestPodman runs podman (4, CNI backend) on our plugins as its users do:
// podman network create, run -d with -p (TCP and UDP, through the reference
// portmap podman chains, and through the bridge's own publishing), --ip and
// --mac-address, inspect, stop and start, network reload after the node's
// rules were flushed, rm and network rm, then looks for leftovers. Podman
// runs inside the node namespace (and a private mount namespace, whose /run
// and /var/lib/cni are its own), with its configuration, storage and
// networks in a temporary directory.
func TestPodman(t *testing.T) {
	requireRoot(t)
	begin := time.Now()
	node, remote := masqUplinkNode(t)
	pm := newPodman(t, node, remote)

	// A network as podman writes it: our bridge and host-local, then the
	// reference portmap, firewall and tuning. Its leases are in host-local's
	// default dataDir (podman sets none), /var/lib/cni/networks of the
	// mount namespace.
	net1 := "flatcni-it-pm-" + uniq()
	pm.must(t, "network", "create", "--subnet", "10.131.0.0/24", net1)
	leases1 := pm.mounts.inNS(filepath.Join("/var/lib/cni/networks", net1))
	a := pm.must(t, "run", "-d", "--network", net1, "-p", "8081:80", "-p", "8081:80/udp", "--rootfs", pm.rootfs, "/serve", "serve", "a", "80")
	b := pm.must(t, "run", "-d", "--network", net1, "--rootfs", pm.rootfs, "/serve", "serve", "b", "80")
	ipA := pm.checkInspect(t, a, net1, "10.131.0.", "10.131.0.1")
	ipB := pm.checkInspect(t, b, net1, "10.131.0.", "10.131.0.1")
	if out := node.MustRun(t, "ip", "-d", "link", "show"); !strings.Contains(out, "alias flatcni:"+a+"/eth0") {
		t.Fatalf("no host veth of ours for container %s (another bridge plugin ran?):\n%s", a, out)
	}
	if got := pm.must(t, "exec", b, "/serve", "dial", "tcp", ipA+":80"); got != "a "+ipB {
		t.Errorf("b to a: %q, want %q", got, "a "+ipB)
	}
	if got := pm.must(t, "exec", b, "/serve", "dial", "udp", uplinkRemote4+":"+fmt.Sprint(remotePort(t, remote))); got != "remote "+uplinkNode4 {
		t.Errorf("b to the remote: %q, want it masqueraded to %s", got, uplinkNode4)
	}
	for _, proto := range []string{"tcp", "udp"} {
		portsExpect(t, remote, proto, uplinkNode4, 8081, "a", uplinkRemote4, "remote to a's published port (portmap)")
		portsExpect(t, node.Netns, proto, uplinkNode4, 8081, "a", "", "node to a's published port (portmap)")
	}

	// stop releases the address, start attaches again.
	pm.must(t, "stop", "-t", "0", a)
	if leases := podmanLeases(t, leases1); len(leases) != 1 || leases[0] != ipB {
		t.Errorf("leases after stopping a: %v, want b's %s only", leases, ipB)
	}
	pm.must(t, "start", a)
	pm.checkInspect(t, a, net1, "10.131.0.", "10.131.0.1")
	portsExpect(t, remote, "tcp", uplinkNode4, 8081, "a", uplinkRemote4, "remote to a's published port after start")

	// The bridge publishing the ports itself (no portmap), a requested
	// address (runtimeConfig.ips) and MAC (podman passes it in CNI_ARGS).
	net2 := "flatcni-it-pmp-" + uniq()
	leases2 := filepath.Join(pm.dir, "leases")
	pm.writeConflist(t, net2, map[string]any{
		"type": "bridge", "bridge": "fcpm" + uniq(), "isGateway": true, "ipMasq": true, "hairpinMode": true,
		"capabilities": map[string]bool{"portMappings": true, "ips": true},
		"ipam": map[string]any{"type": "host-local", "dataDir": leases2,
			"routes": []any{map[string]string{"dst": "0.0.0.0/0"}},
			"ranges": []any{[]any{map[string]string{"subnet": "10.132.0.0/24", "gateway": "10.132.0.1"}}}},
	})
	c := pm.must(t, "run", "-d", "--network", net2, "--ip", "10.132.0.50", "--mac-address", "02:00:0a:84:00:32",
		"-p", "8083:80", "-p", "8083:80/udp", "--rootfs", pm.rootfs, "/serve", "serve", "c", "80")
	if os.Getenv("FLATCNI_PODMAN_DIE") != "" {
		// TestPodmanKilled: the test process dies with its containers
		// and a podman exec running, no clean-up of its own run (as at
		// a go test -timeout panic).
		pm.die(t, node, remote, []string{net1, net2}, []string{a, b, c})
	}
	if ip := pm.checkInspect(t, c, net2, "10.132.0.", "10.132.0.1"); ip != "10.132.0.50" {
		t.Errorf("c has %s, want the requested 10.132.0.50", ip)
	}
	if mac := pm.must(t, "exec", c, "/serve", "mac", "eth0"); mac != "02:00:0a:84:00:32" {
		t.Errorf("c's MAC %s, want the requested 02:00:0a:84:00:32", mac)
	}
	for _, proto := range []string{"tcp", "udp"} {
		portsExpect(t, remote, proto, uplinkNode4, 8083, "c", uplinkRemote4, "remote to c's published port (bridge)")
		portsExpect(t, node.Netns, proto, "127.0.0.1", 8083, "c", "", "node to c's published port on 127.0.0.1 (bridge)")
	}

	// A firewall reload (the node's rules flushed), then podman network
	// reload: the rules come back.
	node.MustRun(t, "nft", "flush", "ruleset")
	pm.must(t, "network", "reload", "--all")
	portsExpect(t, remote, "tcp", uplinkNode4, 8081, "a", uplinkRemote4, "remote to a after network reload")
	portsExpect(t, remote, "udp", uplinkNode4, 8083, "c", uplinkRemote4, "remote to c after network reload")

	// Everything removed: nothing of ours is left in the node, in
	// /run/flatcni or among the leases.
	pm.must(t, "rm", "-f", "-t", "0", a, b, c)
	pm.must(t, "network", "rm", net1, net2)
	for _, line := range strings.Split(node.MustRun(t, "ip", "-o", "link", "show", "type", "veth"), "\n") {
		// (ip may print errors about the remote's netns id: not links.)
		if _, link, ok := strings.Cut(line, ": "); ok && !strings.HasPrefix(line, "Error") && !strings.HasPrefix(link, "up0@") {
			t.Errorf("veth left in the node: %s", line)
		}
	}
	if out := node.MustRun(t, "nft", "list", "ruleset"); strings.Contains(strings.ToLower(out), "flatcni") {
		t.Errorf("rules of ours left in the node:\n%s", out)
	}
	for _, n := range []string{net1, net2} {
		if left, _ := filepath.Glob(pm.mounts.inNS("/run/flatcni/net-" + n + ".*")); len(left) != 0 {
			t.Errorf("left in /run/flatcni: %v", left)
		}
	}
	if left := append(podmanLeases(t, leases1), podmanLeases(t, filepath.Join(leases2, net2))...); len(left) != 0 {
		t.Errorf("leases left: %v", left)
	}
	t.Logf("podman test: %v", time.Since(begin).Round(time.Millisecond))
}

// podman runs the podman command inside a node namespace and a private
// mount namespace, with its configuration, storage, networks and locks in
// dir.
type podman struct {
	node   *Node
	dir    string
	netDir string // network_config_dir
	env    []string
	mounts *runtimeMounts // the mount namespace podman runs in
	// rootfs is the containers' root directory (podman run --rootfs: no
	// image, so no registry, nothing in /var/lib/containers): one static
	// program, /serve (testdata/serve).
	rootfs string
}

// newPodman makes podman's directory and mount namespace in node, and a
// watchdog that removes what podman and its containers leave should the
// test die without its clean-up, with the namespaces of node and others.
func newPodman(t *testing.T, node *Node, others ...*Netns) *podman {
	t.Helper()
	if _, err := exec.LookPath("podman"); err != nil {
		t.Fatalf("podman is not installed (scripts/deps.sh installs podman and crun): %v", err)
	}
	ref := refBinDir(t)
	p := &podman{node: node, dir: t.TempDir()}
	plugins := filepath.Join(p.dir, "plugins")
	p.netDir = filepath.Join(p.dir, "net.d")
	for _, d := range []string{plugins, p.netDir, filepath.Join(p.dir, "tmp")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	// Ours, and the reference plugins podman's networks chain. Only this
	// directory: Debian's podman brings the reference plugins to
	// /usr/lib/cni, which podman would otherwise search first.
	for _, pl := range []struct{ name, dir string }{{"bridge", node.Bin}, {"host-local", node.Bin}, {"portmap", ref}, {"firewall", ref}, {"tuning", ref}} {
		if _, err := os.Stat(filepath.Join(pl.dir, pl.name)); err != nil {
			t.Fatalf("%s not built (make build reference): %v", pl.name, err)
		}
		if err := os.Symlink(filepath.Join(pl.dir, pl.name), filepath.Join(plugins, pl.name)); err != nil {
			t.Fatal(err)
		}
	}
	conf := filepath.Join(p.dir, "containers.conf")
	storage := filepath.Join(p.dir, "storage.conf")
	// Container limits no higher than ours: podman asks for more than a
	// root without CAP_SYS_RESOURCE (a container sandbox) may set, and
	// lowers its own process limit to 32768.
	var nofile, nproc syscall.Rlimit
	_ = syscall.Getrlimit(syscall.RLIMIT_NOFILE, &nofile)
	_ = syscall.Getrlimit(6 /* RLIMIT_NPROC */, &nproc)
	nprocMax := min(nproc.Max, 32768)
	p.env = []string{"CONTAINERS_CONF=" + conf, "CONTAINERS_STORAGE_CONF=" + storage}
	write := func(path, text string) {
		if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// cgroups disabled: nothing made in the node's cgroup file system.
	// conmon's clean-up process (podman container cleanup) gets the same
	// configuration through conmon_env_vars.
	write(conf, fmt.Sprintf(`[containers]
default_ulimits = ["nofile=%d:%d", "nproc=%d:%d"]
cgroups = "disabled"
[network]
network_backend = "cni"
cni_plugin_dirs = [%q]
network_config_dir = %q
default_subnet = "10.130.0.0/24"
[engine]
cgroup_manager = "cgroupfs"
events_logger = "file"
events_logfile_path = %q
tmp_dir = %q
lock_type = "file"
conmon_env_vars = ["PATH=%s", "CONTAINERS_CONF=%s", "CONTAINERS_STORAGE_CONF=%s"]
`, nofile.Max, nofile.Max, nprocMax, nprocMax, plugins, p.netDir, filepath.Join(p.dir, "events.log"),
		filepath.Join(p.dir, "tmp"), os.Getenv("PATH"), conf, storage))
	write(storage, fmt.Sprintf("[storage]\ndriver = \"vfs\"\ngraphroot = %q\nrunroot = %q\n",
		filepath.Join(p.dir, "storage"), filepath.Join(p.dir, "run")))

	// The mount namespace (runtimeMounts): the network namespaces podman
	// binds to files in /run/netns (elsewhere plain files, and ip prints
	// an error for each such name whenever it names a namespace: other
	// tests parse its output), the plugins' and crun's state and locks,
	// libcni's cache and host-local's leases are the run's alone. crun
	// refuses a hybrid cgroup layout (a cgroup2 file system with
	// controllers beside cgroup v1, as in some container sandboxes): that
	// mount is hidden there. The podman commands join the holder's process
	// group. Should this process die without its clean-up, the watchdog
	// kills the holder and the podman commands (its process group), conmon
	// (its command line names p.dir) and the containers (conmon's
	// children), deletes the namespaces, removes the test's temporary
	// directory (p.dir's parent) and the mount point if made here. It
	// stops after podman rm's clean-up, registered later.
	p.mounts = newRuntimeMounts(t, p.dir, "umount -n /sys/fs/cgroup/unified 2>/dev/null",
		watchdog{dirs: []string{p.dir}, netns: append([]*Netns{node.Netns}, others...),
			remove: []string{p.dir, filepath.Dir(p.dir)}})

	t.Cleanup(func() {
		if out, err := p.run("rm", "-a", "-f", "-t", "0"); err != nil {
			t.Errorf("podman rm: %v\n%s", err, out)
		}
		if out, err := p.run("network", "prune", "-f"); err != nil {
			t.Errorf("podman network prune: %v\n%s", err, out)
		}
	})
	if backend, err := p.run("info", "--format", "{{.Host.NetworkBackend}}"); err != nil || backend != "cni" {
		t.Skipf("podman without the CNI backend (podman 5 builds may lack it): %q, %v", backend, err)
	}
	p.makeRootfs(t)
	return p
}

// run runs podman with args and returns its standard output, trimmed; an
// error holds its standard error.
func (p *podman) run(args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := p.command(ctx, args...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		err = fmt.Errorf("podman %s: %v: %s", strings.Join(args, " "), err, stderr.String())
	}
	return strings.TrimSpace(string(out)), err
}

// command is podman with args, in the node and the mount namespace, in
// the holder's process group.
func (p *podman) command(ctx context.Context, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, "nsenter", append([]string{"--mount=" + p.mounts.path, "--net=" + p.node.Path, "podman"}, args...)...)
	cmd.Env = append(os.Environ(), p.env...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pgid: p.mounts.holder}
	return cmd
}

func (p *podman) must(t testing.TB, args ...string) string {
	t.Helper()
	out, err := p.run(args...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// makeRootfs builds /serve, static, in the containers' root directory,
// beside the directories the runtime mounts on.
func (p *podman) makeRootfs(t *testing.T) {
	t.Helper()
	p.rootfs = filepath.Join(p.dir, "rootfs")
	for _, d := range []string{"dev", "etc", "proc", "sys", "tmp", "run"} {
		if err := os.MkdirAll(filepath.Join(p.rootfs, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	build := exec.Command("go", "build", "-o", filepath.Join(p.rootfs, "serve"), "./testdata/serve")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build testdata/serve: %v\n%s", err, out)
	}
}

// writeConflist writes a network of podman's shape (bridge, firewall,
// tuning) with the bridge entry given, where podman reads networks.
func (p *podman) writeConflist(t testing.TB, name string, bridge map[string]any) {
	t.Helper()
	b, err := json.Marshal(map[string]any{"cniVersion": "0.4.0", "name": name,
		"plugins": []any{bridge, map[string]string{"type": "firewall"}, map[string]string{"type": "tuning"}}})
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(p.netDir, name+".conflist"), b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// checkInspect checks what podman inspect shows of the container's
// attachment to network (an address starting with prefix, a /24, the
// gateway, the container's MAC) and returns the address.
func (p *podman) checkInspect(t testing.TB, ctr, network, prefix, gateway string) string {
	t.Helper()
	var nets map[string]struct {
		IPAddress   string
		IPPrefixLen int
		Gateway     string
		MacAddress  string
	}
	if err := json.Unmarshal([]byte(p.must(t, "inspect", "--format", "{{json .NetworkSettings.Networks}}", ctr)), &nets); err != nil {
		t.Fatal(err)
	}
	n, ok := nets[network]
	mac := p.must(t, "exec", ctr, "/serve", "mac", "eth0")
	if !ok || !strings.HasPrefix(n.IPAddress, prefix) || n.IPPrefixLen != 24 || n.Gateway != gateway || n.MacAddress != mac {
		t.Errorf("podman inspect %s: %+v, want on %s an address %s*/24, gateway %s, MAC %s", ctr, nets, network, prefix, gateway, mac)
	}
	return n.IPAddress
}

// podmanLeases lists the addresses leased in a host-local network directory.
func podmanLeases(t testing.TB, dir string) []string {
	t.Helper()
	entries, _ := os.ReadDir(dir)
	var out []string
	for _, e := range entries {
		if name := e.Name(); !e.IsDir() && strings.Count(name, ".") == 3 {
			out = append(out, name)
		}
	}
	return out
}

// remotePort starts a server named "remote" in the remote namespace and
// returns its port.
func remotePort(t testing.TB, remote *Netns) int {
	t.Helper()
	portsServe(t, remote, "remote", 7070)
	return 7070
}

// podmanLeft is what a TestPodman that dies (FLATCNI_PODMAN_DIE) reports of
// its run, for TestPodmanKilled to look for.
type podmanLeft struct {
	Dir        string   // podman's directory
	Tmp        string   // the test's temporary directory
	Netns      []string // the node's and the remote's names
	Namespaces []string // the mount namespace's, the node's and the containers' (as /proc/*/ns/* name them)
	Networks   []string
	Containers []string
}

// die starts a podman exec that runs on (a server in the container ctrs[1])
// and exits the test process with it, the containers ctrs and the networks
// nets there, after printing a podmanLeft.
func (p *podman) die(t *testing.T, node *Node, remote *Netns, nets, ctrs []string) {
	srv := p.command(context.Background(), "exec", ctrs[1], "/serve", "serve", "x", "81")
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		if out, err := p.run("exec", ctrs[1], "/serve", "dial", "tcp", "127.0.0.1:81"); err == nil && strings.HasPrefix(out, "x ") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("podman exec of a server: it does not answer")
		}
	}
	left := podmanLeft{Dir: p.dir, Tmp: filepath.Dir(p.dir), Netns: []string{node.Name, remote.Name}, Networks: nets, Containers: ctrs}
	mnt, err := os.Readlink(p.mounts.path)
	if err != nil {
		t.Fatal(err)
	}
	left.Namespaces = append(left.Namespaces, mnt, netnsOf(t, srv.Process.Pid))
	for _, c := range ctrs {
		var pid int
		if _, err := fmt.Sscan(p.must(t, "inspect", "--format", "{{.State.Pid}}", c), &pid); err != nil {
			t.Fatal(err)
		}
		left.Namespaces = append(left.Namespaces, netnsOf(t, pid))
	}
	exitDying(t, "podman-left ", left)
}

// TestPodmanKilled: TestPodman's process dying with its containers and a
// podman exec running, without its clean-up (as at a go test -timeout
// panic or a kill), leaves no podman, conmon or container process, no
// process in its namespaces, no cgroup, namespace, directory or file of
// its run behind.
func TestPodmanKilled(t *testing.T) {
	requireRoot(t)
	if _, err := exec.LookPath("podman"); err != nil {
		t.Fatalf("podman is not installed (scripts/deps.sh installs podman and crun): %v", err)
	}
	refBinDir(t)
	newDirs := missingDirs(cniMountPoint, "/run/mount")
	var left podmanLeft
	out, err := runDying(t, "TestPodman", "FLATCNI_PODMAN_DIE", "podman-left ", &left)
	if left.Dir == "" {
		if strings.Contains(string(out), "--- SKIP: TestPodman") {
			t.Skipf("TestPodman skipped:\n%s", out)
		}
		t.Fatalf("TestPodman did not get to its containers: %v\n%s", err, out)
	}
	if len(left.Namespaces) != 2+len(left.Containers) {
		t.Fatalf("TestPodman reported %v", left)
	}
	l := leftovers{cmdline: left.Dir, namespaces: left.Namespaces, globs: []string{left.Dir, left.Tmp}, newDirs: newDirs}
	for _, n := range left.Netns {
		l.globs = append(l.globs, "/run/netns/"+n)
	}
	// Where podman, crun and the plugins keep their state, were they
	// not in the mount namespace's own /run and /var/lib/cni.
	for _, n := range left.Networks {
		l.globs = append(l.globs, "/run/flatcni/net-"+n+".*", "/var/lib/cni/networks/"+n, "/var/lib/cni/results/"+n+"-*")
	}
	for _, c := range left.Containers {
		l.globs = append(l.globs, "/run/crun/"+c, "/run/cni/tuning/"+c+"_*")
	}
	l.more = func() (found []string) {
		_ = filepath.WalkDir("/sys/fs/cgroup", func(path string, d os.DirEntry, err error) error {
			if err == nil && d.IsDir() {
				for _, c := range left.Containers {
					if strings.Contains(d.Name(), c) {
						found = append(found, path)
					}
				}
			}
			return nil
		})
		return found
	}
	found := l.find(30 * time.Second)
	if len(found) != 0 {
		t.Errorf("left by a killed TestPodman (remove them by hand):\n%s", strings.Join(found, "\n"))
	}
}
