package integration

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// refSpoofNet is a macspoofchk network on a node whose containers were
// attached by the REFERENCE bridge plugin before the node switched to ours.
type refSpoofNet struct {
	node *Node
	ref  *Node // the same node, running the reference binaries
	conf []byte
}

func newRefSpoofNet(t *testing.T, subnet string) *refSpoofNet {
	t.Helper()
	requireRoot(t)
	refDir := refBinDir(t)
	if _, err := exec.LookPath("nft"); err != nil {
		t.Skip("the reference plugin's macspoofchk runs nft, which is not installed")
	}
	n := NewNode(t)
	ref := *n
	ref.Bin = refDir
	return &refSpoofNet{node: n, ref: &ref, conf: l2Conf(n, "spoofref-"+uniq(), "srbr"+uniq()[:4], subnet, `,"macspoofchk":true`)}
}

// refAdd attaches a new container with the reference plugin and returns
// it and its container ID; our DEL detaches it at cleanup.
func (s *refSpoofNet) refAdd(t *testing.T, role string) (*Netns, string) {
	t.Helper()
	c := NewNetns(t, role)
	id := "ctr-" + c.Name
	if _, err := s.ref.Exec(t, "bridge", "ADD", id, c.Path, "eth0", s.conf); err != nil {
		t.Fatalf("reference ADD: %v", err)
	}
	t.Cleanup(func() { _, _, _ = s.ours(t, "DEL", id, c) })
	return c, id
}

// ours runs our bridge plugin with the network's configuration for
// container c (none for GC), returning stdout and stderr.
func (s *refSpoofNet) ours(t *testing.T, command, id string, c *Netns) ([]byte, []byte, error) {
	t.Helper()
	return s.oursConf(t, command, id, c, s.conf)
}

func (s *refSpoofNet) oursConf(t *testing.T, command, id string, c *Netns, conf []byte) ([]byte, []byte, error) {
	t.Helper()
	netns, ifname := "", ""
	if c != nil {
		netns, ifname = c.Path, "eth0"
	}
	cmd := exec.Command("ip", "netns", "exec", s.node.Name, filepath.Join(s.node.Bin, "bridge"))
	cmd.Env = append(os.Environ(), "CNI_COMMAND="+command, "CNI_CONTAINERID="+id, "CNI_NETNS="+netns,
		"CNI_IFNAME="+ifname, "CNI_PATH="+s.node.Bin)
	cmd.Stdin = bytes.NewReader(conf)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	if err != nil {
		err = fmt.Errorf("our bridge %s: %v: %s%s", command, err, stdout.String(), stderr.String())
	}
	return stdout.Bytes(), stderr.Bytes(), err
}

// gc runs our GC with the given containers' eth0 as valid attachments.
func (s *refSpoofNet) gc(t *testing.T, validIDs ...string) ([]byte, error) {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(s.conf, &m); err != nil {
		t.Fatal(err)
	}
	valid := []map[string]string{}
	for _, id := range validIDs {
		valid = append(valid, map[string]string{"containerID": id, "ifname": "eth0"})
	}
	m["cni.dev/valid-attachments"] = valid
	conf, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	_, stderr, err := s.oursConf(t, "GC", "", nil, conf)
	return stderr, err
}

// nat lists table bridge nat in the node.
func (s *refSpoofNet) nat(t *testing.T) string {
	t.Helper()
	return s.node.MustRun(t, "nft", "list", "table", "bridge", "nat")
}

// requireRefCheck fails unless table bridge nat holds the reference's
// check of container id (its two chains and a PREROUTING jump to the first)
// when want, and nothing of it otherwise.
func requireRefCheck(t *testing.T, step, nat, id string, want bool) {
	t.Helper()
	chain := "cni-br-iface-" + id + "-eth0"
	has := map[string]bool{
		"chain":      strings.Contains(nat, "chain "+chain+" {"),
		"-mac chain": strings.Contains(nat, "chain "+chain+"-mac {"),
		"jump":       strings.Contains(nat, "jump "+chain+" "),
	}
	for what, got := range has {
		if got != want {
			t.Errorf("%s: reference check of %s: %s present = %v, want %v:\n%s", step, id, what, got, want, nat)
		}
	}
}

