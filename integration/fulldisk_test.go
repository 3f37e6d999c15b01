package integration

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/containernetworking/cni/pkg/types"
)

// relTmpfs mounts a small tmpfs (removed at cleanup) and returns its path.
func relTmpfs(t *testing.T, size string) string {
	t.Helper()
	dir := t.TempDir()
	if out, err := exec.Command("mount", "-n", "-t", "tmpfs", "-o", "size="+size, "flatcni-fulldisk", dir).CombinedOutput(); err != nil {
		t.Skipf("cannot mount a tmpfs: %v: %s", err, out)
	}
	t.Cleanup(func() {
		if err := syscall.Unmount(dir, syscall.MNT_DETACH); err != nil {
			t.Errorf("unmount %s: %v", dir, err)
		}
	})
	return dir
}

// relFill fills the file system of dir with one file and returns it.
func relFill(t *testing.T, dir string) *os.File {
	t.Helper()
	f, err := os.Create(filepath.Join(dir, "filler"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	buf := make([]byte, 64<<10)
	for {
		if _, err := f.Write(buf); err != nil {
			if !errors.Is(err, syscall.ENOSPC) {
				t.Fatalf("fill %s: %v", dir, err)
			}
			break
		}
	}
	// Smaller writes take what is left of the last block.
	for _, err := f.Write(buf[:512]); err == nil; _, err = f.Write(buf[:512]) {
	}
	return f
}

// relFree frees about n pages of the filler.
func relFree(t *testing.T, f *os.File, pages int) {
	t.Helper()
	fi, err := f.Stat()
	if err != nil {
		t.Fatal(err)
	}
	size := fi.Size() - int64(pages)*4096
	if size < 0 {
		size = 0
	}
	if err := f.Truncate(size); err != nil {
		t.Fatal(err)
	}
}

// TestFullDisk puts the lease directory on a full tmpfs: ADD must fail with
// an I/O error (5) naming the lease store and leave no partial lease; DEL
// still works; once space is back ADD works again. Then the disk is made
// almost full, with 0 to 8 pages left, so that the store runs out of space at
// every step of a reservation (lease file, last reserved address, index).
func TestFullDisk(t *testing.T) {
	e := newRelEnv(t)
	data := relTmpfs(t, "256k")
	conf := relConf(`{"cniVersion":"1.0.0","name":"full","type":"bridge","bridge":"br-full","isGateway":true,
"ipam":{"type":"host-local","dataDir":"@DATA@","ranges":[[{"subnet":"10.90.0.0/24"}],[{"subnet":"fd90::/120"}]]}}`, data, "", "")
	leaseDir := filepath.Join(data, "full")
	add := func(plugin, id string) ([]byte, error) {
		return e.node.Exec(t, plugin, "ADD", id, e.cont.Path, "eth0", conf)
	}
	del := func(plugin, id string) {
		t.Helper()
		if out, err := e.node.Exec(t, plugin, "DEL", id, e.cont.Path, "eth0", conf); err != nil {
			t.Fatalf("DEL %s: %v\n%s", id, err, out)
		}
	}
	// Leases that exist before the disk fills; the bridge exists too.
	if out, err := add("host-local", "before-1"); err != nil {
		t.Fatalf("ADD: %v\n%s", err, out)
	}
	if out, err := add("bridge", "warm"); err != nil {
		t.Fatalf("warm-up ADD: %v\n%s", err, out)
	}
	del("bridge", "warm")
	relSettle(t, e.node, "br-full")

	filler := relFill(t, data)
	checkFailed := func(t *testing.T, plugin, id string, out []byte, err error) {
		t.Helper()
		if err == nil {
			t.Fatalf("%s ADD on a full disk succeeded:\n%s", plugin, out)
		}
		ce := CNIError(t, out)
		if ce.Code != types.ErrIOFailure || !strings.Contains(ce.Error(), "no space left") || !strings.Contains(ce.Error(), "full") {
			t.Errorf("%s ADD on a full disk: error %q (code %d), want code 5 naming network \"full\" and the lack of space", plugin, ce.Error(), ce.Code)
		}
		if leases := relLeasesOf(leaseDir, id); len(leases) > 0 {
			t.Errorf("failed ADD left leases %v", leases)
		}
		if probs := relLeaseProblems(leaseDir); len(probs) > 0 {
			t.Errorf("lease store: %s", strings.Join(probs, "; "))
		}
	}

	t.Run("host-local", func(t *testing.T) {
		out, err := add("host-local", "full-1")
		checkFailed(t, "host-local", "full-1", out, err)
	})
	t.Run("bridge", func(t *testing.T) {
		before := e.node.Snapshot(t)
		contBefore := e.cont.MustRun(t, "ip", "-o", "link", "show")
		out, err := add("bridge", "full-2")
		checkFailed(t, "bridge", "full-2", out, err)
		relSettle(t, e.node, "br-full")
		RequireSame(t, before, e.node.Snapshot(t))
		if after := e.cont.MustRun(t, "ip", "-o", "link", "show"); after != contBefore {
			t.Errorf("container namespace changed:\nbefore:\n%s\nafter:\n%s", contBefore, after)
		}
	})
	t.Run("DEL on a full disk", func(t *testing.T) {
		del("host-local", "before-1")
		if leases := relLeasesOf(leaseDir, "before-1"); len(leases) > 0 {
			t.Errorf("DEL left %v", leases)
		}
	})
	t.Run("almost full", func(t *testing.T) {
		for pages := 0; pages <= 8; pages++ {
			relFree(t, relFill(t, data), pages) // relFill truncates the filler first
			id := fmt.Sprintf("almost-%d", pages)
			out, err := add("host-local", id)
			if err != nil {
				t.Logf("%d pages free: ADD failed: %s", pages, CNIError(t, out).Msg)
				checkFailed(t, "host-local", id, out, err)
				continue
			}
			t.Logf("%d pages free: ADD succeeded", pages)
			if a := relAddrs(t, relResult(t, out)); len(a) != 2 {
				t.Errorf("%d pages free: ADD gave %v, want two addresses", pages, a)
			}
			if got := relLeasesOf(leaseDir, id); len(got) != 2 {
				t.Errorf("%d pages free: ADD succeeded with leases %v, want two", pages, got)
			}
			if probs := relLeaseProblems(leaseDir); len(probs) > 0 {
				t.Errorf("%d pages free: lease store: %s", pages, strings.Join(probs, "; "))
			}
			del("host-local", id)
		}
	})
	t.Run("space back", func(t *testing.T) {
		filler.Close()
		os.Remove(filepath.Join(data, "filler"))
		out, err := add("bridge", "after-1")
		if err != nil {
			t.Fatalf("ADD once space is back: %v\n%s", err, out)
		}
		del("bridge", "after-1")
		if probs := relLeaseProblems(leaseDir); len(probs) > 0 {
			t.Errorf("lease store: %s", strings.Join(probs, "; "))
		}
	})
}

// TestFullDiskRebuild fills the disk while the lease index must be rebuilt
// (a lease written by another plugin changed the directory): STATUS reports
// the full disk; DEL and GC still release leases, reading the lease files
// and writing no index; ADD fails with code 5; once space is back the index
// is rebuilt and everything is consistent.
func TestFullDiskRebuild(t *testing.T) {
	e := newRelEnv(t)
	data := relTmpfs(t, "256k")
	tmpl := `{"cniVersion":"1.1.0","name":"full","type":"host-local","ipam":{"type":"host-local","dataDir":"@DATA@","ranges":[[{"subnet":"10.90.0.0/24"}],[{"subnet":"fd90::/120"}]]}%s}`
	conf := relConf(strings.Replace(tmpl, "%s", "", 1), data, "", "")
	leaseDir := filepath.Join(data, "full")
	run := func(cmd, id string, c []byte) ([]byte, error) {
		return e.node.Exec(t, "host-local", cmd, id, e.cont.Path, "eth0", c)
	}
	for _, id := range []string{"a", "b"} {
		if out, err := run("ADD", id, conf); err != nil {
			t.Fatalf("ADD %s: %v\n%s", id, err, out)
		}
	}
	if err := os.WriteFile(filepath.Join(leaseDir, "10.90.0.200"), []byte("ref-1\r\neth0"), 0o644); err != nil {
		t.Fatal(err)
	}
	filler := relFill(t, data)

	if out, err := run("STATUS", "", conf); err == nil {
		t.Errorf("STATUS on a full disk succeeded")
	} else if ce := CNIError(t, out); ce.Code != 50 || !strings.Contains(ce.Msg, "no space left") || !strings.Contains(ce.Msg, leaseDir) {
		t.Errorf("STATUS on a full disk: %q (code %d), want code 50 naming %s and the lack of space", ce.Msg, ce.Code, leaseDir)
	}
	if out, err := run("DEL", "a", conf); err != nil {
		t.Fatalf("DEL on a full disk with the index to rebuild: %v\n%s", err, out)
	}
	if leases := relLeasesOf(leaseDir, "a"); len(leases) > 0 {
		t.Errorf("DEL left %v", leases)
	}
	gc := relConf(strings.Replace(tmpl, "%s", `,"cni.dev/valid-attachments":[{"containerID":"b","ifname":"eth0"}]`, 1), data, "", "")
	if out, err := run("GC", "", gc); err != nil {
		t.Fatalf("GC on a full disk with the index to rebuild: %v\n%s", err, out)
	}
	if leases := relLeasesOf(leaseDir, "ref-1"); len(leases) > 0 {
		t.Errorf("GC left %v", leases)
	}
	if leases := relLeasesOf(leaseDir, "b"); len(leases) != 2 {
		t.Errorf("GC took b's leases: b holds %v", leases)
	}
	filler.Close()
	filler = relFill(t, data) // what DEL and GC freed is taken again
	out, err := run("ADD", "c", conf)
	if err == nil {
		t.Fatalf("ADD on a full disk succeeded:\n%s", out)
	}
	if ce := CNIError(t, out); ce.Code != types.ErrIOFailure || !strings.Contains(ce.Msg, "no space left") {
		t.Errorf("ADD on a full disk: %q (code %d), want code 5 naming the lack of space", ce.Msg, ce.Code)
	}
	if leases := relLeasesOf(leaseDir, "c"); len(leases) > 0 {
		t.Errorf("failed ADD left %v", leases)
	}

	filler.Close()
	if err := os.Remove(filepath.Join(data, "filler")); err != nil {
		t.Fatal(err)
	}
	if out, err := run("STATUS", "", conf); err != nil {
		t.Errorf("STATUS once space is back: %v\n%s", err, out)
	}
	if out, err := run("ADD", "c", conf); err != nil {
		t.Fatalf("ADD once space is back: %v\n%s", err, out)
	}
	if probs := relLeaseProblems(leaseDir); len(probs) > 0 {
		t.Errorf("lease store: %s", strings.Join(probs, "; "))
	}
	for _, id := range []string{"b", "c"} {
		if out, err := run("DEL", id, conf); err != nil {
			t.Fatalf("DEL %s: %v\n%s", id, err, out)
		}
	}
	if n := relLeaseCount(leaseDir); n != 0 {
		t.Errorf("%d leases left", n)
	}
}

// TestReadOnlyStore: with the lease store's file system mounted read-only,
// host-local's DEL and GC of attachments that hold nothing succeed (a
// runtime is not stuck retrying); a DEL that must release fails with code 5
// naming the read-only file system; STATUS says 50; ADD fails with code 5.
func TestReadOnlyStore(t *testing.T) {
	e := newRelEnv(t)
	data := relTmpfs(t, "1m")
	tmpl := `{"cniVersion":"1.1.0","name":"ro","type":"host-local","ipam":{"type":"host-local","dataDir":"@DATA@","ranges":[[{"subnet":"10.91.0.0/24"}]]}%s}`
	conf := relConf(strings.Replace(tmpl, "%s", "", 1), data, "", "")
	run := func(cmd, id string, c []byte) ([]byte, error) {
		return e.node.Exec(t, "host-local", cmd, id, e.cont.Path, "eth0", c)
	}
	if out, err := run("ADD", "held", conf); err != nil {
		t.Fatalf("ADD: %v\n%s", err, out)
	}
	if out, err := exec.Command("mount", "-n", "-o", "remount,ro", data).CombinedOutput(); err != nil {
		t.Skipf("cannot remount %s read-only: %v: %s", data, err, out)
	}
	if out, err := run("DEL", "never-added", conf); err != nil {
		t.Errorf("DEL of an attachment never added, store read-only: %v\n%s", err, out)
	}
	gc := relConf(strings.Replace(tmpl, "%s", `,"cni.dev/valid-attachments":[{"containerID":"held","ifname":"eth0"}]`, 1), data, "", "")
	if out, err := run("GC", "", gc); err != nil {
		t.Errorf("GC releasing nothing, store read-only: %v\n%s", err, out)
	}
	out, err := run("DEL", "held", conf)
	if err == nil {
		t.Errorf("DEL of a held lease on a read-only store succeeded")
	} else if ce := CNIError(t, out); ce.Code != types.ErrIOFailure || !strings.Contains(ce.Msg, "read-only file system") || strings.Contains(ce.Msg, "/proc/self/fd") {
		t.Errorf("DEL of a held lease on a read-only store: %q (code %d), want code 5 naming the read-only file system", ce.Msg, ce.Code)
	}
	if out, err := run("STATUS", "", conf); err == nil {
		t.Errorf("STATUS on a read-only store succeeded")
	} else if ce := CNIError(t, out); ce.Code != 50 || !strings.Contains(ce.Msg, "read-only file system") {
		t.Errorf("STATUS on a read-only store: %q (code %d), want code 50 naming the read-only file system", ce.Msg, ce.Code)
	}
	out, err = run("ADD", "new", conf)
	if err == nil {
		t.Errorf("ADD on a read-only store succeeded")
	} else if ce := CNIError(t, out); ce.Code != types.ErrIOFailure || !strings.Contains(ce.Msg, "read-only file system") || strings.Contains(ce.Msg, "/proc/self/fd") {
		t.Errorf("ADD on a read-only store: %q (code %d), want code 5 naming the read-only file system", ce.Msg, ce.Code)
	}
	if out, err := exec.Command("mount", "-n", "-o", "remount,rw", data).CombinedOutput(); err != nil {
		t.Fatalf("remount %s read-write: %v: %s", data, err, out)
	}
	if out, err := run("DEL", "held", conf); err != nil {
		t.Errorf("DEL once writable: %v\n%s", err, out)
	}
	if leases := relLeasesOf(filepath.Join(data, "ro"), "held"); len(leases) > 0 {
		t.Errorf("DEL left %v", leases)
	}
}
