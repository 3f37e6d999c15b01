package disk

import (
	"os"
	"path/filepath"
	"testing"
	"time"
)

// The lock file may be removed (by an administrator) after a store opened
// it, and the name given a new file. A store that opened the removed file
// must not then lock it alone: it would hold a lock that orders nothing
// with whoever opens the name now. Here: s1 opens the lock, the name is
// given a new file, s2 locks that one; s1's Lock must wait.
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
	lockWaits(t, s2, s1)
}

// lockWaits checks that waiter's Lock waits while holder holds the lock,
// and returns once holder unlocks.
func lockWaits(t *testing.T, holder, waiter *Store) {
	t.Helper()
	if err := holder.Lock(); err != nil {
		t.Fatal(err)
	}
	got := make(chan error, 1)
	go func() { got <- waiter.Lock() }()
	select {
	case err := <-got:
		t.Errorf("Lock returned (%v) while another store holds the network's lock", err)
		holder.Unlock()
		return
	case <-time.After(300 * time.Millisecond):
	}
	if err := holder.Unlock(); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-got:
		if err != nil {
			t.Fatal(err)
		}
		waiter.Unlock()
	case <-time.After(10 * time.Second):
		t.Fatal("Lock still waits after the holder's Unlock")
	}
}
