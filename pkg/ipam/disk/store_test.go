package disk

import (
	"fmt"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/flatcni/plugins/pkg/ipam"
	"github.com/flatcni/plugins/pkg/safefs"
)

var (
	attA = ipam.Attachment{ContainerID: "ctr-a", IfName: "eth0"}
	attB = ipam.Attachment{ContainerID: "ctr-b", IfName: "eth0"}
)

func open(t *testing.T) *Store {
	t.Helper()
	s, err := Open(t.TempDir(), "net1")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// locked runs fn under the store's lock, as the verbs do.
func locked(t *testing.T, s *Store, fn func()) {
	t.Helper()
	if err := s.Lock(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := s.Unlock(); err != nil {
			t.Fatal(err)
		}
	}()
	fn()
}

func reserve(t *testing.T, s *Store, a ipam.Attachment, addr string, set int) {
	t.Helper()
	locked(t, s, func() {
		ok, err := s.Reserve(a, netip.MustParseAddr(addr), set)
		if err != nil || !ok {
			t.Fatalf("Reserve(%s, %s) = %v, %v", a, addr, ok, err)
		}
	})
}

func leases(t *testing.T, s *Store, a ipam.Attachment) string {
	t.Helper()
	var got []netip.Addr
	locked(t, s, func() {
		var err error
		if got, err = s.Leases(a); err != nil {
			t.Fatal(err)
		}
	})
	slices.SortFunc(got, netip.Addr.Compare)
	return fmt.Sprint(got)
}

// writeForeign writes a lease file the way the reference plugin does: no index.
func writeForeign(t *testing.T, s *Store, addr, content string) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(s.Dir(), addr), []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

// checkConsistent verifies that the index lists exactly the lease files
// (once rebuilt or kept up to date) and that no temporary file is left.
func checkConsistent(t *testing.T, s *Store) {
	t.Helper()
	locked(t, s, func() { // All sweeps temporary files of killed writers
		if _, err := s.All(); err != nil {
			t.Fatal(err)
		}
	})
	if probs := Check(s.Dir()); len(probs) > 0 {
		t.Fatalf("lease store:\n%s", strings.Join(probs, "\n"))
	}
	if tmp := TempFiles(s.Dir()); len(tmp) > 0 {
		t.Fatalf("temporary files left: %v", tmp)
	}
}

func TestReserveLayout(t *testing.T) {
	s := open(t)
	reserve(t, s, attA, "10.0.0.2", 0)
	reserve(t, s, attA, "fd00::2", 1)
	for _, f := range []struct{ name, want string }{
		{"10.0.0.2", "ctr-a\r\neth0"},
		{"fd00::2", "ctr-a\r\neth0"},
		{"last_reserved_ip.0", "10.0.0.2"},
		{"last_reserved_ip.1", "fd00::2"},
	} {
		b, err := os.ReadFile(filepath.Join(s.Dir(), f.name))
		if err != nil || string(b) != f.want {
			t.Errorf("%s = %q, %v; want %q", f.name, b, err, f.want)
		}
	}
	if _, err := os.Stat(filepath.Join(s.Dir(), "lock")); err != nil {
		t.Errorf("lock file: %v", err)
	}
	if got := s.LastReserved(1); got != netip.MustParseAddr("fd00::2") {
		t.Errorf("LastReserved(1) = %v", got)
	}
	if got := s.LastReserved(7); got.IsValid() {
		t.Errorf("LastReserved(7) = %v, want none", got)
	}
	locked(t, s, func() {
		if ok, err := s.Reserve(attB, netip.MustParseAddr("10.0.0.2"), 0); ok || err != nil {
			t.Fatalf("second Reserve of a taken address = %v, %v", ok, err)
		}
	})
	if got := leases(t, s, attA); got != "[10.0.0.2 fd00::2]" {
		t.Fatalf("Leases = %s", got)
	}
	checkConsistent(t, s)
}

// last_reserved_ip and the stamp are rewritten in place: a shorter address
// leaves no tail of the longer one, a torn stamp only forces a rebuild, and
// an untouched stamp keeps the index trusted (no rebuild after our own
// change).
func TestInPlaceRewrites(t *testing.T) {
	s := open(t)
	last := filepath.Join(s.Dir(), "last_reserved_ip.0")
	for _, addr := range []string{"10.0.0.100", "10.0.0.9", "10.0.0.10"} {
		reserve(t, s, attA, addr, 0)
		if b, err := os.ReadFile(last); err != nil || string(b) != addr {
			t.Fatalf("after reserving %s, last_reserved_ip.0 = %q, %v", addr, b, err)
		}
	}
	if fi, err := os.Stat(last); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("last_reserved_ip.0: %v, %v; want mode 0600", fi, err)
	}
	stamp := filepath.Join(s.idxDir, stampName)
	want, err := os.ReadFile(stamp)
	if err != nil {
		t.Fatal(err)
	}
	// The stamp still matches: a lease rewritten in place to name B is not
	// noticed (no rebuild), as TestLookupDoesNotScan relies on.
	if err := os.WriteFile(filepath.Join(s.Dir(), "10.0.0.9"), []byte("ctr-b\r\neth0"), 0o600); err != nil {
		t.Fatal(err)
	}
	if got := leases(t, s, attB); got != "[]" {
		t.Fatalf("Leases(B) = %s: our own stamp was not trusted", got)
	}
	// A stamp cut short (a writer killed in the middle) is not trusted.
	if err := os.WriteFile(stamp, want[:len(want)/2], 0o600); err != nil {
		t.Fatal(err)
	}
	if got := leases(t, s, attB); got != "[10.0.0.9]" {
		t.Fatalf("Leases(B) = %s after a torn stamp, want a rebuild to find 10.0.0.9", got)
	}
	checkConsistent(t, s)
}

