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
	if inUse, err := d.Links.BridgeInUse(br.Name); err != nil || inUse {
		return
	}
	if pending, err := d.Links.HostVethPending(br.Index); err != nil || pending {
		return
	}
	_ = d.Links.DelLink(br.Name)
}
