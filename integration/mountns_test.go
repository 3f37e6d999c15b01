package integration

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// runtimeMounts is the mount namespace a container runtime under test runs
// in (containerd, podman), held by a process of its own, the holder. Its
// /run and /var/lib/cni are tmpfs file systems of its own, so that what the
// runtime, the plugins and libcni keep there (network namespaces bound to
// files in /run/netns, the runtime's sockets and state, the plugins' locks
// and state in /run/flatcni, iptables' lock, libcni's cache in
// /var/lib/cni/results, host-local's default leases) is the run's alone and
// goes with it, even should the test die. The runtime's own mounts stay in
// it too.
type runtimeMounts struct {
	holder int    // the holder's process ID, also its process group
	path   string // /proc/<holder>/ns/mnt, for nsenter --mount
}

// cniMountPoint is where the namespace's tmpfs for libcni's cache and
// host-local's default leases is mounted.
const cniMountPoint = "/var/lib/cni"

// newRuntimeMounts starts the holder, its standard error kept in dir, and
// the watchdog wd, to which it adds the holder's process group and, made
// here if missing, the mount point /var/lib/cni: should the test die
// without its clean-up, the watchdog kills the holder and removes the
// mount point if empty. At clean-up the holder is killed, then the mount
// point removed if empty. setup is shell run in the namespace before its
// mounts are made.
//
// Each mount is made with mount -n: without it, mounting the tmpfs on /run
// leaves an empty /run/mount (libmount's) on the machine's /run.
func newRuntimeMounts(t *testing.T, dir, setup string, wd watchdog) *runtimeMounts {
	t.Helper()
	if err := os.Mkdir(cniMountPoint, 0o755); err == nil {
		wd.rmdirs = append(wd.rmdirs, cniMountPoint)
		t.Cleanup(func() { removeMountPoint(cniMountPoint) })
	} else if !os.IsExist(err) {
		t.Fatal(err)
	}
	holder := exec.Command("unshare", "--mount", "--propagation", "slave", "sh", "-c", setup+`
mount -n -t tmpfs -o mode=0755 flatcni-it-run /run && mkdir /run/netns &&
mount -n -t tmpfs -o mode=0755 flatcni-it-cni `+cniMountPoint+` && echo ready && exec sleep 600`)
	out, err := holder.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	holderErr := filepath.Join(dir, "unshare.err")
	errf, err := os.Create(holderErr)
	if err != nil {
		t.Fatal(err)
	}
	defer errf.Close()
	holder.Stderr = errf
	// Its own process group, for the watchdog (and for processes that
	// join it, as podman's commands do).
	holder.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := holder.Start(); err != nil {
		t.Fatalf("unshare: %v", err)
	}
	m := &runtimeMounts{holder: holder.Process.Pid, path: fmt.Sprintf("/proc/%d/ns/mnt", holder.Process.Pid)}
	// Registered before the holder's clean-up (and before those of the
	// caller): it stops after them.
	wd.pgids = append(wd.pgids, m.holder)
	wd.start(t)
	t.Cleanup(func() { _ = holder.Process.Kill(); _ = holder.Wait() })
	if line, err := bufio.NewReader(out).ReadString('\n'); err != nil || line != "ready\n" {
		msg, _ := os.ReadFile(holderErr)
		t.Fatalf("unshare: %q, %v: %s", line, err, msg)
	}
	return m
}

// inNS is the path to a file of the mount namespace.
func (m *runtimeMounts) inNS(path string) string {
	return filepath.Join(fmt.Sprintf("/proc/%d/root", m.holder), path)
}

// removeMountPoint removes dir if it is empty and no mount namespace has a
// file system mounted on it: removing it would take that mount off (a run
// of another test process, whose namespace's libcni would then write to
// the machine's /var/lib/cni). Processes of this run's namespace that were
// killed may take a moment to go: it waits up to 5 s for that.
func removeMountPoint(dir string) {
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		if !mountedOn(dir) {
			_ = syscall.Rmdir(dir)
			return
		}
		if time.Now().After(deadline) {
			return
		}
	}
}

// mountedOn reports whether a process's mount namespace has a file system
// mounted on dir.
func mountedOn(dir string) bool {
	paths, _ := filepath.Glob("/proc/[0-9]*/mountinfo")
	seen := map[string]bool{}
	for _, p := range paths {
		ns, err := os.Readlink(filepath.Join(filepath.Dir(p), "ns", "mnt"))
		if err != nil || seen[ns] {
			continue
		}
		seen[ns] = true
		b, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		for _, line := range bytes.Split(b, []byte("\n")) {
			// ID, parent ID, major:minor, root, mount point, ...
			if f := strings.Fields(string(line)); len(f) > 4 && f[4] == dir {
				return true
			}
		}
	}
	return false
}
