package disk

import (
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/flatcni/plugins/pkg/ipam"
)

// victim is a directory outside the store, with one file, that no store
// operation may touch; unchanged reports whether it is as it was.
type victim struct {
	dir  string
	file string
}

func newVictim(t *testing.T) victim {
	t.Helper()
	dir := t.TempDir()
	v := victim{dir: dir, file: filepath.Join(dir, "precious")}
	if err := os.WriteFile(v.file, []byte("keep me"), 0o644); err != nil {
		t.Fatal(err)
	}
	return v
}

func (v victim) check(t *testing.T) {
	t.Helper()
	entries, err := os.ReadDir(v.dir)
	if err != nil || len(entries) != 1 || entries[0].Name() != "precious" {
		t.Errorf("victim directory %s changed: %v, %v", v.dir, entries, err)
	}
	if b, err := os.ReadFile(v.file); err != nil || string(b) != "keep me" {
		t.Errorf("victim file changed: %q, %v", b, err)
	}
}

// withTimeout fails the test if fn blocks (a FIFO opened for reading).
func withTimeout(t *testing.T, what string, fn func()) {
	t.Helper()
	done := make(chan struct{})
	go func() { defer close(done); fn() }()
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		t.Fatalf("%s blocked", what)
	}
}

func mkfifo(t *testing.T, path string) {
	t.Helper()
	os.Remove(path)
	if err := syscall.Mkfifo(path, 0o600); err != nil {
		t.Fatal(err)
	}
}

func symlink(t *testing.T, target, path string) {
	t.Helper()
	os.RemoveAll(path)
	if err := os.Symlink(target, path); err != nil {
		t.Fatal(err)
	}
}

// reserveErr runs one reservation and returns its error (or the Unlock's).
func reserveErr(t *testing.T, s *Store, a ipam.Attachment, addr string) error {
	t.Helper()
	if err := s.Lock(); err != nil {
		return err
	}
	ok, err := s.Reserve(a, netip.MustParseAddr(addr), 0)
	if err == nil {
		err = s.Flush()
	}
	if uerr := s.Unlock(); err == nil {
		err = uerr
	}
	if err == nil && !ok {
		t.Fatalf("Reserve(%s) found it taken", addr)
	}
	return err
}

// releaseAll releases a's leases and fails the test on an error.
func releaseAll(t *testing.T, s *Store, a ipam.Attachment) []netip.Addr {
	t.Helper()
	var freed []netip.Addr
	locked(t, s, func() {
		var err error
		if freed, err = s.Release(a); err != nil {
			t.Fatalf("Release(%s): %v", a, err)
		}
	})
	return freed
}

// Entries of the index or the lease directory replaced by symbolic links
// or FIFOs: a reservation is refused with an error naming the entry, a
// release still works, and nothing outside the store is touched or waited on.
func TestEntriesThatAreNotWhatTheyShouldBe(t *testing.T) {
	tests := []struct {
		name    string
		plant   func(t *testing.T, s *Store, v victim)
		culprit string // in the reservation's error; "" when it succeeds
	}{
		{name: ".flatcni a symlink", culprit: ".flatcni",
			plant: func(t *testing.T, s *Store, v victim) { symlink(t, v.dir, s.idxDir) }},
		{name: ".flatcni/a a symlink", culprit: ".flatcni/a",
			plant: func(t *testing.T, s *Store, v victim) { symlink(t, v.dir, s.attDir) }},
		{name: "stamp a symlink", culprit: "stamp",
			plant: func(t *testing.T, s *Store, v victim) { symlink(t, v.file, filepath.Join(s.idxDir, stampName)) }},
		{name: "stamp a FIFO", culprit: "stamp",
			plant: func(t *testing.T, s *Store, v victim) { mkfifo(t, filepath.Join(s.idxDir, stampName)) }},
		{name: "last_reserved_ip a symlink", culprit: "last_reserved_ip.0",
			plant: func(t *testing.T, s *Store, v victim) {
				symlink(t, v.file, filepath.Join(s.Dir(), "last_reserved_ip.0"))
			}},
		{name: "last_reserved_ip a FIFO", culprit: "last_reserved_ip.0",
			plant: func(t *testing.T, s *Store, v victim) { mkfifo(t, filepath.Join(s.Dir(), "last_reserved_ip.0")) }},
		// The index is a cache: a bad entry is replaced by a rebuild.
		{name: "index entry a symlink",
			plant: func(t *testing.T, s *Store, v victim) { symlink(t, v.file, s.indexPath(attA)) }},
		{name: "index entry a FIFO",
			plant: func(t *testing.T, s *Store, v victim) { mkfifo(t, s.indexPath(attA)) }},
		{name: "index entry a directory, holding a link to the victim",
			plant: func(t *testing.T, s *Store, v victim) {
				dir := s.indexPath(attA)
				os.Remove(dir)
				if err := os.MkdirAll(filepath.Join(dir, "sub"), 0o755); err != nil {
					t.Fatal(err)
				}
				symlink(t, v.dir, filepath.Join(dir, "sub", "link"))
			}},
		// A lease name taken by something else is not a lease: skipped.
		{name: "lease a symlink",
			plant: func(t *testing.T, s *Store, v victim) { symlink(t, v.file, filepath.Join(s.Dir(), "10.0.0.7")) }},
		{name: "lease a FIFO",
			plant: func(t *testing.T, s *Store, v victim) { mkfifo(t, filepath.Join(s.Dir(), "10.0.0.7")) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v := newVictim(t)
			s := open(t)
			reserve(t, s, attA, "10.0.0.2", 0)
			tt.plant(t, s, v)
			withTimeout(t, "store", func() {
				err := reserveErr(t, s, attA, "10.0.0.3")
				switch {
				case tt.culprit == "" && err != nil:
					t.Errorf("Reserve: %v", err)
				case tt.culprit != "" && (err == nil || !strings.Contains(err.Error(), tt.culprit)):
					t.Errorf("Reserve: error %v, want one naming %s", err, tt.culprit)
				}
				freed := releaseAll(t, s, attA)
				want := "[10.0.0.2]"
				if tt.culprit == "" {
					want = "[10.0.0.2 10.0.0.3]"
				}
				if got := fmtAddrs(freed); got != want {
					t.Errorf("Release freed %v, want %s", freed, want)
				}
				if got := leases(t, s, attA); got != "[]" {
					t.Errorf("after Release, A holds %s", got)
				}
			})
			v.check(t)
		})
	}
}

