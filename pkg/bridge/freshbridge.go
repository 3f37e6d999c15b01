package bridge

// removeFreshBridge deletes the bridge a failed ADD created, when no port is
// on it and no host veth of ours is on no bridge: the node is left as it
// was, its addresses go with it. Another ADD of the network, started since,
// may have attached its port meanwhile, or be about to: with IPAM its host
// end joins the bridge only once the container end is configured
// (vethConfig, DeferAttach), and would find the bridge gone. Any host veth
// of ours not yet attached, whatever its bridge, keeps it (a dump of the
// node's veths, on this failure path only).
func (d *Deps) removeFreshBridge(name string) {
	if inUse, err := d.Links.BridgeInUse(name); err != nil || inUse {
		return
	}
	if pending, err := d.Links.HostVethPending(); err != nil || pending {
		return
	}
	_ = d.Links.DelLink(name)
}
