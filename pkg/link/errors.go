package link

import (
	"errors"

	"github.com/vishvananda/netlink"
)

// ErrNotFound is matched (with errors.Is) by errors reporting that a link
// the caller named does not exist.
var ErrNotFound = errors.New("not found")

// ErrNotBridge is returned when a link that should be a bridge has the
// bridge's name but is of another kind.
var ErrNotBridge = errors.New("exists and is not a bridge")

// isNotFound reports whether err is netlink's "no such link" error.
func isNotFound(err error) bool {
	var lnf netlink.LinkNotFoundError
	return errors.As(err, &lnf)
}