func TestReleaseAndReleaseAddrs(t *testing.T) {
	s := open(t)
	reserve(t, s, attA, "10.0.0.2", 0)
	reserve(t, s, attA, "10.0.1.2", 1)
	reserve(t, s, attA, "fd00::2", 2)
	reserve(t, s, attB, "10.0.0.3", 0)
	locked(t, s, func() {
		if err := s.ReleaseAddrs(attA, []netip.Addr{netip.MustParseAddr("10.0.1.2"), netip.MustParseAddr("10.0.0.3")}); err != nil {
			t.Fatal(err)
		}
	})
	if got := leases(t, s, attA); got != "[10.0.0.2 fd00::2]" {
		t.Fatalf("after ReleaseAddrs, A holds %s", got)
	}
	if got := leases(t, s, attB); got != "[10.0.0.3]" {
		t.Fatalf("ReleaseAddrs touched B: %s", got)
	}
	checkConsistent(t, s)
	locked(t, s, func() {
		freed, err := s.Release(attA)
		if err != nil || fmt.Sprint(freed) != "[10.0.0.2 fd00::2]" {
			t.Fatalf("Release = %v, %v", freed, err)
		}
		freed, err = s.Release(attA)
		if err != nil || len(freed) != 0 {
			t.Fatalf("second Release = %v, %v", freed, err)
		}
	})
	for _, name := range []string{"10.0.0.2", "fd00::2"} {
		if _, err := os.Stat(filepath.Join(s.Dir(), name)); !os.IsNotExist(err) {
			t.Errorf("%s still exists: %v", name, err)
		}
	}
	checkConsistent(t, s)
}

