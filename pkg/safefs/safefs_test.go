package safefs

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// setUp fails the test on the first error of the calls that made its files.
func setUp(t *testing.T, errs ...error) {
	t.Helper()
	for _, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
}

func TestRefusals(t *testing.T) {
	root := t.TempDir()
	outside := t.TempDir()
	target := filepath.Join(outside, "file")
	setUp(t,
		os.WriteFile(target, []byte("outside"), 0o644),
		os.WriteFile(filepath.Join(root, "file"), []byte("inside"), 0o644),
		os.Symlink(target, filepath.Join(root, "link")),
		os.Symlink(outside, filepath.Join(root, "dirlink")),
		syscall.Mkfifo(filepath.Join(root, "fifo"), 0o600),
		os.WriteFile(filepath.Join(root, "big"), make([]byte, 100), 0o644),
	)
	d, err := OpenDirAt(nil, root, false)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	done := make(chan struct{})
	go func() {
		defer close(done)
		for _, tt := range []struct {
			name string
			want error
		}{{"link", ErrSymlink}, {"fifo", ErrNotRegular}, {"dirlink", ErrSymlink}, {"big", ErrTooLarge}} {
			_, err := d.ReadFile(tt.name, 10)
			if !errors.Is(err, tt.want) || !strings.Contains(err.Error(), filepath.Join(root, tt.name)) {
				t.Errorf("ReadFile(%s) = %v, want %v naming the path", tt.name, err, tt.want)
			}
		}
		if _, err := d.OpenFile("fifo", unix.O_WRONLY, 0); !errors.Is(err, ErrNotRegular) {
			t.Errorf("OpenFile(fifo, write) = %v", err)
		}
		if b, err := d.ReadFile("file", 10); err != nil || string(b) != "inside" {
			t.Errorf("ReadFile(file) = %q, %v", b, err)
		}
		for name, want := range map[string]error{"dirlink": ErrSymlink, "file": ErrNotDir} {
			if _, err := OpenDirAt(d, name, false); !errors.Is(err, want) {
				t.Errorf("OpenDirAt(%s) = %v, want %v", name, err, want)
			}
		}
		// A regular file of a kernel interface (procfs; tracefs's
		// trace_pipe would block a read for ever) is no file of data.
		for _, path := range []string{filepath.Join(root, "fifo"), root, "/dev/null", "/proc/self/status"} {
			if _, err := ReadPath(path, 10); !errors.Is(err, ErrNotRegular) || !strings.Contains(err.Error(), path) {
				t.Errorf("ReadPath(%s) = %v, want ErrNotRegular naming the path", path, err)
			}
		}
		if _, err := ReadPath(filepath.Join(root, "big"), 10); !errors.Is(err, ErrTooLarge) {
			t.Errorf("ReadPath(big) = %v, want ErrTooLarge", err)
		}
		if _, err := ReadPath(filepath.Join(root, "missing"), 10); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("ReadPath(missing) = %v, want ErrNotExist", err)
		}
		if b, err := ReadPath(filepath.Join(root, "link"), 10); err != nil || string(b) != "outside" {
			t.Errorf("ReadPath follows links: %q, %v", b, err)
		}
		if err := d.Remove("link"); err != nil {
			t.Error(err)
		}
	}()
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		t.Fatal("blocked")
	}
	if b, err := os.ReadFile(target); err != nil || string(b) != "outside" {
		t.Errorf("link target changed: %q, %v", b, err)
	}
}

// TestOverwrite: in place (the inode stays), cut when shorter; a symbolic
// link or a file with another hard link is refused and left as it is.
func TestOverwrite(t *testing.T) {
	root, outside := t.TempDir(), t.TempDir()
	target := filepath.Join(outside, "file")
	setUp(t, os.WriteFile(target, []byte("outside"), 0o644))
	setUp(t,
		os.Symlink(target, filepath.Join(root, "link")),
		os.Link(target, filepath.Join(root, "hardlink")),
		os.WriteFile(filepath.Join(root, "file"), []byte("a longer old content"), 0o600),
	)
	d, err := OpenDirAt(nil, root, false)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	before, err := os.Stat(filepath.Join(root, "file"))
	if err != nil {
		t.Fatal(err)
	}
	for _, data := range []string{"new", "newer content"} {
		if err := d.Overwrite("file", []byte(data)); err != nil {
			t.Fatal(err)
		}
		if b, err := os.ReadFile(filepath.Join(root, "file")); err != nil || string(b) != data {
			t.Errorf("after Overwrite(%q): %q, %v", data, b, err)
		}
	}
	if after, err := os.Stat(filepath.Join(root, "file")); err != nil || !os.SameFile(before, after) {
		t.Errorf("Overwrite replaced the file instead of writing it in place (%v)", err)
	}
	if err := d.OverwriteExisting("missing", []byte("x")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("OverwriteExisting of a missing file = %v, want ErrNotExist", err)
	}
	if _, err := os.Lstat(filepath.Join(root, "missing")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("OverwriteExisting made a missing file (%v)", err)
	}
	for _, data := range []string{"longer in place", "in place"} {
		if err := d.OverwriteExisting("file", []byte(data)); err != nil {
			t.Errorf("OverwriteExisting of an existing file: %v", err)
		}
		if b, err := os.ReadFile(filepath.Join(root, "file")); err != nil || string(b) != data {
			t.Errorf("after OverwriteExisting(%q): %q, %v", data, b, err)
		}
	}
	if err := d.Overwrite("fresh", []byte("x")); err != nil {
		t.Errorf("Overwrite of a missing file: %v", err)
	}
	for name, want := range map[string]error{"link": ErrSymlink, "hardlink": ErrHardLinked} {
		if err := d.Overwrite(name, []byte("changed")); !errors.Is(err, want) {
			t.Errorf("Overwrite(%s) = %v, want %v", name, err, want)
		}
	}
	if b, err := os.ReadFile(target); err != nil || string(b) != "outside" {
		t.Errorf("a link's target changed: %q, %v", b, err)
	}
}

// TestOpensWhatItLooked: an entry replaced between the look at it and its
// opening (here a regular file by a FIFO, and by another regular file) is
// not what gets opened: the file looked at is, through its O_PATH
// descriptor (the name is not opened again).
func TestOpensWhatItLooked(t *testing.T) {
	dir := t.TempDir()
	d, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	path := filepath.Join(dir, "f")
	for _, swap := range []string{"fifo", "file"} {
		t.Run(swap, func(t *testing.T) {
			setUp(t, os.WriteFile(path, []byte("looked at"), 0o600))
			var st unix.Stat_t
			setUp(t, unix.Stat(path, &st))
			aside := filepath.Join(dir, "aside-"+swap)
			testHookLooked = func(string) {
				setUp(t, os.Rename(path, aside))
				if swap == "fifo" {
					setUp(t, unix.Mkfifo(path, 0o600))
				} else {
					setUp(t, os.WriteFile(path, []byte("put in its place"), 0o600))
				}
			}
			defer func() { testHookLooked = nil; _ = os.Remove(path) }()
			got, opened, err := d.ReadFileStat("f", 100)
			if err != nil {
				t.Fatalf("ReadFileStat: %v", err)
			}
			if string(got) != "looked at" || opened.Ino != st.Ino {
				t.Errorf("read %q (inode %d), want the file looked at (inode %d)", got, opened.Ino, st.Ino)
			}
		})
	}
}
