package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"runtime"
	"strings"
	"syscall"
	"testing"
)

// TestNodeChildrenInheritNamespace checks the mechanism the bridge scenarios
// rest on: a process started from a node worker runs in the node namespace,
// not in the namespace of the test.
func TestNodeChildrenInheritNamespace(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: creates network namespaces")
	}
	id := make([]byte, 4)
	if _, err := rand.Read(id); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	nss := namespaces{prefix: "flatcni-benchtest-" + hex.EncodeToString(id)}
	t.Cleanup(func() {
		if err := nss.sweep(context.Background()); err != nil {
			t.Errorf("cleanup: %v", err)
		}
	})
	name := nss.name("node")
	if err := nss.add(ctx, []string{name}); err != nil {
		t.Fatal(err)
	}
	var st syscall.Stat_t
	if err := syscall.Stat(nsPath(name), &st); err != nil {
		t.Fatal(err)
	}
	want := fmt.Sprintf("net:[%d]", st.Ino)

	tests := []struct {
		name    string
		workers int
	}{
		{"one worker", 1},
		{"three workers", 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n, err := enterNode(name, nsPath(name), tt.workers)
			if err != nil {
				t.Fatal(err)
			}
			defer n.close()
			for i := range 2 * tt.workers {
				out, err := n.output(ctx, "readlink", "/proc/self/ns/net")
				if err != nil {
					t.Fatal(err)
				}
				if got := strings.TrimSpace(out); got != want {
					t.Errorf("child %d runs in %s, want node namespace %s", i, got, want)
				}
			}
		})
	}

	// The thread running the test must not have moved. (/proc/self would
	// name the thread-group leader, which a finished worker may have been.)
	runtime.LockOSThread()
	self, err := os.Readlink("/proc/thread-self/ns/net")
	runtime.UnlockOSThread()
	if err != nil {
		t.Fatal(err)
	}
	if self == want {
		t.Errorf("the test's own thread ended up in the node namespace")
	}

	if err := nss.del(ctx, []string{name, nss.name("never-made")}); err != nil {
		t.Errorf("del with a missing name: %v", err)
	}
	if _, err := os.Lstat(nsPath(name)); !os.IsNotExist(err) {
		t.Errorf("namespace %s still exists after del (err %v)", name, err)
	}
}
