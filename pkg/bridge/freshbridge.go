package bridge

// removeFreshBridge deletes the bridge a failed ADD created, when no port is
// on it (another ADD of the network may have attached one meanwhile): the
// node is left as it was. Its addresses go with it.
func (d *Deps) removeFreshBridge(name string) {
	if inUse, err := d.Links.BridgeInUse(name); err == nil && !inUse {
		_ = d.Links.DelLink(name)
	}
}