// Leases written by another writer (the reference plugin, a person) carry no
// index entry; the index is rebuilt when the directory changes under it.
func TestForeignChanges(t *testing.T) {
	tests := []struct {
		name   string
		change func(t *testing.T, s *Store)
		a      ipam.Attachment
		want   string
	}{
		{name: "lease added by hand", a: attB, want: "[10.0.0.9]",
			change: func(t *testing.T, s *Store) { writeForeign(t, s, "10.0.0.9", "ctr-b\r\neth0") }},
		{name: "lease with trailing newline", a: attB, want: "[10.0.0.9]",
			change: func(t *testing.T, s *Store) { writeForeign(t, s, "10.0.0.9", " ctr-b\r\neth0\n") }},
		{name: "lease removed by hand", a: attA, want: "[]",
			change: func(t *testing.T, s *Store) { os.Remove(filepath.Join(s.Dir(), "10.0.0.2")) }},
		{name: "old-format lease (container ID only)", a: attB, want: "[10.0.0.9]",
			change: func(t *testing.T, s *Store) { writeForeign(t, s, "10.0.0.9", "ctr-b") }},
		{name: "old-format lease, other interface name asked", a: ipam.Attachment{ContainerID: "ctr-b", IfName: "net5"}, want: "[10.0.0.9]",
			change: func(t *testing.T, s *Store) { writeForeign(t, s, "10.0.0.9", "ctr-b") }},
		{name: "lease moved to another owner", a: attA, want: "[]",
			change: func(t *testing.T, s *Store) {
				os.Remove(filepath.Join(s.Dir(), "10.0.0.2"))
				writeForeign(t, s, "10.0.0.2", "ctr-b\r\neth0")
			}},
		{name: "index directory deleted", a: attA, want: "[10.0.0.2]",
			change: func(t *testing.T, s *Store) { os.RemoveAll(s.idxDir) }},
		{name: "stale temporary files", a: attA, want: "[10.0.0.2]",
			change: func(t *testing.T, s *Store) {
				os.WriteFile(filepath.Join(s.idxDir, tmpPrefix+"999999.1"), []byte("ctr-z\r\neth0"), 0o600)
				writeForeign(t, s, "10.0.0.77", "ctr-c\r\neth0")
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := open(t)
			reserve(t, s, attA, "10.0.0.2", 0)
			if got := leases(t, s, attB); got != "[]" {
				t.Fatalf("B holds %s before the change", got)
			}
			tt.change(t, s)
			if got := leases(t, s, tt.a); got != tt.want {
				t.Fatalf("Leases(%s) = %s, want %s", tt.a, got, tt.want)
			}
			checkConsistent(t, s)
			// Whatever was found can be released, and then nothing is held.
			locked(t, s, func() {
				if _, err := s.Release(tt.a); err != nil {
					t.Fatal(err)
				}
			})
			if got := leases(t, s, tt.a); got != "[]" {
				t.Fatalf("after Release, %s holds %s", tt.a, got)
			}
			checkConsistent(t, s)
		})
	}
}

// On a kernel with coarse timestamps (before 6.13, or ext4 with 128-byte
// inodes), a change within the same clock tick as the previous one leaves the
// directory's mtime as it was. A foreign lease written that soon after our
// change, or after a rebuild, must still be found. The test sets the mtime
// back by hand to play that clock.
func TestForeignLeaseInSameTick(t *testing.T) {
	s := open(t)
	var tick time.Time // the mtime our change left, before Unlock
	locked(t, s, func() {
		if ok, err := s.Reserve(attA, netip.MustParseAddr("10.0.0.2"), 0); err != nil || !ok {
			t.Fatalf("Reserve = %v, %v", ok, err)
		}
		fi, err := os.Stat(s.Dir())
		if err != nil {
			t.Fatal(err)
		}
		tick = fi.ModTime()
	})
	sameTick := func(addr, content string) {
		writeForeign(t, s, addr, content)
		if err := os.Chtimes(s.Dir(), time.Time{}, tick); err != nil {
			t.Fatal(err)
		}
	}
	sameTick("10.0.0.9", "ctr-b\r\neth0")
	if got := leases(t, s, attB); got != "[10.0.0.9]" {
		t.Fatalf("Leases(B) = %s, want the lease written in the same tick", got)
	}
	// The lookup above rebuilt the index; another foreign lease in that tick.
	attC := ipam.Attachment{ContainerID: "ctr-c", IfName: "eth0"}
	sameTick("10.0.0.10", "ctr-c\r\neth0")
	if got := leases(t, s, attC); got != "[10.0.0.10]" {
		t.Fatalf("Leases(C) = %s, want the lease written in the same tick as the rebuild", got)
	}
	checkConsistent(t, s)
}

// A lease directory we do not own (a dataDir shared with another user): its
// mtime cannot be set back, and the stamp is still recorded, so the index is
// trusted as before rather than rebuilt on every call.
func TestStampWithoutOwnership(t *testing.T) {
	chtimes = func(d *safefs.Dir, _ time.Time) error {
		return &fs.PathError{Op: "chtimes", Path: d.Path(), Err: syscall.EPERM}
	}
	t.Cleanup(func() { chtimes = (*safefs.Dir).SetMtime })
	if got := leasesAfterRewriteInPlace(t, open(t)); got != "[10.0.0.2]" {
		t.Fatalf("Leases(A) = %s: the index was rebuilt, no stamp was recorded", got)
	}
}

