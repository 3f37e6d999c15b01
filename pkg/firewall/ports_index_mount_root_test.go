package firewall

import (
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"testing"

	"golang.org/x/sys/unix"
)

// privateMounts moves the calling test's goroutine onto a thread of its own
// in a mount namespace of its own, where no mount propagates to the node:
// the thread is never unlocked, so it ends with the test (cleanups
// included) and the namespace with it.
func privateMounts(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root (mount)")
	}
	runtime.LockOSThread()
	if err := unix.Unshare(unix.CLONE_NEWNS); err != nil {
		t.Fatalf("unshare: %v", err)
	}
	if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""); err != nil {
		t.Fatalf("make the mounts private: %v", err)
	}
}

// A rebuild of the claims index removes its directories and files with
// what they hold, but never descends into a mount point: a directory of
// the node's bind-mounted inside the index (the same file system, so the
// same st_dev) keeps its files, and the rebuild fails instead.
func TestIndexMountNotEmptied(t *testing.T) {
	tmp := ".tmp-" + strconv.Itoa(os.Getpid())
	for _, c := range []struct {
		at      string
		rebuild bool // remove the marker, for a rebuild
	}{
		{"owners/net9", true},    // below a directory the rebuild removes
		{"claims", true},         // the directory itself
		{indexMarker, false},     // the marker (a directory: the index is incomplete)
		{tmp, true},              // writeFileAt's temporary file (the rebuild's marker)
		{"claims/" + tmp, false}, // and one in a directory kept (a claim's update)
	} {
		at := c.at
		t.Run(at, func(t *testing.T) {
			privateMounts(t)
			r := newIndexRules(t)
			if err := r.publish("net1", ownerA, mp("tcp", "", 8080, "10.1.0.2", 80)); err != nil {
				t.Fatal(err)
			}
			dir := r.indexDir(t)
			victim := filepath.Join(t.TempDir(), "victim")
			keep := filepath.Join(victim, "deep", "keep")
			if err := os.MkdirAll(filepath.Dir(keep), 0o700); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(keep, []byte("x"), 0o600); err != nil {
				t.Fatal(err)
			}
			mnt := filepath.Join(dir, at)
			os.Remove(mnt) // the marker is a file
			if err := os.MkdirAll(mnt, 0o700); err != nil {
				t.Fatal(err)
			}
			if err := unix.Mount(victim, mnt, "", unix.MS_BIND, ""); err != nil {
				t.Fatalf("mount: %v", err)
			}
			defer unix.Unmount(mnt, unix.MNT_DETACH)
			if c.rebuild {
				if err := os.Remove(filepath.Join(dir, indexMarker)); err != nil {
					t.Fatal(err)
				}
			}
			err := r.publish("net2", ownerB, mp("tcp", "", 8081, "10.2.0.2", 80))
			if !errors.Is(err, unix.EXDEV) {
				t.Errorf("Publish with a mount in the index: %v, want EXDEV", err)
			}
			if _, err := os.Stat(keep); err != nil {
				t.Errorf("the mounted directory was emptied: %v", err)
			}
			if _, err := os.Stat(filepath.Join(mnt, "deep", "keep")); err != nil {
				t.Errorf("the mount point was emptied: %v", err)
			}
		})
	}
}
