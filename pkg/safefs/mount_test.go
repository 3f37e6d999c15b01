package safefs

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"
)

// RemoveAll does not empty a directory of another file system: a mount
// under the entry it removes (a bind mount of the node's, say) is outside
// the state it owns. The check runs in a mount namespace of its own (the
// test binary run again under unshare), so the node's mounts never change.
func TestRemoveAllStopsAtMountPoint(t *testing.T) {
	if dir := os.Getenv("SAFEFS_MOUNT_TEST_DIR"); dir != "" {
		removeAllAcrossMount(t, dir)
		return
	}
	if os.Geteuid() != 0 {
		t.Skip("needs root (mount)")
	}
	if _, err := exec.LookPath("unshare"); err != nil {
		t.Skip("needs unshare(1)")
	}
	cmd := exec.Command("unshare", "--mount", "--propagation", "private", os.Args[0], "-test.run", "^TestRemoveAllStopsAtMountPoint$", "-test.v")
	cmd.Env = append(os.Environ(), "SAFEFS_MOUNT_TEST_DIR="+t.TempDir())
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("in a mount namespace of its own: %v\n%s", err, out)
	}
}

func removeAllAcrossMount(t *testing.T, dir string) {
	mnt := filepath.Join(dir, "lock", "sub")
	if err := os.MkdirAll(mnt, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mount("tmpfs", mnt, "tmpfs", 0, "size=1m"); err != nil {
		t.Fatalf("mount: %v", err)
	}
	defer unix.Unmount(mnt, unix.MNT_DETACH)
	keep := filepath.Join(mnt, "keep")
	if err := os.WriteFile(keep, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	d, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if err := d.RemoveAll("lock"); !errors.Is(err, unix.EXDEV) {
		t.Errorf("RemoveAll across a mount point: %v, want EXDEV", err)
	}
	if _, err := os.Stat(keep); err != nil {
		t.Errorf("a file on the mounted file system was removed: %v", err)
	}
}
