package l2

import (
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/vishvananda/netlink"
)

// linkNames lists the links of the calling thread's namespace.
func linkNames() ([]string, error) {
	links, err := netlink.LinkList()
	if err != nil {
		return nil, err
	}
	var names []string
	for _, l := range links {
		names = append(names, l.Attrs().Name)
	}
	slices.Sort(names)
	return names, nil
}

func TestVlanFilteringSupportedLeavesNothing(t *testing.T) {
	requireRoot(t)
	node := newNetns(t, "vfprobe")
	var supported bool
	err := inNetns(t, node, func() error {
		before, err := linkNames()
		if err != nil {
			return err
		}
		supported, err = VlanFilteringSupported()
		if err != nil {
			return err
		}
		after, err := linkNames()
		if err != nil {
			return err
		}
		if !slices.Equal(before, after) {
			t.Errorf("links before probe %v, after %v", before, after)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("VlanFilteringSupported: %v", err)
	}
	t.Logf("bridge VLAN filtering supported by this kernel: %v", supported)
}

func TestEnableVlanFiltering(t *testing.T) {
	requireRoot(t)
	node := newNetns(t, "vfenable")
	run(t, "ip", "-n", node, "link", "add", "br0", "type", "bridge")
	run(t, "ip", "-n", node, "link", "add", "vx0", "type", "veth", "peer", "name", "vx1")
	err := inNetns(t, node, func() error {
		supported, err := VlanFilteringSupported()
		if err != nil {
			return err
		}
		err = EnableVlanFiltering("br0")
		if !supported {
			if !errors.Is(err, ErrNoVlanFiltering) {
				t.Errorf("EnableVlanFiltering on a kernel without it: got %v, want ErrNoVlanFiltering", err)
			}
			if err != nil && (!strings.Contains(err.Error(), `"br0"`) || !strings.Contains(err.Error(), "lacks bridge VLAN filtering")) {
				t.Errorf("error %q should name the bridge and say what the kernel lacks", err)
			}
		} else {
			if err != nil {
				t.Errorf("EnableVlanFiltering: %v", err)
			}
			link, err := netlink.LinkByName("br0")
			if err != nil {
				return err
			}
			if f := link.(*netlink.Bridge).VlanFiltering; f == nil || !*f {
				t.Errorf("br0 vlan_filtering not on after EnableVlanFiltering")
			}
			if err := EnableVlanFiltering("br0"); err != nil {
				t.Errorf("EnableVlanFiltering again: %v", err)
			}
		}
		for _, name := range []string{"nosuchbr0", "vx0"} {
			if err := EnableVlanFiltering(name); err == nil || !strings.Contains(err.Error(), `"`+name+`"`) {
				t.Errorf("EnableVlanFiltering(%q) = %v, want an error naming it", name, err)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestSetPortVlans(t *testing.T) {
	requireRoot(t)
	type vlanState struct {
		vid            uint16
		pvid, untagged bool
	}
	tests := []struct {
		name     string
		vlan     int
		trunks   []int
		preserve bool
		want     []vlanState
	}{
		{name: "nothing configured keeps default", want: []vlanState{{1, true, true}}},
		{name: "access vlan", vlan: 10, want: []vlanState{{10, true, true}}},
		{name: "access vlan preserving default", vlan: 10, preserve: true, want: []vlanState{{1, false, true}, {10, true, true}}},
		{name: "trunk gets native 1", trunks: []int{20, 21}, want: []vlanState{{1, true, true}, {20, false, false}, {21, false, false}}},
		{name: "vlan and trunk", vlan: 5, trunks: []int{5, 6}, want: []vlanState{{5, true, true}, {6, false, false}}},
	}
	node := newNetns(t, "vfport")
	var supported bool
	if err := inNetns(t, node, func() (err error) {
		supported, err = VlanFilteringSupported()
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if !supported {
		run(t, "ip", "-n", node, "link", "add", "br0", "type", "bridge")
		run(t, "ip", "-n", node, "link", "add", "vp0", "type", "veth", "peer", "name", "vq0")
		run(t, "ip", "-n", node, "link", "set", "vp0", "master", "br0")
		err := inNetns(t, node, func() error { return SetPortVlans("vp0", 5, []int{7}, false) })
		if !errors.Is(err, ErrNoVlanFiltering) || !strings.Contains(err.Error(), `"vp0"`) {
			t.Fatalf("SetPortVlans on a kernel without VLAN filtering: got %v, want ErrNoVlanFiltering naming the port", err)
		}
		t.Skip("skipped the rest: this kernel lacks bridge VLAN filtering (CONFIG_BRIDGE_VLAN_FILTERING)")
	}
	run(t, "ip", "-n", node, "link", "add", "br0", "type", "bridge", "vlan_filtering", "1")
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			port := "vp" + randomSuffix(t, 3)
			run(t, "ip", "-n", node, "link", "add", port, "type", "veth", "peer", "name", "vq"+port[2:])
			run(t, "ip", "-n", node, "link", "set", port, "master", "br0")
			err := inNetns(t, node, func() error {
				if err := SetPortVlans(port, tt.vlan, tt.trunks, tt.preserve); err != nil {
					return err
				}
				link, err := netlink.LinkByName(port)
				if err != nil {
					return err
				}
				all, err := netlink.BridgeVlanList()
				if err != nil {
					return err
				}
				var got []vlanState
				for _, v := range all[int32(link.Attrs().Index)] {
					got = append(got, vlanState{v.Vid, v.PortVID(), v.EngressUntag()})
				}
				slices.SortFunc(got, func(a, b vlanState) int { return int(a.vid) - int(b.vid) })
				if !slices.Equal(got, tt.want) {
					t.Errorf("port VLANs = %+v, want %+v", got, tt.want)
				}
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
		})
	}
}
