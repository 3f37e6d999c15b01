package integration

import (
	"fmt"
	"strings"
	"testing"
)

// A runtime calls DEL after a failed ADD and retries it until it succeeds:
// DEL of a configuration that ADD rejects must still succeed (as the
// reference's does) and change nothing.
func TestDelOfRejectedConfigSucceeds(t *testing.T) {
	n := NewNode(t)
	c := NewNetns(t, "rejected")
	ipam := func(rest string) string {
		return fmt.Sprintf(`"ipam":{"type":"host-local","dataDir":%q,%s}`, n.LeaseDir(), rest)
	}
	// Also what host-local needs only for ADD (ranges), and names DEL
	// cannot use (an IPAM plugin that is not installed, or no plugin name;
	// a bridge name no link can have): teardown goes on without them.
	for _, extra := range []string{
		`"disableContainerInterface":true`,
		`"ipMasq":true,"ipMasqBackend":"pf"`,
		`"mtu":12`,
		`"mtu":"1450"`,
		`"hairpinMode":true,"promiscMode":true`,
		`"vlan":5000`,
		`"runtimeConfig":{"mac":"not-a-mac"}`,
		`"ipMasq":true,` + ipam(`"subnet":"nope"`),
		`"ipMasq":true,` + ipam(`"ranges":[[{"subnet":"10.64.0.0/24","rangeStart":"10.65.0.1"}]]`),
		`"ipMasq":true,"ipam":{"type":"no-such-ipam"}`,
		`"ipMasq":true,"ipam":{"type":"../host-local"}`,
		`"bridge":"a-bridge-name-too-long"`,
	} {
		if !strings.Contains(extra, `"ipam"`) {
			extra += "," + ipam(`"subnet":"10.64.0.0/24"`)
		}
		conf := []byte(fmt.Sprintf(`{"cniVersion":"1.1.0","name":"rej","type":"bridge","bridge":"rejbr%s",%s}`, uniq()[:4], extra))
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
