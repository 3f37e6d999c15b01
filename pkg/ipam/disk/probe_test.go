package disk

import (
	"errors"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// snapshot lists every path under dir with its mode, size and mtime: what
// Probe must leave as it found it.
func snapshot(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		out = append(out, path+" "+fi.Mode().String()+" "+fi.ModTime().String()+" "+strconv.FormatInt(fi.Size(), 10))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestProbeChangesNothing: STATUS's look at the store makes no directory,
// lock, index or temporary file, whether the data directory, the lease
// directory or neither exists, and reports the leases by name.
func TestProbeChangesNothing(t *testing.T) {
	t.Run("no data directory", func(t *testing.T) {
		root := t.TempDir()
		before := snapshot(t, root)
		leased, err := Probe(filepath.Join(root, "a", "b"), "net1", 2)
		if err != nil || len(leased) != 0 {
			t.Fatalf("Probe = %v, %v", leased, err)
		}
		if after := snapshot(t, root); !slices.Equal(before, after) {
			t.Fatalf("Probe changed %s:\n%v\n%v", root, before, after)
		}
	})
	t.Run("no lease directory", func(t *testing.T) {
		root := t.TempDir()
		before := snapshot(t, root)
		if leased, err := Probe(root, "net1", 2); err != nil || len(leased) != 0 {
			t.Fatalf("Probe = %v, %v", leased, err)
		}
		if after := snapshot(t, root); !slices.Equal(before, after) {
			t.Fatalf("Probe changed %s:\n%v\n%v", root, before, after)
		}
	})
	t.Run("leases", func(t *testing.T) {
		s := open(t)
		reserve(t, s, attA, "10.0.0.2", 0)
		reserve(t, s, attB, "fd00::2", 1)
		root := filepath.Dir(s.Dir())
		before := snapshot(t, root)
		leased, err := Probe(root, "net1", 2)
		if err != nil {
			t.Fatal(err)
		}
		want := []netip.Addr{netip.MustParseAddr("10.0.0.2"), netip.MustParseAddr("fd00::2")}
		slices.SortFunc(leased, netip.Addr.Compare)
		if !slices.Equal(leased, want) {
			t.Fatalf("Probe = %v, want %v", leased, want)
		}
		if after := snapshot(t, root); !slices.Equal(before, after) {
			t.Fatalf("Probe changed %s:\n%v\n%v", root, before, after)
		}
	})
}

// TestProbeFails: what would make ADD fail is an error naming the path.
func TestProbeFails(t *testing.T) {
	t.Run("data directory a file", func(t *testing.T) {
		file := filepath.Join(t.TempDir(), "f")
		if err := os.WriteFile(file, nil, 0o600); err != nil {
			t.Fatal(err)
		}
		if _, err := Probe(file, "net1", 1); err == nil || !strings.Contains(err.Error(), file) {
			t.Fatalf("Probe under a file: %v", err)
		}
		if _, err := Probe(filepath.Join(file, "sub"), "net1", 1); err == nil || !strings.Contains(err.Error(), file) {
			t.Fatalf("Probe below a file: %v", err)
		}
	})
	t.Run("lease directory a link", func(t *testing.T) {
		root := t.TempDir()
		if err := os.Symlink(t.TempDir(), filepath.Join(root, "net1")); err != nil {
			t.Fatal(err)
		}
		if _, err := Probe(root, "net1", 1); err == nil || !strings.Contains(err.Error(), filepath.Join(root, "net1")) {
			t.Fatalf("Probe of a linked lease directory: %v", err)
		}
	})
	t.Run("lock a link", func(t *testing.T) {
		s := open(t)
		lock := filepath.Join(s.Dir(), lockName)
		if err := os.Remove(lock); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(filepath.Join(t.TempDir(), "x"), lock); err != nil {
			t.Fatal(err)
		}
		if _, err := Probe(filepath.Dir(s.Dir()), "net1", 1); err == nil || !strings.Contains(err.Error(), lock) {
			t.Fatalf("Probe with the lock a link: %v", err)
		}
	})
	t.Run("lock of another user", func(t *testing.T) {
		if os.Geteuid() != 0 {
			t.Skip("needs root to give a file away")
		}
		s := open(t)
		if err := os.Chown(filepath.Join(s.Dir(), lockName), 12345, 12345); err != nil {
			t.Fatal(err)
		}
		if _, err := Probe(filepath.Dir(s.Dir()), "net1", 1); !errors.Is(err, errNotOurs) {
			t.Fatalf("Probe with another user's lock: %v", err)
		}
	})
	t.Run("last_reserved_ip a FIFO", func(t *testing.T) {
		s := open(t)
		last := filepath.Join(s.Dir(), lastPrefix+"1")
		if err := unix.Mkfifo(last, 0o600); err != nil {
			t.Fatal(err)
		}
		if _, err := Probe(filepath.Dir(s.Dir()), "net1", 2); err == nil || !strings.Contains(err.Error(), last) {
			t.Fatalf("Probe with a FIFO for last_reserved_ip.1: %v", err)
		}
		if _, err := Probe(filepath.Dir(s.Dir()), "net1", 1); err != nil {
			t.Fatalf("Probe of one range set (last_reserved_ip.1 unused): %v", err)
		}
	})
	t.Run("immutable lease directory", func(t *testing.T) {
		s := open(t)
		if err := setImmutable(s.Dir(), true); err != nil {
			t.Skipf("cannot make %s immutable here: %v", s.Dir(), err)
		}
		t.Cleanup(func() { _ = setImmutable(s.Dir(), false) })
		if _, err := Probe(filepath.Dir(s.Dir()), "net1", 1); !errors.Is(err, unix.EPERM) || !strings.Contains(err.Error(), s.Dir()) {
			t.Fatalf("Probe of an immutable lease directory: %v, want EPERM naming it", err)
		}
	})
}

// setImmutable sets or clears a directory's immutable attribute (chattr +i).
func setImmutable(dir string, on bool) error {
	f, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer f.Close()
	flags, err := unix.IoctlGetUint32(int(f.Fd()), unix.FS_IOC_GETFLAGS)
	if err != nil {
		return err
	}
	if on {
		flags |= fsImmutable
	} else {
		flags &^= fsImmutable
	}
	return unix.IoctlSetPointerInt(int(f.Fd()), unix.FS_IOC_SETFLAGS, int(flags))
}

// fsImmutable is FS_IMMUTABLE_FL of linux/fs.h.
const fsImmutable = 0x10
