package integration

import (
	"fmt"
	"strings"
	"testing"
)

// A failed ADD removes the bridge it made, unless another ADD may be about
// to attach to it: with IPAM, a host veth joins the bridge only once its
// container end is configured, and one of ours on no bridge keeps the
// bridge (the other ADD would fail on a bridge gone: 3 in 40 in a timed
// race of two ADDs before). Here the other ADD's host end is made by hand,
// with our alias, on no bridge.
func TestFailedADDKeepsFreshBridgeForPendingPort(t *testing.T) {
	n := NewNode(t)
	c := NewNetns(t, "fresh")
	br := "frbr" + uniq()[:6]
	conf := []byte(fmt.Sprintf(`{"cniVersion":"1.1.0","name":"fresh","type":"bridge","bridge":%q,"isGateway":true,
		"ipam":{"type":"host-local","dataDir":%q,"ranges":[[{"subnet":"10.93.0.0/24","rangeStart":"10.93.0.300"}]]}}`, br, n.LeaseDir()))
	bad := []byte(strings.Replace(string(conf), `"rangeStart":"10.93.0.300"`, `"rangeStart":"10.94.0.5"`, 1))
	good := []byte(strings.Replace(string(conf), `,"rangeStart":"10.93.0.300"`, ``, 1))

	// Nothing pending: the bridge goes with the failed ADD.
	if out, err := n.Exec(t, "bridge", "ADD", "ctr-fail", c.Path, "eth0", bad); err == nil {
		t.Fatalf("ADD with a range outside its subnet succeeded: %s", out)
	}
	if out, err := n.Run("ip", "link", "show", br); err == nil {
		t.Fatalf("bridge %s left by the failed ADD: %s", br, out)
	}

	// A host veth of ours on no bridge: the bridge stays, and the ADD
	// that owns the veth's name finds it.
	n.MustRun(t, "ip", "link", "add", "vethpend1", "type", "veth", "peer", "name", "vethpend1p")
	n.MustRun(t, "ip", "link", "set", "vethpend1", "alias", "flatcni:ctr-other/eth0")
	if out, err := n.Exec(t, "bridge", "ADD", "ctr-fail", c.Path, "eth0", bad); err == nil {
		t.Fatalf("ADD with a range outside its subnet succeeded: %s", out)
	}
	if _, err := n.Run("ip", "link", "show", br); err != nil {
		t.Fatalf("the failed ADD removed bridge %s while a host veth of ours waited to join one", br)
	}
	n.MustRun(t, "ip", "link", "del", "vethpend1")
	if out, err := n.Exec(t, "bridge", "ADD", "ctr-ok", c.Path, "eth0", good); err != nil {
		t.Fatalf("ADD on the bridge kept: %v\n%s", err, out)
	}
	if out, err := n.Exec(t, "bridge", "DEL", "ctr-ok", c.Path, "eth0", good); err != nil {
		t.Fatalf("DEL: %v\n%s", err, out)
	}
}
