package integration

import (
	"fmt"
	"testing"
)

// A runtime calls DEL after a failed ADD and retries it until it succeeds:
// DEL of a configuration that ADD rejects must still succeed (as the
// reference's does) and change nothing.
func TestDelOfRejectedConfigSucceeds(t *testing.T) {
	n := NewNode(t)
	c := NewNetns(t, "rejected")
	for _, extra := range []string{
		`"disableContainerInterface":true`,
		`"ipMasq":true,"ipMasqBackend":"pf"`,
		`"mtu":12`,
		`"hairpinMode":true,"promiscMode":true`,
		`"vlan":5000`,
		`"runtimeConfig":{"mac":"not-a-mac"}`,
	} {
		conf := []byte(fmt.Sprintf(`{"cniVersion":"1.1.0","name":"rej","type":"bridge","bridge":"rejbr%s",%s,
			"ipam":{"type":"host-local","dataDir":%q,"subnet":"10.64.0.0/24"}}`, uniq()[:4], extra, n.LeaseDir()))
		before := n.Snapshot(t)
		if out, err := n.Exec(t, "bridge", "ADD", "ctr-rej", c.Path, "eth0", conf); err == nil {
			t.Fatalf("ADD with %s succeeded", extra)
		} else if e := CNIError(t, out); e.Code != 7 {
			t.Fatalf("ADD with %s: code %d (%s), want 7", extra, e.Code, e.Msg)
		}
		if _, err := n.Exec(t, "bridge", "DEL", "ctr-rej", c.Path, "eth0", conf); err != nil {
			t.Errorf("DEL with %s: %v", extra, err)
		}
		RequireSame(t, before, n.Snapshot(t))
	}
}
