package link

import (
	"errors"
	"fmt"

	"github.com/vishvananda/netlink"
)

// ErrNotFound is matched (with errors.Is) by errors reporting that a link
// the caller named does not exist.
var ErrNotFound = errors.New("not found")

// ErrNotBridge is returned when a link that should be a bridge has the
// bridge's name but is of another kind.
var ErrNotBridge = errors.New("exists and is not a bridge")

// ErrIfNameTaken is matched (with errors.Is) by the error of an interface
// name that already exists in the container netns (CheckIfNameFree,
// SetupVeth).
var ErrIfNameTaken = errors.New("interface name taken")

// IfNameTaken is the error of ifName existing in netnsPath already.
func IfNameTaken(netnsPath, ifName string) error {
	return &ifNameTakenError{netns: netnsPath, ifName: ifName}
}

type ifNameTakenError struct{ netns, ifName string }

func (e *ifNameTakenError) Error() string {
	return fmt.Sprintf("interface %q already exists in netns %q", e.ifName, e.netns)
}

func (e *ifNameTakenError) Is(target error) bool { return target == ErrIfNameTaken }

// isNotFound reports whether err is netlink's "no such link" error.
func isNotFound(err error) bool {
	var lnf netlink.LinkNotFoundError
	return errors.As(err, &lnf)
}
