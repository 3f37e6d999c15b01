package link

import (
	"slices"
	"strings"
	"testing"

	"github.com/vishvananda/netlink"
)

func TestIsHostVethName(t *testing.T) {
	tests := []struct {
		name string
		want bool
	}{
		{"veth0a1b2c3d", true},
		{"vethdeadbeef", true},
		{"veth0A1B2C3D", false},
		{"veth0a1b2c3", false},
		{"veth0a1b2c3d4", false},
		{"eth00a1b2c3d", false},
		{"vethzzzzzzzz", false},
	}
	for _, tc := range tests {
		if got := isHostVethName(tc.name); got != tc.want {
			t.Errorf("isHostVethName(%q) = %v, want %v", tc.name, got, tc.want)
		}
	}
}

func TestIsVlanGatewayName(t *testing.T) {
	tests := []struct {
		name string
		want bool
	}{
		{"cni0.100", true},
		{"cni0.1", true},
		{"cni0.4094", true},
		{"cni0.4095", false},
		{"cni0.0", false},
		{"cni0.010", false},
		{"cni0.", false},
		{"cni0.1a", false},
		{"cni1.100", false},
		{"cni0", false},
		{"", false},
	}
	for _, tc := range tests {
		if got := isVlanGatewayName("cni0", tc.name); got != tc.want {
			t.Errorf("isVlanGatewayName(cni0, %q) = %v, want %v", tc.name, got, tc.want)
		}
	}
}

func TestOrphanVeths(t *testing.T) {
	requireRoot(t)
	node, cont := newNetNS(t, "onode"), newNetNS(t, "ocont")
	in(t, node, func() error {
		other, err := EnsureBridge(BridgeConfig{Name: "obr2"})
		if err != nil {
			return err
		}
		br, live, _, err := bridgedVeth("obr", cont)
		if err != nil {
			return err
		}
		enslave := func(name, peer string, b Bridge) error {
			if err := addVethPair(name, peer); err != nil {
				return err
			}
			l, err := netlink.LinkByName(name)
			if err != nil {
				return err
			}
			return netlink.LinkSetMasterByIndex(l, b.Index)
		}
		// Both ends on the node, named like ours: someone's pair (an
		// uplink made by hand), not ours: no container's pair is made so.
		if err := enslave("vethdeadbeef", "stray0", br); err != nil {
			return err
		}
		// The same, with our host veths' alias: ours to collect.
		if err := enslave("vethdeadbee0", "stray2", br); err != nil {
			return err
		}
		if l, err := netlink.LinkByName("vethdeadbee0"); err != nil {
			return err
		} else if err := netlink.LinkSetAlias(l, "ours:c9/eth0"); err != nil {
			return err
		}
		// A VLAN's gateway pair: the port's peer "<bridge>.<vlan>" stays on
		// the node by design (ours and the reference's): not an orphan.
		if err := enslave("vethc0ffee00", "obr.100", br); err != nil {
			return err
		}
		// Not named like ours: left alone.
		if err := enslave("uplink0", "uplink0p", br); err != nil {
			return err
		}
		// Ours, but on another bridge.
		if err := enslave("vethfeedf00d", "stray1", other); err != nil {
			return err
		}
		got, err := OrphanVeths(br, func(alias string) bool { return strings.HasPrefix(alias, "ours:") })
		if err != nil {
			return err
		}
		if want := []string{"vethdeadbee0"}; !slices.Equal(got, want) {
			t.Errorf("OrphanVeths = %v, want %v (live %s must not be listed)", got, want, live.Name)
		}
		// A peer index that does not exist in the peer's netns.
		l, err := netlink.LinkByName(live.Name)
		if err != nil {
			return err
		}
		if ok, err := linkInNetNSID(l.Attrs().NetNsID, l.Attrs().ParentIndex); err != nil || !ok {
			t.Errorf("live peer lookup = %v, %v; want true", ok, err)
		}
		if ok, err := linkInNetNSID(l.Attrs().NetNsID, 99999); err != nil || ok {
			t.Errorf("missing index lookup = %v, %v; want false", ok, err)
		}
		if ok, err := linkInNetNSID(4242, 1); err != nil || ok {
			t.Errorf("unknown nsid lookup = %v, %v; want false", ok, err)
		}
		return nil
	})
}
