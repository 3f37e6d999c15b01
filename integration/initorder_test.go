package integration

import (
	"os/exec"
	"strings"
	"testing"
)

// The bridge starts IPAM (ADD) and removes the host veth (DEL) from package
// early's initialiser, which must run before the Go runtime initialises os,
// reflect and the rest of the binary, and before shortrun sets one P (see
// pkg/bridge/early). An import that breaks this still works, only
// later: this test catches it. It needs no root: VERSION changes nothing.
func TestBridgeEarlyInitOrder(t *testing.T) {
	pos := initOrder(t, "bridge")
	early, ok := pos["github.com/flatcni/plugins/pkg/bridge/early"]
	if !ok {
		t.Fatalf("no init of package early in %v", pos)
	}
	for _, later := range []string{"github.com/flatcni/plugins/pkg/shortrun", "os", "reflect", "time"} {
		if p, ok := pos[later]; ok && p < early {
			t.Errorf("%s initialises before package early", later)
		}
	}
}

// pkg/shortrun/hugeheap moves the heap onto huge pages; every page the heap
// touches before it is a page fault of its own, so it must be the first
// package initialised after the runtime's, in both plugins. An import of a
// package with an initialiser (such as syscall) would still work, later.
func TestHugeHeapInitialisesFirst(t *testing.T) {
	for _, plugin := range []string{"bridge", "host-local"} {
		pos := initOrder(t, plugin)
		heap, ok := pos["github.com/flatcni/plugins/pkg/shortrun/hugeheap"]
		if !ok {
			t.Fatalf("%s: no init of package hugeheap in %v", plugin, pos)
		}
		for pkg, p := range pos {
			if p < heap && pkg != "runtime" && !strings.HasPrefix(pkg, "internal/runtime/") && pkg != "internal/bytealg" {
				t.Errorf("%s: %s initialises before package hugeheap", plugin, pkg)
			}
		}
	}
}

// initOrder runs a plugin's VERSION with the runtime's init trace and returns
// each initialised package's position in it.
func initOrder(t *testing.T, plugin string) map[string]int {
	t.Helper()
	cmd := exec.Command(binDir(t) + "/" + plugin)
	cmd.Env = []string{"CNI_COMMAND=VERSION", "GODEBUG=inittrace=1"}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	pos := map[string]int{}
	for i, line := range strings.Split(string(out), "\n") {
		if f := strings.Fields(line); len(f) > 1 && f[0] == "init" {
			pos[f[1]] = i
		}
	}
	return pos
}
