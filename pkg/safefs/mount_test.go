package safefs

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"
)

// RemoveAll does not descend into a mount point: a mount under the entry it
// removes (another file system, or a bind mount of the node's, which has
// the same st_dev as the tree) is outside the state it owns, and what it
// holds stays. The checks run in a mount namespace of their own (the test
// binary run again under unshare), so the node's mounts never change.
func TestRemoveAllStopsAtMountPoint(t *testing.T) {
	if dir := os.Getenv("SAFEFS_MOUNT_TEST_DIR"); dir != "" {
		removeAllAcrossMounts(t, dir)
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
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("in a mount namespace of its own: %v\n%s", err, out)
	}
	t.Logf("in a mount namespace of its own:\n%s", out)
}

// removeAllAcrossMounts runs in the private mount namespace: each case
// removes <case>/tree/lock with something mounted at <case>/tree/<at>.
func removeAllAcrossMounts(t *testing.T, dir string) {
	bind := func(victim, at string) error { return unix.Mount(victim, at, "", unix.MS_BIND, "") }
	for _, c := range []struct {
		name, at string
		mount    func(victim, at string) error
		want     error
	}{
		{"tmpfs below", "lock/sub", func(_, at string) error {
			return unix.Mount("tmpfs", at, "tmpfs", 0, "size=1m")
		}, unix.EXDEV},
		// Same file system, same st_dev: only the mount ID tells.
		{"bind mount below", "lock/sub", bind, unix.EXDEV},
		{"bind mount deeper", "lock/a/b/sub", bind, unix.EXDEV},
		{"bind mount is the entry", "lock", bind, unix.EXDEV},
		// A file mounted over one of the tree's: unlink refuses it.
		{"file bind mount below", "lock/sub/file", func(victim, at string) error {
			return bind(filepath.Join(victim, "keep"), at)
		}, unix.EBUSY},
	} {
		t.Run(c.name, func(t *testing.T) {
			base := filepath.Join(dir, filepath.Base(t.Name()))
			victim := filepath.Join(base, "victim")
			tree := filepath.Join(base, "tree")
			at := filepath.Join(tree, c.at)
			setUp(t,
				os.MkdirAll(filepath.Join(victim, "deep"), 0o700),
				os.WriteFile(filepath.Join(victim, "keep"), []byte("x"), 0o600),
				os.WriteFile(filepath.Join(victim, "deep", "keep"), []byte("x"), 0o600),
				os.MkdirAll(filepath.Dir(at), 0o700),
			)
			if filepath.Base(at) == "file" {
				setUp(t, os.WriteFile(at, nil, 0o600))
			} else {
				setUp(t, os.MkdirAll(at, 0o700))
			}
			setUp(t, os.WriteFile(filepath.Join(tree, "lock", "mine"), []byte("x"), 0o600))
			if err := c.mount(victim, at); err != nil {
				t.Fatalf("mount: %v", err)
			}
			defer unix.Unmount(at, unix.MNT_DETACH)
			if c.name == "tmpfs below" {
				setUp(t, os.WriteFile(filepath.Join(at, "keep"), []byte("x"), 0o600))
			} else {
				var v, tr unix.Stat_t
				setUp(t, unix.Stat(victim, &v), unix.Stat(tree, &tr))
				if v.Dev != tr.Dev {
					t.Fatalf("the victim is on another file system than the tree (%d, %d): not the case tested", v.Dev, tr.Dev)
				}
			}
			d, err := Open(tree)
			if err != nil {
				t.Fatal(err)
			}
			defer d.Close()
			if err := d.RemoveAll("lock"); !errors.Is(err, c.want) {
				t.Errorf("RemoveAll across a mount point: %v, want %v", err, c.want)
			}
			var kept []string
			switch c.name {
			case "tmpfs below":
				kept = []string{filepath.Join(at, "keep")}
			case "file bind mount below":
				kept = []string{at, filepath.Join(victim, "keep")}
			default:
				kept = []string{filepath.Join(at, "keep"), filepath.Join(victim, "keep"), filepath.Join(victim, "deep", "keep")}
			}
			for _, p := range kept {
				if _, err := os.Stat(p); err != nil {
					t.Errorf("a file of the mounted tree was removed: %v", err)
				}
			}
		})
	}
}
