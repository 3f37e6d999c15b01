package integration

import (
	"os"
	"path/filepath"
	"testing"
)

// Directories outside the test namespaces that the plugins and cnitool write
// to on the machine: the plugins' lock files and libcni's result cache. Files
// a test run adds there are removed when it ends.
var sharedDirs = []string{"/run/flatcni", "/var/lib/cni/results"}

func TestMain(m *testing.M) {
	before := map[string]bool{}
	for _, d := range sharedDirs {
		for _, p := range listDir(d) {
			before[p] = true
		}
	}
	code := m.Run()
	for _, d := range sharedDirs {
		for _, p := range listDir(d) {
			if !before[p] {
				// A directory (the ports claims index of a node) with
				// what it holds; RemoveAll follows no link.
				os.RemoveAll(p)
			}
		}
	}
	os.Exit(code)
}

func listDir(dir string) []string {
	entries, _ := os.ReadDir(dir)
	out := make([]string, 0, len(entries))
	for _, e := range entries {
		out = append(out, filepath.Join(dir, e.Name()))
	}
	return out
}
