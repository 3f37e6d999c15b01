package disk

import (
	"os"
	"path/filepath"
	"testing"
)

// A lock entry that is a directory is not a regular file either: DEL and GC
// (OpenForTeardown) must replace it as they do a link or a FIFO, or they
// fail for ever.
func TestOpenForTeardownLockIsDirectory(t *testing.T) {
	data := t.TempDir()
	lock := filepath.Join(data, "net1", "lock")
	if err := os.MkdirAll(filepath.Join(lock, "sub"), 0o755); err != nil {
		t.Fatal(err)
	}
	v := newVictim(t)
	symlink(t, v.dir, filepath.Join(lock, "sub", "link"))
	if s, err := Open(data, "net1"); err == nil {
		s.Close()
		t.Errorf("Open with a directory as lock file succeeded")
	}
	s, err := OpenForTeardown(data, "net1")
	if err != nil {
		t.Fatalf("OpenForTeardown with a directory as lock file: %v", err)
	}
	s.Close()
	if fi, err := os.Lstat(lock); err != nil || !fi.Mode().IsRegular() {
		t.Errorf("lock after OpenForTeardown: %v, %v", fi, err)
	}
	v.check(t)
}
