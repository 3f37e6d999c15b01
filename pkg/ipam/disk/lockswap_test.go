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
