package disk

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// readOnlyStore mounts a tmpfs on a temporary directory, makes the lease
// store of net1 there with attA holding 10.0.0.2 (without its lock file
// when noLock), and returns the directory and a remount function.
func readOnlyStore(t *testing.T, noLock bool) (string, func(mode string)) {
	t.Helper()
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
	if noLock {
		if err := os.Remove(filepath.Join(dir, "net1", lockName)); err != nil {
			t.Fatal(err)
		}
	}
	return dir, remount
}

// holdDirLock takes a lock on the lease directory from another open file
// description, as any local user who can open the directory could.
func holdDirLock(t *testing.T, dir string) {
	t.Helper()
	fd, err := unix.Open(filepath.Join(dir, "net1"), unix.O_RDONLY|unix.O_DIRECTORY, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(fd) })
	if err := unix.Flock(fd, unix.LOCK_EX); err != nil {
		t.Fatal(err)
	}
}

// lockSoon locks td, failing the test if that waits (for a lock someone
// else holds).
func lockSoon(t *testing.T, td *Store) {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- td.Lock() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Lock: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Lock waits for the lease directory's lock, which anyone who can open the directory can hold")
	}
}

// A teardown on a read-only file system locks the lease lock file (opened
// read-only, as always: flock(2) needs no write access), the lock every
// writer takes, not the lease directory, which any local user can open and
// hold for ever; without a lock file (a store no ADD has locked since it
// was made) it locks nothing: nobody can write a lease there. It releases
// what holds nothing and fails on a lease it would have to remove. Once
// the file system is writable again, holding the writers' lock it
// releases; without it, it refuses to change anything (an ADD then makes
// the lock file and locks that).
func TestTeardownReadOnlyStore(t *testing.T) {
	for _, noLock := range []bool{false, true} {
		t.Run(fmt.Sprintf("noLock=%v", noLock), func(t *testing.T) {
			dir, remount := readOnlyStore(t, noLock)
			remount("ro")
			holdDirLock(t, dir)
			td, err := OpenForTeardown(dir, "net1")
			if err != nil {
				t.Fatalf("OpenForTeardown on a read-only store: %v", err)
			}
			defer td.Close()
			lockSoon(t, td)
			if got, err := td.Release(attB); err != nil || len(got) != 0 {
				t.Errorf("Release of an attachment holding nothing: %v, %v", got, err)
			}
			if _, err := td.Release(attA); err == nil || !strings.Contains(err.Error(), "read-only") {
				t.Errorf("Release of a held lease on a read-only store: %v, want a read-only error", err)
			}
			remount("rw")
			got, err := td.Release(attA)
			switch {
			case !noLock && (err != nil || len(got) != 1):
				t.Errorf("Release once writable, under the writers' lock: %v, %v", got, err)
			case noLock && (err == nil || !strings.Contains(err.Error(), "became writable")):
				t.Errorf("Release once writable, without a lock: %v, want a refusal", err)
			}
			_ = td.Unlock()
			if _, err := os.Lstat(filepath.Join(dir, "net1", "10.0.0.2")); (err == nil) != noLock {
				t.Errorf("the lease after the release once writable: %v (kept: want %v)", err, noLock)
			}
		})
	}
}