func fmtAddrs(a []netip.Addr) string {
	var parts []string
	for _, x := range a {
		parts = append(parts, x.String())
	}
	return "[" + strings.Join(parts, " ") + "]"
}

// A lease directory that is a symbolic link, or a lock file that is one
// (or a FIFO), is refused by Open with an error naming it; OpenForTeardown
// leaves a bad lock entry as it is and locks the lease directory, so that
// DEL and GC go on.
func TestOpenRefusesLinks(t *testing.T) {
	v := newVictim(t)
	data := t.TempDir()
	symlink(t, v.dir, filepath.Join(data, "net1"))
	if s, err := Open(data, "net1"); err == nil || !strings.Contains(err.Error(), filepath.Join(data, "net1")) {
		if s != nil {
			s.Close()
		}
		t.Errorf("Open through a symlinked network directory: %v", err)
	}
	v.check(t)

	for _, plant := range []func(path string){
		func(path string) { symlink(t, v.file, path) },
		func(path string) { mkfifo(t, path) },
	} {
		data := t.TempDir()
		if err := os.Mkdir(filepath.Join(data, "net1"), 0o755); err != nil {
			t.Fatal(err)
		}
		lock := filepath.Join(data, "net1", "lock")
		plant(lock)
		withTimeout(t, "Open", func() {
			if s, err := Open(data, "net1"); err == nil || !strings.Contains(err.Error(), lock) {
				if s != nil {
					s.Close()
				}
				t.Errorf("Open with a bad lock file: %v, want an error naming %s", err, lock)
			}
			s, err := OpenForTeardown(data, "net1")
			if err != nil {
				t.Fatalf("OpenForTeardown: %v", err)
			}
			locked(t, s, func() {})
			s.Close()
		})
		if fi, err := os.Lstat(lock); err != nil || fi.Mode().IsRegular() {
			t.Errorf("lock after OpenForTeardown: %v, %v; want it left as it was", fi, err)
		}
		v.check(t)
	}
}

