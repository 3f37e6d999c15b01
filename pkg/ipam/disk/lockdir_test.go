package disk

import (
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// A lock entry that is a directory is not a regular file either: ADD
// (Open) refuses it, naming it. DEL and GC (OpenForTeardown) release the
// attachment's leases under a lock of the lease directory, and leave the
// entry and everything in it alone: it may be another program's (a
// configuration whose dataDir and name make the lease directory /run holds
// /run/lock), and a tree deeper than any removal would go must not make
// them fail.
func TestOpenForTeardownLockIsDirectory(t *testing.T) {
	data := t.TempDir()
	s := func() *Store {
		s, err := Open(data, "net1")
		if err != nil {
			t.Fatal(err)
		}
		return s
	}()
	reserve(t, s, attA, "10.0.0.2", 0)
	reserve(t, s, attB, "10.0.0.3", 0)
	s.Close()

	lock := filepath.Join(data, "net1", "lock")
	if err := os.Remove(lock); err != nil {
		t.Fatal(err)
	}
	deep := filepath.Join(lock, strings.Repeat("a/", 20))
	if err := os.MkdirAll(deep, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(lock, "LCK..ttyS0"), []byte("42"), 0o644); err != nil {
		t.Fatal(err)
	}
	v := newVictim(t)
	symlink(t, v.dir, filepath.Join(lock, "link"))

	if s, err := Open(data, "net1"); err == nil || !strings.Contains(err.Error(), lock) {
		if s != nil {
			s.Close()
		}
		t.Errorf("Open with a directory as lock file: %v, want an error naming %s", err, lock)
	}
	td, err := OpenForTeardown(data, "net1")
	if err != nil {
		t.Fatalf("OpenForTeardown with a directory as lock file: %v", err)
	}
	locked(t, td, func() {
		if _, err := td.Release(attA); err != nil {
			t.Fatalf("Release: %v", err)
		}
	})
	if got := leases(t, td, attB); got != "[10.0.0.3]" {
		t.Errorf("attB's leases after attA's release: %s", got)
	}
	td.Close()
	if _, err := os.Stat(filepath.Join(data, "net1", "10.0.0.2")); !os.IsNotExist(err) {
		t.Errorf("attA's lease file after its release: %v", err)
	}
	if b, err := os.ReadFile(filepath.Join(lock, "LCK..ttyS0")); err != nil || string(b) != "42" {
		t.Errorf("a file in the lock directory changed: %q, %v", b, err)
	}
	if fi, err := os.Stat(deep); err != nil || !fi.IsDir() {
		t.Errorf("the deep tree in the lock directory changed: %v", err)
	}
	v.check(t)
}

// Two teardowns without a usable lock file exclude each other (they lock
// the lease directory).
func TestTeardownsWithoutLockFileExclude(t *testing.T) {
	data := t.TempDir()
	lock := filepath.Join(data, "net1", "lock")
	if err := os.MkdirAll(lock, 0o700); err != nil {
		t.Fatal(err)
	}
	s1, err := OpenForTeardown(data, "net1")
	if err != nil {
		t.Fatal(err)
	}
	defer s1.Close()
	s2, err := OpenForTeardown(data, "net1")
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	lockWaits(t, s1, s2)
}

// A lock file of another user (made by whoever can write in the lease
// directory, and maybe held by them for ever) is refused by ADD, naming
// it; a teardown does not wait for its holder.
func TestLockFileOfAnotherUser(t *testing.T) {
	data := storeAsRoot(t)
	lock := filepath.Join(data, "net1", "lock")
	if err := os.Remove(lock); err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(lock, os.O_CREATE|os.O_RDWR, 0o666)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := os.Chown(lock, 65534, 65534); err != nil {
		t.Fatal(err)
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX); err != nil {
		t.Fatal(err)
	}
	if s, err := Open(data, "net1"); err == nil || !strings.Contains(err.Error(), lock) || !strings.Contains(err.Error(), "65534") {
		if s != nil {
			s.Close()
		}
		t.Errorf("Open with another user's lock file: %v, want an error naming it and its owner", err)
	}
	withTimeout(t, "a teardown beside another user's held lock file", func() {
		td, err := OpenForTeardown(data, "net1")
		if err != nil {
			t.Fatalf("OpenForTeardown: %v", err)
		}
		defer td.Close()
		locked(t, td, func() {
			if got, err := td.Release(attA); err != nil || len(got) != 1 {
				t.Errorf("Release = %v, %v", got, err)
			}
		})
	})
	var st unix.Stat_t
	if err := unix.Stat(lock, &st); err != nil || st.Uid != 65534 {
		t.Errorf("the other user's lock file after the teardown: uid %d, %v; want it left as it was", st.Uid, err)
	}
}

// A teardown makes no lease index where there is none (a directory only
// the reference plugin has used, or one that is no lease store at all) and
// leaves the directory's modification time as its own changes leave it.
func TestTeardownMakesNoIndex(t *testing.T) {
	data := t.TempDir()
	dir := filepath.Join(data, "net1")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "10.0.0.2"), []byte("ctr-a\r\neth0"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "10.0.0.3"), []byte("ctr-b\r\neth0"), 0o644); err != nil {
		t.Fatal(err)
	}
	td, err := OpenForTeardown(data, "net1")
	if err != nil {
		t.Fatal(err)
	}
	before := time.Now()
	locked(t, td, func() {
		if got, err := td.Release(attA); err != nil || len(got) != 1 {
			t.Errorf("Release = %v, %v", got, err)
		}
	})
	td.Close()
	if _, err := os.Lstat(filepath.Join(dir, indexDirName)); !os.IsNotExist(err) {
		t.Errorf("%s after a teardown: %v, want none", indexDirName, err)
	}
	if fi, err := os.Stat(dir); err != nil || fi.ModTime().Before(before.Add(-time.Second)) {
		t.Errorf("lease directory's mtime after a teardown: %v, %v (set back)", fi.ModTime(), err)
	}
	if _, err := os.Stat(filepath.Join(dir, "10.0.0.3")); err != nil {
		t.Errorf("attB's lease: %v", err)
	}
	if probs := Check(dir); len(probs) > 0 {
		t.Errorf("a store without an index after a teardown: %v", probs)
	}
}