// requireNatKept fails unless table bridge nat and its PREROUTING base
// chain are still there (the reference leaves them too).
func requireNatKept(t *testing.T, step, nat string) {
	t.Helper()
	if !strings.Contains(nat, "chain PREROUTING {") || !strings.Contains(nat, "hook prerouting") {
		t.Errorf("%s: PREROUTING of table bridge nat not kept:\n%s", step, nat)
	}
}

// TestMacSpoofReferenceDel switches a node in place with containers attached
// by the REFERENCE plugin with macspoofchk: our DEL of one removes the
// reference's spoof check of that container (its chains in table bridge nat
// and the jump to them), leaves the other container's and the table, and
// can be repeated.
func TestMacSpoofReferenceDel(t *testing.T) {
	s := newRefSpoofNet(t, "10.66.0.0/24")
	a, idA := s.refAdd(t, "spoofref-a")
	_, idB := s.refAdd(t, "spoofref-b")
	before := s.nat(t)
	requireRefCheck(t, "after the reference's ADDs", before, idA, true)
	requireRefCheck(t, "after the reference's ADDs", before, idB, true)

	for _, step := range []string{"our DEL", "our DEL again"} {
		_, stderr, err := s.ours(t, "DEL", idA, a)
		if err != nil {
			t.Fatalf("%s: %v", step, err)
		}
		if len(stderr) > 0 {
			t.Errorf("%s printed %q", step, stderr)
		}
		after := s.nat(t)
		requireRefCheck(t, step, after, idA, false)
		requireRefCheck(t, step, after, idB, true)
		requireNatKept(t, step, after)
	}
	if out := s.node.MustRun(t, "nft", "list", "ruleset"); strings.Contains(out, idA) {
		t.Errorf("something naming %s is left:\n%s", idA, out)
	}
}

// A reference check that cannot be removed (a chain of the administrator's
// jumps to its -mac chain) does not fail our DEL, which says so on stderr.
func TestMacSpoofReferenceDelLeftover(t *testing.T) {
	s := newRefSpoofNet(t, "10.67.0.0/24")
	a, idA := s.refAdd(t, "spoofref-pin")
	mac := "cni-br-iface-" + idA + "-eth0-mac"
	s.node.MustRun(t, "nft", "add", "chain", "bridge", "nat", "admin-pin")
	s.node.MustRun(t, "nft", "add", "rule", "bridge", "nat", "admin-pin", "jump", mac)

	_, stderr, err := s.ours(t, "DEL", idA, a)
	if err != nil {
		t.Fatalf("DEL failed over the reference's leftover: %v", err)
	}
	if !strings.Contains(string(stderr), "cni-br-iface-"+idA+"-eth0") {
		t.Errorf("DEL's stderr does not name the reference's chain left: %q", stderr)
	}
	if nat := s.nat(t); !strings.Contains(nat, "chain "+mac+" {") {
		t.Errorf("the -mac chain another chain jumps to is gone:\n%s", nat)
	}
	s.node.MustRun(t, "nft", "delete", "chain", "bridge", "nat", "admin-pin")
	if _, _, err := s.ours(t, "DEL", idA, a); err != nil {
		t.Fatalf("DEL once unpinned: %v", err)
	}
	requireRefCheck(t, "DEL once unpinned", s.nat(t), idA, false)
}

// TestMacSpoofReferenceGC: GC cannot tell the network of the reference's
// checks (their names and comments carry only container ID and interface),
// but it removes those whose host veth is gone, and keeps the others,
// whatever the valid attachments say.
func TestMacSpoofReferenceGC(t *testing.T) {
	s := newRefSpoofNet(t, "10.68.0.0/24")
	_, idLive := s.refAdd(t, "spoofref-live")
	gone, idGone := s.refAdd(t, "spoofref-gone")
	_, idOther := s.refAdd(t, "spoofref-oth") // alive, of "another network" as far as GC can tell
	// The container's end goes and takes the host veth with it, as when a
	// container dies without DEL.
	gone.MustRun(t, "ip", "link", "del", "eth0")

	if stderr, err := s.gc(t, idLive); err != nil || len(stderr) > 0 {
		t.Fatalf("GC: %v %s", err, stderr)
	}
	nat := s.nat(t)
	requireRefCheck(t, "after GC", nat, idGone, false)
	requireRefCheck(t, "after GC", nat, idLive, true)
	requireRefCheck(t, "after GC", nat, idOther, true)
	requireNatKept(t, "after GC", nat)
}
