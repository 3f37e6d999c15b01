package bridge

import "github.com/flatcni/plugins/pkg/link"

// removeFreshBridge deletes the bridge a failed ADD created, when no port is
// on it and no host veth of ours made since is on no bridge: the node is
// left as it was, its addresses go with it. Another ADD of the network,
// started since, may have attached its port meanwhile, or be about to: with
// IPAM its host end joins the bridge only once the container end is
// configured (vethConfig, DeferAttach), and would find the bridge gone.
// Any host veth of ours not yet attached and made after the bridge,
// whatever bridge it is for, keeps it (a dump of the node's veths, on this
// failure path only); one made before (a port whose bridge was deleted
// under it) cannot be for this bridge.
func (d *Deps) removeFreshBridge(br link.Bridge) {
	d.removeFresh(br.Name, br, d.Links.BridgeInUse)
}

// removeFresh deletes the link name a failed ADD made on bridge br (the
// bridge itself, or a VLAN's gateway pair) unless inUse says the bridge is
// used, or a host veth of ours made after the bridge is on no bridge.
func (d *Deps) removeFresh(name string, br link.Bridge, inUse func(bridge string) (bool, error)) {
	if busy, err := inUse(br.Name); err != nil || busy {
		return
	}
	if pending, err := d.Links.HostVethPending(br.Index); err != nil || pending {
		return
	}
	_ = d.Links.DelLink(name)
}
