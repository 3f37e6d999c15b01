package integration

import (
	"os/exec"
	"strings"
	"testing"
)

// The bridge starts IPAM (ADD) and removes the host veth (DEL) from package
// early's initialiser, which must run before the Go runtime initialises os,
// reflect and the rest of the binary, and before shortrun collapses the heap
// (see pkg/bridge/early). An import that breaks this still works, only
// later: this test catches it. It needs no root: VERSION changes nothing.
func TestBridgeEarlyInitOrder(t *testing.T) {
	cmd := exec.Command(binDir(t) + "/bridge")
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
	early, ok := pos["github.com/flatcni/plugins/pkg/bridge/early"]
	if !ok {
		t.Fatalf("no init of package early in:\n%s", out)
	}
	for _, later := range []string{"github.com/flatcni/plugins/pkg/shortrun", "os", "reflect", "time"} {
		if p, ok := pos[later]; ok && p < early {
			t.Errorf("%s initialises before package early", later)
		}
	}
}