// The index is a cache: an entry deleted, emptied or filled with garbage
// (the directory's own mtime unchanged) never hides a lease, so a release
// removes it and a repeated reservation is not a second address.
func TestDamagedIndexEntries(t *testing.T) {
	for name, damage := range map[string]func(t *testing.T, path string){
		"deleted": func(t *testing.T, path string) { os.Remove(path) },
		"emptied": func(t *testing.T, path string) { os.WriteFile(path, nil, 0o600) },
		"garbage": func(t *testing.T, path string) { os.WriteFile(path, []byte("\x00\xffnot an index"), 0o600) },
		"no header": func(t *testing.T, path string) {
			os.WriteFile(path, []byte("10.0.0.2\n"), 0o600)
		},
		"another's address": func(t *testing.T, path string) {
			os.WriteFile(path, []byte(indexHeader+"10.0.0.3\n"), 0o600)
		},
		// Well-formed, rewritten in place: the folder's mtime stays; the
		// entry's ctime moves past the stamp's (a clock tick later: within
		// the tick of the stamp's own write it cannot be told).
		"header only": func(t *testing.T, path string) {
			time.Sleep(50 * time.Millisecond)
			os.WriteFile(path, []byte(indexHeader), 0o600)
		},
		"deleted, the folder's mtime set back": func(t *testing.T, path string) {
			dir := filepath.Dir(path)
			fi, err := os.Stat(dir)
			if err != nil {
				t.Fatal(err)
			}
			os.Remove(path)
			if err := os.Chtimes(dir, fi.ModTime(), fi.ModTime()); err != nil {
				t.Fatal(err)
			}
		},
	} {
		t.Run(name, func(t *testing.T) {
			s := open(t)
			reserve(t, s, attA, "10.0.0.2", 0)
			reserve(t, s, attB, "10.0.0.3", 0)
			damage(t, s.indexPath(attA))
			if got := leases(t, s, attA); got != "[10.0.0.2]" {
				t.Fatalf("A holds %s after its index entry was %s", got, name)
			}
			damage(t, s.indexPath(attA))
			if freed := releaseAll(t, s, attA); fmtAddrs(freed) != "[10.0.0.2]" {
				t.Fatalf("Release(A) freed %v", freed)
			}
			if got := leases(t, s, attB); got != "[10.0.0.3]" {
				t.Fatalf("B holds %s", got)
			}
			checkConsistent(t, s)
		})
	}
}

// The lease file is written and made durable before the lock; without
// Prepare, Reserve writes it. Either way no temporary file is left.
func TestPrepare(t *testing.T) {
	s := open(t)
	if err := s.Prepare(attA); err != nil {
		t.Fatal(err)
	}
	reserve(t, s, attA, "10.0.0.2", 0)
	reserve(t, s, attA, "10.0.1.2", 1)
	if err := s.Prepare(attB); err != nil {
		t.Fatal(err)
	}
	reserve(t, s, attA, "10.0.2.2", 2) // not B's: written under the lock
	if got := leases(t, s, attA); got != "[10.0.0.2 10.0.1.2 10.0.2.2]" {
		t.Fatalf("A holds %s", got)
	}
	s.Close()
	if tmp := TempFiles(s.Dir()); len(tmp) > 0 {
		t.Fatalf("temporary files left: %v", tmp)
	}
	if probs := Check(s.Dir()); len(probs) > 0 {
		t.Fatalf("lease store: %v", probs)
	}
}

// All, the first call of GC, removes the temporary files of dead
// writers (a plugin killed between writing its lease file and linking it),
// and keeps those of live ones.
func TestAllRemovesDeadTemps(t *testing.T) {
	s := open(t)
	reserve(t, s, attA, "10.0.0.2", 0)
	dead := filepath.Join(s.idxDir, tmpPrefix+"999999.1")
	live := filepath.Join(s.idxDir, tmpPrefix+strconv.Itoa(os.Getppid())+".1")
	for _, f := range []string{dead, live} {
		if err := os.WriteFile(f, []byte("ctr-z\r\neth0"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	s2, err := Open(filepath.Dir(s.Dir()), filepath.Base(s.Dir()))
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	locked(t, s2, func() {
		if _, err := s2.All(); err != nil {
			t.Fatal(err)
		}
	})
	if _, err := os.Stat(dead); !os.IsNotExist(err) {
		t.Errorf("a dead writer's temporary file is left: %v", err)
	}
	if _, err := os.Stat(live); err != nil {
		t.Errorf("a live writer's temporary file was removed: %v", err)
	}
	os.Remove(live)
}

// The index's directory is the plugin user's alone (0700): its entries are
// named after the attachments (container IDs, interface names), which the
// lease files (0600) keep from other users; so is one made 0755 by an
// earlier version, at the next locked section.
func TestIndexDirPrivate(t *testing.T) {
	dir := t.TempDir()
	mode := func() os.FileMode {
		t.Helper()
		fi, err := os.Lstat(filepath.Join(dir, "net1", indexDirName))
		if err != nil {
			t.Fatal(err)
		}
		return fi.Mode().Perm()
	}
	s, err := Open(dir, "net1")
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	reserve(t, s, attA, "10.0.0.2", 0)
	if m := mode(); m != 0o700 {
		t.Errorf("new index directory: mode %v, want 0700", m)
	}
	if err := os.Chmod(filepath.Join(dir, "net1", indexDirName), 0o755); err != nil {
		t.Fatal(err)
	}
	reserve(t, s, attB, "10.0.0.3", 0)
	if m := mode(); m != 0o700 {
		t.Errorf("index directory of an earlier version after an ADD: mode %v, want 0700", m)
	}
}
