package disk

import (
	"os"
	"path/filepath"
	"testing"
)

// The stamp replaced by a directory: the index is not used, and, as for a
// link or a FIFO there, the next call must be able to rebuild it (the
// stamp removed); otherwise every ADD fails from then on.
func TestStampIsDirectoryHeals(t *testing.T) {
	s := open(t)
	reserve(t, s, attA, "10.0.0.2", 0)
	os.Remove(filepath.Join(s.idxDir, stampName))
	if err := os.MkdirAll(filepath.Join(s.idxDir, stampName, "sub"), 0o755); err != nil {
		t.Fatal(err)
	}
	_ = reserveErr(t, s, attA, "10.0.0.3") // may fail, naming the stamp
	if err := reserveErr(t, s, attB, "10.0.0.4"); err != nil {
		t.Errorf("the reservation after that: %v", err)
	}
}
