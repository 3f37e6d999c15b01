package l2

import (
	"errors"
	"fmt"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/flatcni/plugins/pkg/link"
)

// Bounds of the VLAN ids accepted by the vlan and vlanTrunk keys.
const (
	minVlanID = 1
	maxVlanID = 4094
)

// ErrNoVlanFiltering is returned (wrapped) when the vlan or vlanTrunk keys
// are used on a kernel built without bridge VLAN filtering, where the kernel
// itself only answers "operation not supported".
var ErrNoVlanFiltering = errors.New("the kernel lacks bridge VLAN filtering (CONFIG_BRIDGE_VLAN_FILTERING), which the vlan and vlanTrunk keys need")

// probeBridgePrefix names the short-lived bridge made by VlanFilteringSupported.
const probeBridgePrefix = "flcvf"

// VlanFilteringSupported reports whether bridges in the current network
// namespace can do VLAN filtering. It creates a bridge with VLAN filtering
// on under a unique name and deletes it again; nothing is left behind.
func VlanFilteringSupported() (bool, error) {
	name, err := link.RandomName(probeBridgePrefix, 5) // 15 bytes, the IFNAMSIZ limit
	if err != nil {
		return false, fmt.Errorf("name a probe bridge: %w", err)
	}
	on := true
	addErr := netlink.LinkAdd(&netlink.Bridge{
		LinkAttrs:     netlink.LinkAttrs{Name: name},
		VlanFiltering: &on,
	})
	// The kernel normally rolls a failed creation back; remove the bridge
	// in every case so that the probe never leaves anything behind.
	delErr := removeLinkIfPresent(name)
	switch {
	case addErr == nil && delErr != nil:
		return true, fmt.Errorf("remove VLAN filtering probe bridge %q: %w", name, delErr)
	case addErr == nil:
		return true, nil
	case errors.Is(addErr, unix.EOPNOTSUPP):
		return false, delErr
	default:
		return false, errors.Join(fmt.Errorf("probe bridge VLAN filtering with temporary bridge %q: %w", name, addErr), delErr)
	}
}

func removeLinkIfPresent(name string) error {
	link, err := linkByName(name)
	if err != nil {
		var notFound netlink.LinkNotFoundError
		if errors.As(err, &notFound) {
			return nil
		}
		return fmt.Errorf("look up %q: %w", name, err)
	}
	if err := netlink.LinkDel(link); err != nil {
		return fmt.Errorf("delete %q: %w", name, err)
	}
	return nil
}

// EnableVlanFiltering turns VLAN filtering on for the bridge bridgeName,
// unless it is on already. On a kernel without it the error wraps
// ErrNoVlanFiltering.
func EnableVlanFiltering(bridgeName string) error {
	link, err := linkByName(bridgeName)
	if err != nil {
		return fmt.Errorf("enable VLAN filtering: look up bridge %q: %w", bridgeName, err)
	}
	br, ok := link.(*netlink.Bridge)
	if !ok {
		return fmt.Errorf("enable VLAN filtering: %q is a %s link, not a bridge", bridgeName, link.Type())
	}
	if br.VlanFiltering != nil && *br.VlanFiltering {
		return nil
	}
	if err := netlink.BridgeSetVlanFiltering(br, true); err != nil {
		return fmt.Errorf("enable VLAN filtering on bridge %q: %w", bridgeName, vlanError(err))
	}
	return nil
}

// SetPortVlans programs the VLANs of the bridge port hostVeth (the host end
// of a container's veth; its bridge must have VLAN filtering on). Unless
// preserveDefaultVlan is set, the VLANs the port already has (normally the
// bridge's default VLAN 1) are removed first. Each id in trunks is allowed
// tagged; vlan, or VLAN 1 when vlan is 0 but trunks is not empty, becomes the
// port's untagged native VLAN (PVID). With vlan 0 and no trunks nothing is
// done. trunks are expected from VlanIDs.
//
// Unlike the reference plugin, which adds the native VLAN before the trunk
// and so loses it when the trunk lists the same id, the native VLAN is added
// last here and stays untagged and PVID.
func SetPortVlans(hostVeth string, vlan int, trunks []int, preserveDefaultVlan bool) error {
	if vlan == 0 && len(trunks) == 0 {
		return nil
	}
	if vlan < 0 || vlan > maxVlanID {
		return fmt.Errorf("set VLANs of bridge port %q: vlan %d out of range 0-%d", hostVeth, vlan, maxVlanID)
	}
	for _, v := range trunks {
		if v < minVlanID || v > maxVlanID {
			return fmt.Errorf("set VLANs of bridge port %q: trunk VLAN %d out of range %d-%d", hostVeth, v, minVlanID, maxVlanID)
		}
	}
	link, err := linkByName(hostVeth)
	if err != nil {
		return fmt.Errorf("set VLANs of bridge port %q: %w", hostVeth, err)
	}
	if !preserveDefaultVlan {
		if err := removePortVlans(link); err != nil {
			return err
		}
	}
	native := vlan
	if native == 0 {
		native = 1
	}
	for _, v := range trunks {
		if v == native {
			continue
		}
		if err := netlink.BridgeVlanAdd(link, uint16(v), false, false, false, true); err != nil {
			return fmt.Errorf("add trunk VLAN %d to bridge port %q: %w", v, hostVeth, vlanError(err))
		}
	}
	if err := netlink.BridgeVlanAdd(link, uint16(native), true, true, false, true); err != nil {
		return fmt.Errorf("add native VLAN %d to bridge port %q: %w", native, hostVeth, vlanError(err))
	}
	return nil
}

// removePortVlans deletes every VLAN the bridge port currently has.
func removePortVlans(link netlink.Link) error {
	name := link.Attrs().Name
	all, err := bridgeVlanList()
	if err != nil {
		return fmt.Errorf("list VLANs of bridge port %q: %w", name, vlanError(err))
	}
	for _, info := range all[int32(link.Attrs().Index)] {
		if err := netlink.BridgeVlanDel(link, info.Vid, false, false, false, true); err != nil {
			return fmt.Errorf("remove VLAN %d from bridge port %q: %w", info.Vid, name, vlanError(err))
		}
	}
	return nil
}

// vlanError turns the kernel's bare "operation not supported" into
// ErrNoVlanFiltering.
func vlanError(err error) error {
	if errors.Is(err, unix.EOPNOTSUPP) {
		return fmt.Errorf("%w (%w)", ErrNoVlanFiltering, err)
	}
	return err
}
