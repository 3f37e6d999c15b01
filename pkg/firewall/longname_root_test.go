package firewall

import (
	"os"
	"strings"
	"testing"
)

// A network name no rule can carry (over maxNameLen) has no rules: what
// would make them refuses it (Ensure, Publish, MarkNetwork), and each
// removal (Remove, Unpublish, Retain, the lock directory's marker and lock)
// has nothing to do, succeeds and changes nothing: the bridge's DEL and GC
// of such a network would otherwise fail for ever.
func TestNameTooLongHoldsNone(t *testing.T) {
	long := "n" + strings.Repeat("a", maxNameLen)
	owner := Attachment{ContainerID: "c1", IfName: "eth0"}

	lockDir := t.TempDir()
	if err := MarkNetwork(lockDir, long); err == nil {
		t.Error("MarkNetwork of a name too long succeeded")
	}
	unlock, err := LockNetwork(lockDir, long)
	if err != nil {
		t.Fatalf("LockNetwork: %v", err)
	}
	unlock()
	if NetworkMarked(lockDir, long) {
		t.Error("NetworkMarked: true")
	}
	if err := UnmarkNetwork(lockDir, long); err != nil {
		t.Errorf("UnmarkNetwork: %v", err)
	}
	if err := ForgetNetwork(lockDir, long, func() (bool, error) { return true, nil }); err != nil {
		t.Errorf("ForgetNetwork: %v", err)
	}
	if entries, _ := os.ReadDir(lockDir); len(entries) != 0 {
		t.Errorf("files made in the lock directory: %v", entries)
	}

	requireRoot(t)
	for _, name := range []string{IPTablesName, NFTablesName} {
		t.Run(name, func(t *testing.T) {
			b, p := newBackends(t, name)
			n := newTestNS(t, "long")
			prepareForward(t, n)
			before := n.ruleset(t)
			if err := n.do(t, func() error { return b.Ensure(testNetwork(long, "br0", "10.1.0.0/24", "fd01::/64")) }); err == nil {
				t.Error("Ensure of a name too long succeeded")
			}
			for what, f := range map[string]func() error{
				"Remove":    func() error { return b.Remove(long) },
				"Unpublish": func() error { return p.Unpublish(long, owner) },
				"Retain":    func() error { return p.Retain(long, nil) },
				"Refresh":   func() error { return p.Refresh(PortNetwork{Name: long, Bridge: "br0"}) },
			} {
				if err := n.do(t, f); err != nil {
					t.Errorf("%s: %v", what, err)
				}
			}
			if after := n.ruleset(t); after != before {
				t.Errorf("the ruleset changed:\n%s\n---\n%s", before, after)
			}
		})
	}
}
