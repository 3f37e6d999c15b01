package disk

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// A teardown on a read-only file system locks the lease directory (the lock
// file cannot be opened for writing): it releases what holds nothing, fails
// on a lease it would have to remove, and refuses to change anything once
// the file system became writable under it (writers lock the file, which it
// does not hold).
func TestTeardownReadOnlyStore(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to mount a file system")
	}
	dir := t.TempDir()
	if out, err := exec.Command("mount", "-n", "-t", "tmpfs", "-o", "size=1m", "flatcni-ro", dir).CombinedOutput(); err != nil {
		t.Skipf("cannot mount a tmpfs: %v: %s", err, out)
	}
	t.Cleanup(func() { _ = syscall.Unmount(dir, syscall.MNT_DETACH) })
	remount := func(mode string) {
		t.Helper()
		if out, err := exec.Command("mount", "-n", "-o", "remount,"+mode, dir).CombinedOutput(); err != nil {
			t.Fatalf("remount %s %s: %v: %s", dir, mode, err, out)
		}
	}
	s, err := Open(dir, "net1")
	if err != nil {
		t.Fatal(err)
	}
	reserve(t, s, attA, "10.0.0.2", 0)
	s.Close()

	remount("ro")
	td, err := OpenForTeardown(dir, "net1")
	if err != nil {
		t.Fatalf("OpenForTeardown on a read-only store: %v", err)
	}
	defer td.Close()
	if err := td.Lock(); err != nil {
		t.Fatalf("Lock: %v", err)
	}
	if got, err := td.Release(attB); err != nil || len(got) != 0 {
		t.Errorf("Release of an attachment holding nothing: %v, %v", got, err)
	}
	if _, err := td.Release(attA); err == nil || !strings.Contains(err.Error(), "read-only") {
		t.Errorf("Release of a held lease on a read-only store: %v, want a read-only error", err)
	}
	remount("rw")
	if _, err := td.Release(attA); err == nil || !strings.Contains(err.Error(), "became writable") {
		t.Errorf("Release once writable, under the directory's lock: %v, want a refusal", err)
	}
	_ = td.Unlock()
	if _, err := os.Lstat(filepath.Join(dir, "net1", "10.0.0.2")); err != nil {
		t.Errorf("the lease went: %v", err)
	}
}
