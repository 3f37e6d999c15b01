package link

import (
	"errors"
	"fmt"
	"syscall"

	"github.com/vishvananda/netlink"
)

// BridgeInUse reports whether the bridge has at least one attached port with
// carrier: a Linux bridge has carrier exactly when one of its ports is up and
// forwarding. One netlink request, whatever the number of ports. A missing
// bridge is not in use.
func BridgeInUse(name string) (bool, error) {
	br, err := bridgeLink(name)
	if errors.Is(err, ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	return br.Attrs().RawFlags&rawLowerUp != 0, nil
}

// rawLowerUp is IFF_LOWER_UP (carrier) in a link's raw flags.
const rawLowerUp = 1 << 16

// DelLinkWithAlias deletes the named link only when its alias is alias (it
// belongs to the caller's attachment). A missing link is not an error.
func DelLinkWithAlias(name, alias string) error {
	l, err := linkByName(name)
	if err != nil {
		if isNotFound(err) {
			return nil
		}
		return fmt.Errorf("look up %q: %w", name, err)
	}
	if l.Attrs().Alias != alias {
		return nil
	}
	if err := netlink.LinkDel(l); err != nil && !errors.Is(err, syscall.ENODEV) {
		return fmt.Errorf("delete %q: %w", name, err)
	}
	return nil
}
