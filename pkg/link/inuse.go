package link

import (
	"errors"
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
