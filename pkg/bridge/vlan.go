package bridge

import (
	"errors"
	"fmt"

	"github.com/flatcni/plugins/pkg/config"
	"github.com/flatcni/plugins/pkg/link"
)

// nodeNetNS names the plugin's own (node) network namespace.
const nodeNetNS = "/proc/self/ns/net"

// gatewayDevice returns where the gateway addresses go: the bridge, or for a
// network with a vlan, as the reference does, a veth "<bridge>.<vlan>" on the
// node whose peer is a port of the bridge with that VLAN untagged. For a vlan,
// the returned MAC is that veth's (the result lists it as a fourth interface).
//
// made names the pair when this call made it (also when it then failed):
// a failed ADD removes it again (removeFreshGateway).
func (d *Deps) gatewayDevice(c *config.Bridge, br link.Bridge) (_ link.Bridge, made string, _ error) {
	if c.Vlan == 0 {
		return br, "", nil
	}
	name := link.VlanGatewayName(br.Name, c.Vlan)
	// One lookup: an existing link of that name is the gateway, as with the
	// reference.
	if gw, err := d.Links.InterfaceByName(name); err == nil {
		return link.Bridge{Name: name, Index: gw.Index, MAC: gw.MAC}, "", nil
	} else if !errors.Is(err, link.ErrNotFound) {
		return link.Bridge{}, "", fmt.Errorf("vlan gateway %q: %w", name, err)
	}
	port, gw, err := d.Links.SetupVeth(link.VethConfig{
		ContainerNetNS: nodeNetNS,
		IfName:         name,
		MTU:            c.MTU,
		Bridge:         br,
		HostAlias:      "flatcni:vlan-gateway/" + name,
		// As the reference's: the gateway end keeps the kernel's
		// accept_dad and arp_notify (set only on container interfaces).
		L2Only: true,
	})
	if err != nil {
		return link.Bridge{}, "", fmt.Errorf("vlan gateway %q: %w", name, err)
	}
	if err := d.Links.SetPortVlans(port.Name, c.Vlan, nil, c.PreserveDefaultVlan); err != nil {
		return link.Bridge{}, name, fmt.Errorf("vlan gateway %q: %w", name, err)
	}
	return link.Bridge{Name: name, Index: gw.Index, MAC: gw.MAC}, name, nil
}

// removeFreshGateway deletes the VLAN gateway pair a failed ADD made, once
// its own veth is gone, unless a container is on the bridge or a host veth
// of ours waits to join one (another ADD of the network may use the pair,
// as with removeFreshBridge).
func (d *Deps) removeFreshGateway(br link.Bridge, name string) {
	d.removeFresh(name, br, d.Links.BridgeHasContainers)
}