// leasesAfterRewriteInPlace reserves 10.0.0.2 for A and 10.0.0.3 for B,
// rewrites B's lease file in place to name A (the directory's mtime does not
// move) and returns A's leases: [10.0.0.2] while the index is trusted, both
// addresses after a rebuild or a scan.
func leasesAfterRewriteInPlace(t *testing.T, s *Store) string {
	t.Helper()
	reserve(t, s, attA, "10.0.0.2", 0)
	reserve(t, s, attB, "10.0.0.3", 0)
	if err := os.WriteFile(filepath.Join(s.Dir(), "10.0.0.3"), []byte("ctr-a\r\neth0"), 0o600); err != nil {
		t.Fatal(err)
	}
	return leases(t, s, attA)
}

// A stale index entry (its address now leased to someone else, written in
// place so the directory's mtime does not move) is not trusted.
func TestStaleIndexEntryIgnored(t *testing.T) {
	s := open(t)
	reserve(t, s, attA, "10.0.0.2", 0)
	if err := os.WriteFile(filepath.Join(s.Dir(), "10.0.0.2"), []byte("ctr-b\r\neth0"), 0o600); err != nil {
		t.Fatal(err)
	}
	if got := leases(t, s, attA); got != "[]" {
		t.Fatalf("A holds %s through a stale index entry", got)
	}
	locked(t, s, func() {
		if freed, err := s.Release(attA); err != nil || len(freed) != 0 {
			t.Fatalf("Release(A) = %v, %v", freed, err)
		}
	})
	if _, err := os.Stat(filepath.Join(s.Dir(), "10.0.0.2")); err != nil {
		t.Fatalf("B's lease was removed by A's release: %v", err)
	}
}

// With a fresh index, a lookup reads the attachment's own entry and lease
// files, not every lease: a lease file rewritten in place (no directory
// change) to name A is not found through A's index entry.
func TestLookupDoesNotScan(t *testing.T) {
	if got := leasesAfterRewriteInPlace(t, open(t)); got != "[10.0.0.2]" {
		t.Fatalf("Leases(A) = %s: the lookup scanned the lease files", got)
	}
}

func TestIndexKeys(t *testing.T) {
	s := open(t)
	long := strings.Repeat("x", 250)
	for _, a := range []ipam.Attachment{
		{ContainerID: long, IfName: "eth0"},
		{ContainerID: "../../evil", IfName: "eth0"},
		{ContainerID: "ctr", IfName: ""},
		{ContainerID: ".", IfName: "."},
	} {
		p := s.indexPath(a)
		if filepath.Dir(p) != s.attDir || len(filepath.Base(p)) > 255 {
			t.Errorf("indexPath(%q) = %s: outside %s or too long", a, p, s.attDir)
		}
	}
	reserve(t, s, ipam.Attachment{ContainerID: long, IfName: "eth0"}, "10.0.0.5", 0)
	if got := leases(t, s, ipam.Attachment{ContainerID: long, IfName: "eth0"}); got != "[10.0.0.5]" {
		t.Fatalf("long ID: %s", got)
	}
	checkConsistent(t, s)
}

func TestOpenRejectsBadNetworkNames(t *testing.T) {
	dir := t.TempDir()
	for _, name := range []string{"", ".", "..", "a/b", "../x", ".flatcni", "a\x00b"} {
		if s, err := Open(dir, name); err == nil {
			s.Close()
			t.Errorf("Open(%q) succeeded", name)
		}
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Errorf("rejected names created %v", entries)
	}
}

func TestOpenOnFileFails(t *testing.T) {
	f := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(f, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if s, err := Open(f, "net1"); err == nil {
		s.Close()
		t.Fatal("Open under a regular file succeeded")
	}
}

func TestUnlockedUseFails(t *testing.T) {
	s := open(t)
	if _, err := s.Leases(attA); err == nil {
		t.Fatal("Leases without the lock succeeded")
	}
}
