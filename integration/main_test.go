package integration

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Directories outside the test namespaces that the plugins and cnitool write
// to on the machine: the plugins' lock files and libcni's result cache. Files
// a test run adds there are removed when it ends.
var sharedDirs = []string{"/run/flatcni", "/var/lib/cni/results"}

// madeDirs are the directories the plugins make for their locks and
// cnitool for its cache; those a run made are removed when it ends, if
// empty (deepest first).
var madeDirs = []string{"/run/flatcni", "/var/lib/cni/results", "/var/lib/cni"}

func TestMain(m *testing.M) {
	before := map[string]bool{}
	for _, d := range madeDirs {
		if _, err := os.Lstat(d); err == nil {
			before[d] = true
		}
	}
	for _, d := range sharedDirs {
		for _, p := range listDir(d) {
			before[p] = true
		}
	}
	code := m.Run()
	// A namespace the tests deleted may live on for a moment (a process
	// still in it exiting): what belongs to it is looked at again.
	for try := 0; try < 30; try++ {
		live := liveNetns()
		left := false
		for _, d := range sharedDirs {
			for _, p := range listDir(d) {
				if !before[p] {
					left = !removeUnused(p, live) || left
				}
			}
		}
		if !left {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	for _, d := range madeDirs {
		// Only if empty (another run's files stay) and no mount
		// namespace has a file system there (removing the directory
		// would take it off: runtimeMounts).
		if !before[d] && !mountedOn(d) {
			_ = syscall.Rmdir(d)
		}
	}
	os.Exit(code)
}

// removeUnused removes what a test run added to a shared directory unless
// another run (a demo, a bench) may be using it: a file someone holds a
// lock on, the ports claims index ("ports-index.<backend>.<dev>-<inode>")
// of a network namespace that still exists. Links are never followed. It
// reports whether p is gone.
func removeUnused(p string, live map[string]bool) (removed bool) {
	fi, err := os.Lstat(p)
	switch {
	case err != nil:
		return true
	case fi.IsDir():
		if name := filepath.Base(p); !live[name[strings.LastIndexByte(name, '.')+1:]] {
			return os.RemoveAll(p) == nil
		}
	case fi.Mode().IsRegular():
		f, err := os.OpenFile(p, os.O_RDONLY|syscall.O_NOFOLLOW, 0)
		if err != nil {
			return false
		}
		defer f.Close()
		if syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB) == nil {
			return os.Remove(p) == nil
		}
	}
	return false
}

// liveNetns returns the "<dev>-<inode>" of every network namespace a
// process is in or /run/netns holds.
func liveNetns() map[string]bool {
	paths, _ := filepath.Glob("/proc/[0-9]*/ns/net")
	named, _ := filepath.Glob("/run/netns/*")
	live := map[string]bool{}
	for _, p := range append(paths, named...) {
		var st syscall.Stat_t
		if syscall.Stat(p, &st) == nil {
			live[fmt.Sprintf("%d-%d", st.Dev, st.Ino)] = true
		}
	}
	return live
}

func listDir(dir string) []string {
	entries, _ := os.ReadDir(dir)
	out := make([]string, 0, len(entries))
	for _, e := range entries {
		out = append(out, filepath.Join(dir, e.Name()))
	}
	return out
}
