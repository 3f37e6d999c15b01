package integration

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/containernetworking/cni/pkg/types"
)

// copyPlugin copies our program (bin/bridge) to dir/name with mode perm.
func copyPlugin(t *testing.T, bin, dir, name string, perm os.FileMode) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(bin, "bridge"))
	if err == nil {
		err = os.WriteFile(filepath.Join(dir, name), b, perm)
	}
	if err != nil {
		t.Fatal(err)
	}
}

// Started under a name that is neither plugin, the program fails as a
// plugin fails: exit 1 and an error result on stdout (which libcni reads
// and the runtime shows) naming the name and the two plugins, whatever the
// verb. No root needed.
func TestOneBinaryUnknownName(t *testing.T) {
	dir := t.TempDir()
	copyPlugin(t, binDir(t), dir, "flatcni-other", 0o755)
	for _, verb := range []string{"VERSION", "ADD"} {
		cmd := exec.Command(filepath.Join(dir, "flatcni-other"))
		cmd.Env = []string{"CNI_COMMAND=" + verb}
		cmd.Stdin = strings.NewReader(`{"cniVersion":"1.1.0","name":"n","type":"flatcni-other"}`)
		out, err := cmd.Output()
		ee, ok := err.(*exec.ExitError)
		if !ok || ee.ExitCode() != 1 {
			t.Fatalf("%s: want exit 1, got %v", verb, err)
		}
		e := CNIError(t, out)
		if e.Code != types.ErrInternal || !strings.Contains(e.Msg, `"flatcni-other"`) || !strings.Contains(e.Msg, `"bridge"`) || !strings.Contains(e.Msg, `"host-local"`) {
			t.Errorf("%s: error %+v, want code 999 naming the name and the two plugins", verb, e)
		}
	}
}

// onebinaryConf is a bridge network with host-local IPAM named ipamType.
func onebinaryConf(n *Node, name, ipamType string) []byte {
	return []byte(fmt.Sprintf(`{"cniVersion":"1.0.0","name":%q,"type":"bridge","bridge":"ob%s","isGateway":true,"ipam":{"type":%q,"dataDir":%q,"subnet":"10.79.0.0/24"}}`,
		name, uniq(), ipamType, n.LeaseDir()))
}

// Copies of the program, each alone in CNI_PATH, work; the bridge runs the
// host-local copy in-process (a copy of the same build): it is not even
// executable here, so executing it would fail.
func TestOneBinaryCopies(t *testing.T) {
	requireRoot(t)
	n := NewNode(t)
	dir := t.TempDir()
	copyPlugin(t, n.Bin, dir, "bridge", 0o755)
	copyPlugin(t, n.Bin, dir, "host-local", 0o644)
	n.Bin = dir
	ctr, rt := container(t, "ob")
	conf := onebinaryConf(n, "ob-copies", "host-local")
	out, err := n.Exec(t, "bridge", "ADD", rt.ContainerID, ctr.Path, "eth0", conf)
	if err != nil {
		t.Fatalf("ADD: %v", err)
	}
	if !strings.Contains(string(out), "10.79.0.2/24") {
		t.Errorf("ADD result %s", out)
	}
	if l := leaseFiles(t, filepath.Join(n.LeaseDir(), "ob-copies")); len(l) != 1 || l[0] != "10.79.0.2" {
		t.Errorf("leases %v", l)
	}
	if _, err := n.Exec(t, "bridge", "DEL", rt.ContainerID, ctr.Path, "eth0", conf); err != nil {
		t.Fatalf("DEL: %v", err)
	}
	if l := leaseFiles(t, filepath.Join(n.LeaseDir(), "ob-copies")); len(l) != 0 {
		t.Errorf("leases after DEL %v", l)
	}
}

// ipam.type naming this program under another name than host-local (the
// bridge itself, or a copy) would call the bridge back: a configuration
// error naming the plugin, before anything changes.
func TestOneBinaryIPAMLoop(t *testing.T) {
	requireRoot(t)
	n := NewNode(t)
	dir := t.TempDir()
	for _, name := range []string{"bridge", "host-local", "myipam"} {
		copyPlugin(t, n.Bin, dir, name, 0o755)
	}
	for _, bin := range []string{n.Bin, dir} {
		for _, typ := range []string{"bridge", "myipam"} {
			if bin == n.Bin && typ == "myipam" {
				continue
			}
			n.Bin = bin
			ctr, rt := container(t, "ob")
			out, err := n.Exec(t, "bridge", "ADD", rt.ContainerID, ctr.Path, "eth0", onebinaryConf(n, "ob-loop", typ))
			if err == nil {
				t.Fatalf("%s in %s: ADD succeeded: %s", typ, bin, out)
			}
			e := CNIError(t, out)
			if e.Code != types.ErrInvalidNetworkConfig || !strings.Contains(e.Msg, "ipam.type") || !strings.Contains(e.Msg, `"`+typ+`"`) || !strings.Contains(e.Msg, "loop") {
				t.Errorf("%s in %s: error %+v, want a configuration error naming ipam.type, the plugin and the loop", typ, bin, e)
			}
			if v := hostVeths(t, n); len(v) != 0 {
				t.Errorf("%s: host veths after the refused ADD: %v", typ, v)
			}
		}
	}
}

// A loop through another plugin: ipam.type names a script that runs the
// bridge again (under the name bridge, as a plugin that delegates to it
// would). The bridge it starts finds this program among its ancestors and
// refuses, so every verb ends instead of starting bridges without bound:
// ADD fails naming the loop; DEL, which the runtime makes after that failed
// ADD and retries until it succeeds, goes on without the IPAM plugin (it
// holds nothing: no ADD ever ran it) and succeeds.
func TestOneBinaryIPAMLoopThroughAnother(t *testing.T) {
	requireRoot(t)
	n := NewNode(t)
	dir := t.TempDir()
	script := "#!/bin/bash\nexec -a bridge " + filepath.Join(n.Bin, "bridge") + "\n"
	if err := os.WriteFile(filepath.Join(dir, "loopy"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	conf := onebinaryConf(n, "ob-loopy", "loopy")
	ctr, rt := container(t, "ob")
	out, err := n.Exec(t, "bridge", "ADD", rt.ContainerID, ctr.Path, "eth0", conf, "CNI_PATH="+dir+":"+n.Bin)
	if err == nil {
		t.Fatalf("ADD succeeded: %s", out)
	}
	if !strings.Contains(string(out), "leads back to the bridge") {
		t.Errorf("ADD: %s, want the loop named", out)
	}
	if v := hostVeths(t, n); len(v) != 0 {
		t.Errorf("host veths after the refused ADD: %v", v)
	}
	if out, err := n.Exec(t, "bridge", "DEL", rt.ContainerID, ctr.Path, "eth0", conf, "CNI_PATH="+dir+":"+n.Bin); err != nil {
		t.Errorf("DEL after the refused ADD: %v\n%s", err, out)
	}
	if v := hostVeths(t, n); len(v) != 0 {
		t.Errorf("host veths after DEL: %v", v)
	}
}
