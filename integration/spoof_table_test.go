package integration

import (
	"encoding/json"
	"os/exec"
	"strings"
	"testing"
)

// spoofTableNet is a macspoofchk network of two containers on a fresh node.
type spoofTableNet struct {
	node *Node
	conf []byte
	a, b *Netns
}

func newSpoofTableNet(t *testing.T, subnet string) *spoofTableNet {
	t.Helper()
	requireRoot(t)
	if _, err := exec.LookPath("nft"); err != nil {
		t.Skip("needs nft to list the node's nftables tables")
	}
	n := NewNode(t)
	s := &spoofTableNet{node: n, conf: l2Conf(n, "spooftbl-"+uniq(), "stbr"+uniq()[:4], subnet, `,"macspoofchk":true`)}
	s.a, _ = attach(t, n, s.conf, "stbl-a")
	s.b, _ = attach(t, n, s.conf, "stbl-b")
	return s
}

// table lists table bridge flatcni-macspoof in the node, or "" when the
// node has no such table.
func (s *spoofTableNet) table(t *testing.T) string {
	t.Helper()
	tables := s.node.MustRun(t, "nft", "list", "tables", "bridge")
	if !strings.Contains(tables, "table bridge flatcni-macspoof\n") {
		return ""
	}
	return s.node.MustRun(t, "nft", "list", "table", "bridge", "flatcni-macspoof")
}

// requireOnlyB fails unless the table is there holding b's check and not a's.
func (s *spoofTableNet) requireOnlyB(t *testing.T, step string) {
	t.Helper()
	table := s.table(t)
	if table == "" {
		t.Fatalf("%s: table bridge flatcni-macspoof gone while container b still has its check", step)
	}
	if !strings.Contains(table, "cid=ctr-"+s.b.Name+" ") || strings.Contains(table, "cid=ctr-"+s.a.Name+" ") {
		t.Fatalf("%s: want only container b's check (%s):\n%s", step, s.b.Name, table)
	}
}

// requireNoTable fails if the node still has table bridge flatcni-macspoof.
func (s *spoofTableNet) requireNoTable(t *testing.T, step string) {
	t.Helper()
	if table := s.table(t); table != "" {
		t.Fatalf("%s: table bridge flatcni-macspoof left in the node:\n%s", step, table)
	}
}

func (s *spoofTableNet) gc(t *testing.T, valid ...*Netns) {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(s.conf, &m); err != nil {
		t.Fatal(err)
	}
	atts := []map[string]string{}
	for _, c := range valid {
		atts = append(atts, map[string]string{"containerID": "ctr-" + c.Name, "ifname": "eth0"})
	}
	m["cni.dev/valid-attachments"] = atts
	conf, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.node.Exec(t, "bridge", "GC", "", "", "", conf); err != nil {
		t.Fatalf("GC: %v", err)
	}
}

// The last DEL of a macspoofchk attachment leaves nothing of the spoof
// check in the node: no table bridge flatcni-macspoof. A DEL that leaves
// another attachment keeps the table and that attachment's rule.
func TestMacSpoofTableGoneAfterLastDel(t *testing.T) {
	s := newSpoofTableNet(t, "10.62.0.0/24")
	if _, err := s.node.Exec(t, "bridge", "DEL", "ctr-"+s.a.Name, s.a.Path, "eth0", s.conf); err != nil {
		t.Fatal(err)
	}
	s.requireOnlyB(t, "after DEL of a")
	if _, err := s.node.Exec(t, "bridge", "DEL", "ctr-"+s.b.Name, s.b.Path, "eth0", s.conf); err != nil {
		t.Fatal(err)
	}
	s.requireNoTable(t, "after DEL of the last attachment")
	// A repeated DEL finds nothing and fails nothing.
	if _, err := s.node.Exec(t, "bridge", "DEL", "ctr-"+s.b.Name, s.b.Path, "eth0", s.conf); err != nil {
		t.Fatalf("repeated DEL: %v", err)
	}
}

// GC, as DEL: the GC that removes the last check removes the table; one
// that keeps a valid attachment keeps the table and its rule.
func TestMacSpoofTableGoneAfterGC(t *testing.T) {
	s := newSpoofTableNet(t, "10.63.0.0/24")
	s.gc(t, s.b)
	s.requireOnlyB(t, "after GC keeping b")
	s.gc(t)
	s.requireNoTable(t, "after GC of every attachment")
}
