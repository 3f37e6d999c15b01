package disk

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/flatcni/plugins/pkg/safefs"
)

// OpenForTeardown replaces a lock entry that is not a regular file; a
// second one racing it can replace the lock file the first has just made
// (it removes whatever it finds under the name). A store that opened the
// replaced file must not then lock it alone: it would hold a lock that
// orders nothing with whoever opens the name now. Here: s1 opens the lock,
// the name is given a new file, s2 locks that one; s1's Lock must wait.
func TestLockFollowsReplacedLockFile(t *testing.T) {
	data := t.TempDir()
	s1, err := Open(data, "net1")
	if err != nil {
		t.Fatal(err)
	}
	defer s1.Close()
	lock := filepath.Join(data, "net1", lockName)
	if err := os.Remove(lock); err != nil {
		t.Fatal(err)
	}
	s2, err := Open(data, "net1")
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	if err := s2.Lock(); err != nil {
		t.Fatal(err)
	}
	got := make(chan error, 1)
	go func() { got <- s1.Lock() }()
	select {
	case err := <-got:
		t.Errorf("s1.Lock returned (%v) while s2 holds the network's lock", err)
		s2.Unlock()
		return
	case <-time.After(300 * time.Millisecond):
	}
	if err := s2.Unlock(); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-got:
		if err != nil {
			t.Fatal(err)
		}
		s1.Unlock()
	case <-time.After(10 * time.Second):
		t.Fatal("s1.Lock still waits after s2's Unlock")
	}
}

// Two teardowns that both found something else than a lock file at the
// lock's name: the second repairs after the first made and locked the new
// file. It must open that file, not remove it (which would let both into
// the store, each holding a lock on a different file).
func TestRepairLockAfterAnotherRepair(t *testing.T) {
	data := t.TempDir()
	if err := os.MkdirAll(filepath.Join(data, "net1", lockName), 0o700); err != nil {
		t.Fatal(err)
	}
	s1, err := OpenForTeardown(data, "net1")
	if err != nil {
		t.Fatal(err)
	}
	defer s1.Close()
	if err := s1.Lock(); err != nil {
		t.Fatal(err)
	}
	// The second teardown's repair, on the strength of its earlier look.
	d, err := safefs.Open(filepath.Join(data, "net1"))
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	f, err := repairLock(d)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var held, got unix.Stat_t
	if err := unix.Fstat(int(s1.lock.Fd()), &held); err != nil {
		t.Fatal(err)
	}
	if err := unix.Fstat(int(f.Fd()), &got); err != nil {
		t.Fatal(err)
	}
	if held.Ino != got.Ino || !d.Holds(lockName, s1.lock) {
		t.Errorf("the second repair replaced the lock file the first holds (inode %d, now %d)", held.Ino, got.Ino)
	}
}
