package bridge

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/containernetworking/cni/pkg/skel"
)

// gcArgs is a GC of conf (testConf's shape) with the valid attachments
// given ("" for none).
func gcArgs(conf []byte, valid string) *skel.CmdArgs {
	c := strings.Replace(string(conf), `"1.0.0"`, `"1.1.0"`, 1)
	c = strings.Replace(c, `"ipam"`, `"cni.dev/valid-attachments":[`+valid+`],"ipam"`, 1)
	return &skel.CmdArgs{Path: "/opt/cni/bin", StdinData: []byte(c)}
}

// An IPAM plugin that leads back to the bridge is refused by ADD; the DEL
// the runtime makes after that failed ADD, and GC, go on without it (it
// holds nothing: ADD never ran it), or they would fail for ever.
func TestTeardownWithIPAMLoop(t *testing.T) {
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := os.Symlink(self, filepath.Join(dir, "bridge")); err != nil {
		t.Fatal(err)
	}
	n := newFakeNode(testNetns)
	n.deps.IPAM = NodeIPAM{}
	args := testArgs(testConf("bridge", ""), "c1")
	args.Path = dir
	if _, err := n.deps.Add(args); err == nil || !strings.Contains(err.Error(), "loop") {
		t.Fatalf("ADD with the bridge as IPAM plugin: %v, want a loop refused", err)
	}
	if err := n.deps.Del(args); err != nil {
		t.Errorf("DEL: %v", err)
	}
	gc := gcArgs(testConf("bridge", ""), "")
	gc.Path = dir
	if err := n.deps.GC(gc); err != nil {
		t.Errorf("GC: %v", err)
	}
}
