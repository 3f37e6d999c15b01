package integration

import (
	"fmt"
	"strings"
	"testing"
)

// A failed ADD removes the bridge it made, unless another ADD may be about
// to attach to it: with IPAM, a host veth joins the bridge only once its
// container end is configured, and a host veth of ours on no bridge, made
// after the bridge, keeps it (the other ADD would fail on a bridge gone:
// 3 in 40 in a timed race of two ADDs before; that race is the unit tests'
// and TestUnattachedVeth's). One made before the bridge (a port whose
// bridge was deleted under it) cannot be for it, and does not keep it.
func TestFailedADDRemovesFreshBridge(t *testing.T) {
	n := NewNode(t)
	c := NewNetns(t, "fresh")
	br := "frbr" + uniq()[:6]
	conf := []byte(fmt.Sprintf(`{"cniVersion":"1.1.0","name":"fresh","type":"bridge","bridge":%q,"isGateway":true,
		"ipam":{"type":"host-local","dataDir":%q,"ranges":[[{"subnet":"10.93.0.0/24"}]]}}`, br, n.LeaseDir()))
	bad := []byte(strings.Replace(string(conf), `"subnet":"10.93.0.0/24"`, `"subnet":"10.93.0.0/24","rangeStart":"10.94.0.5"`, 1))

	n.MustRun(t, "ip", "link", "add", "vethold1", "type", "veth", "peer", "name", "vethold1p")
	n.MustRun(t, "ip", "link", "set", "vethold1", "alias", "flatcni:ctr-other/eth0")
	if out, err := n.Exec(t, "bridge", "ADD", "ctr-fail", c.Path, "eth0", bad); err == nil {
		t.Fatalf("ADD with a range outside its subnet succeeded: %s", out)
	}
	if out, err := n.Run("ip", "link", "show", br); err == nil {
		t.Fatalf("bridge %s left by the failed ADD: %s", br, out)
	}
	if out, err := n.Exec(t, "bridge", "ADD", "ctr-ok", c.Path, "eth0", conf); err != nil {
		t.Fatalf("ADD: %v\n%s", err, out)
	}
	if out, err := n.Exec(t, "bridge", "DEL", "ctr-ok", c.Path, "eth0", conf); err != nil {
		t.Fatalf("DEL: %v\n%s", err, out)
	}
}
