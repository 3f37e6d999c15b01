package link

import (
	"errors"
	"net/netip"
	"testing"

	"github.com/vishvananda/netlink"
)

// TestNetNSPerCall runs a whole attachment through the functions that enter
// the container netns, each on its own for the call.
func TestNetNSPerCall(t *testing.T) {
	requireRoot(t)
	node, cont := newNetNS(t, "snode"), newNetNS(t, "scont")
	in(t, node, func() error {
		if err := CheckIfNameFree(cont+"-missing", "eth0"); !errors.Is(err, ErrNetNSGone) {
			t.Errorf("CheckIfNameFree in a missing netns: %v, want ErrNetNSGone", err)
		}
		if err := CheckIfNameFree(cont, "eth0"); err != nil {
			t.Errorf("CheckIfNameFree: %v", err)
		}
		br, host, c, err := bridgedVeth("sbr", cont)
		if err != nil {
			return err
		}
		addr := netip.MustParsePrefix("10.88.0.2/24")
		if _, err := ConfigureContainer(Interface{Name: "eth0", Sandbox: cont}, []netip.Prefix{addr}, nil, false, false); err != nil {
			return err
		}
		if err := CheckContainer(cont, "eth0", c.MAC, []netip.Prefix{addr}, nil); err != nil {
			t.Errorf("CheckContainer: %v", err)
		}
		// The node side stays on the node.
		if _, err := netlink.LinkByName(host.Name); err != nil {
			t.Errorf("host veth %s not on the node: %v", host.Name, err)
		}
		if err := CheckIfNameFree(cont, "eth0"); err == nil {
			t.Error("CheckIfNameFree: no error for a taken name")
		}
		// DelVeth hops back to the node from the container netns.
		h1, _, err := SetupVeth(VethConfig{ContainerNetNS: cont, IfName: "eth1", Bridge: br})
		if err != nil {
			return err
		}
		if got, _, err := DelVeth(cont, "eth1"); err != nil || got != h1.Name {
			t.Errorf("DelVeth of eth1 = %q, %v; want %q", got, err, h1.Name)
		}
		if got, _, err := DelVeth(cont, "eth0"); err != nil || got != host.Name {
			t.Errorf("DelVeth = %q, %v; want %q", got, err, host.Name)
		}
		return nil
	})
}
