package link

import (
	"errors"

	"github.com/vishvananda/netlink"
)

// ErrNotFound is matched (with errors.Is) by errors reporting that a link
// the caller named does not exist.
var ErrNotFound = errors.New("not found")

// isNotFound reports whether err is netlink's "no such link" error.
func isNotFound(err error) bool {
	var lnf netlink.LinkNotFoundError
	return errors.As(err, &lnf)
}
