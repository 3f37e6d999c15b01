package bridge

import (
	"errors"

	"github.com/flatcni/plugins/pkg/link"
)

// bridgeMissing reports whether the bridge does not exist yet: an ADD that
// then makes it and fails removes it again (removeFreshBridge).
func (d *Deps) bridgeMissing(name string) bool {
	_, err := d.Links.BridgeByName(name)
	return errors.Is(err, link.ErrNotFound)
}

// removeFreshBridge deletes the bridge a failed ADD created, when no port is
// on it (another ADD of the network may have attached one meanwhile): the
// node is left as it was. Its addresses go with it.
func (d *Deps) removeFreshBridge(name string) {
	if inUse, err := d.Links.BridgeInUse(name); err == nil && !inUse {
		_ = d.Links.DelLink(name)
	}
}