// A teardown that found the lock entry unusable, and the entry repaired
// before it locks (an ADD made the lock file): it locks the lock file, as
// the ADD does, not the directory alone.
func TestTeardownLocksRepairedLockFile(t *testing.T) {
	data := t.TempDir()
	lock := filepath.Join(data, "net1", lockName)
	if err := os.MkdirAll(lock, 0o700); err != nil {
		t.Fatal(err)
	}
	td, err := OpenForTeardown(data, "net1")
	if err != nil {
		t.Fatal(err)
	}
	defer td.Close()
	if err := os.Remove(lock); err != nil {
		t.Fatal(err)
	}
	add, err := Open(data, "net1")
	if err != nil {
		t.Fatal(err)
	}
	defer add.Close()
	lockWaits(t, td, add)
}

// On NFS with root_squash, root's files are another user's: there a lease
// directory and lock file of another user are used. Anywhere else a lease
// directory of another user is someone else's (made beforehand in a dataDir
// others can write in: its owner could hold the lock for ever, or choose
// the leases): ADD refuses it, naming it and its owner; DEL and GC find no
// lease of ours there and change nothing in it.
func TestLeaseDirectoryOfAnotherUser(t *testing.T) {
	data := storeAsRoot(t)
	for _, p := range []string{filepath.Join(data, "net1"), filepath.Join(data, "net1", lockName)} {
		if err := os.Chown(p, 65534, 65534); err != nil {
			t.Fatal(err)
		}
	}
	if s, err := Open(data, "net1"); err == nil || !strings.Contains(err.Error(), filepath.Join(data, "net1")) || !strings.Contains(err.Error(), "65534") {
		t.Errorf("Open of a lease directory of another user: %v, want a refusal naming it and its owner", err)
		if err == nil {
			s.Close()
		}
	}
	if s, err := OpenForTeardown(data, "net1"); !errors.Is(err, ErrForeignStore) {
		t.Errorf("OpenForTeardown of a lease directory of another user: %v, want ErrForeignStore", err)
		if err == nil {
			s.Close()
		}
	}
	if _, err := Probe(data, "net1", 1); !errors.Is(err, ErrForeignStore) {
		t.Errorf("Probe of a lease directory of another user: %v, want ErrForeignStore", err)
	}
	// Its lease files are none of ours (the bridge's last DEL asks).
	sub := netip.MustParsePrefix("10.0.0.0/24")
	if any, err := AnyLease(filepath.Join(data, "net1")); err != nil || any {
		t.Errorf("AnyLease in a lease directory of another user = %v, %v; want none", any, err)
	}
	if in, err := LeasedIn(filepath.Join(data, "net1"), []netip.Prefix{sub}); err != nil || len(in) != 0 {
		t.Errorf("LeasedIn in a lease directory of another user = %v, %v; want none", in, err)
	}

	squashing = func(int) bool { return true }
	defer func() { squashing = rootSquashing }()
	s, err := Open(data, "net1")
	if err != nil {
		t.Fatalf("Open with the lease directory and lock file of another user, on NFS: %v", err)
	}
	s.Close()
	if s, err = OpenForTeardown(data, "net1"); err != nil {
		t.Fatalf("OpenForTeardown on NFS: %v", err)
	}
	s.Close()
	if leased, err := Probe(data, "net1", 1); err != nil || len(leased) != 1 {
		t.Errorf("Probe on NFS = %v, %v; want the lease", leased, err)
	}
	if any, err := AnyLease(filepath.Join(data, "net1")); err != nil || !any {
		t.Errorf("AnyLease on NFS = %v, %v; want the lease", any, err)
	}
}

// storeAsRoot makes a lease store of network net1 holding attA's lease of
// 10.0.0.2, for tests that give its files to another user (root only).
func storeAsRoot(t *testing.T) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root (chown)")
	}
	data := t.TempDir()
	s, err := Open(data, "net1")
	if err != nil {
		t.Fatal(err)
	}
	reserve(t, s, attA, "10.0.0.2", 0)
	s.Close()
	return data
}
