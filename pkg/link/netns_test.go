package link

import (
	"errors"
	"net/netip"
	"testing"

	"github.com/vishvananda/netlink"
)

// TestSandbox runs a whole attachment through an open Sandbox (the bridge's
// ADD path), then checks that the functions fall back to entering the netns
// per call once it is closed.
func TestSandbox(t *testing.T) {
	requireRoot(t)
	node, cont := newNetNS(t, "snode"), newNetNS(t, "scont")
	in(t, node, func() error {
		if _, err := OpenSandbox(cont + "-missing"); !errors.Is(err, ErrNetNSGone) {
			t.Errorf("OpenSandbox of a missing path: %v, want ErrNetNSGone", err)
		}
		sb, err := OpenSandbox(cont)
		if err != nil {
			return err
		}
		if err := CheckIfNameFree(cont, "eth0"); err != nil {
			t.Errorf("CheckIfNameFree: %v", err)
		}
		br, host, c, err := bridgedVeth("sbr", cont)
		if err != nil {
			return err
		}
		addr := netip.MustParsePrefix("10.88.0.2/24")
		if err := ConfigureContainer(Interface{Name: "eth0", Sandbox: cont}, []netip.Prefix{addr}, nil, false); err != nil {
			return err
		}
		if err := CheckContainer(cont, "eth0", c.MAC, []netip.Prefix{addr}, nil); err != nil {
			t.Errorf("CheckContainer: %v", err)
		}
		// The node side is untouched by the sandbox's thread.
		if _, err := netlink.LinkByName(host.Name); err != nil {
			t.Errorf("host veth %s not on the node: %v", host.Name, err)
		}
		if err := CheckIfNameFree(cont, "eth0"); err == nil {
			t.Error("CheckIfNameFree: no error for a taken name")
		}
		// DelVeth hops back to the node from the sandbox's thread.
		h1, _, err := SetupVeth(VethConfig{ContainerNetNS: cont, IfName: "eth1", Bridge: br})
		if err != nil {
			return err
		}
		if got, _, err := DelVeth(cont, "eth1"); err != nil || got != h1.Name {
			t.Errorf("DelVeth in the sandbox = %q, %v; want %q", got, err, h1.Name)
		}
		sb.Close()
		if _, ok := sandboxes.Load(cont); ok {
			t.Error("closed sandbox still registered")
		}
		if err := CheckContainer(cont, "eth0", c.MAC, []netip.Prefix{addr}, nil); err != nil {
			t.Errorf("CheckContainer after Close: %v", err)
		}
		if got, _, err := DelVeth(cont, "eth0"); err != nil || got != host.Name {
			t.Errorf("DelVeth = %q, %v; want %q", got, err, host.Name)
		}
		return nil
	})
}
