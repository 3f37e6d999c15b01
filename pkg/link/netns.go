package link

import (
	"errors"
	"fmt"

	"github.com/containernetworking/plugins/pkg/ns"
	"golang.org/x/sys/unix"
)

// ErrNetNSGone is matched (with errors.Is) when a container netns path does
// not exist any more.
var ErrNetNSGone = errors.New("network namespace does not exist")

// ErrNotNetNS is matched (with errors.Is) when a netns path exists but cannot
// be opened as a network namespace.
var ErrNotNetNS = errors.New("not a usable network namespace")

// getNS opens the netns at path, telling a missing path from one that is not
// a network namespace.
func getNS(path string) (ns.NetNS, error) {
	target, err := ns.GetNS(path)
	if err != nil {
		var gone ns.NSPathNotExistErr
		var notNS ns.NSPathNotNSErr
		switch {
		case errors.As(err, &gone):
			return nil, fmt.Errorf("open netns %q: %w", path, ErrNetNSGone)
		case errors.As(err, &notNS):
			return nil, fmt.Errorf("open netns %q: %w: %w", path, ErrNotNetNS, err)
		}
		// A namespace that cannot be opened (EACCES, EMFILE) is no answer.
		return nil, fmt.Errorf("open netns %q: %w", path, err)
	}
	// ns.GetNS takes any file of procfs or nsfs: a mount namespace, or
	// /proc/<pid>/status, would only fail at setns, after the node changed.
	if typ, err := unix.IoctlRetInt(int(target.Fd()), nsGetNSType); err != nil || typ != unix.CLONE_NEWNET {
		target.Close()
		return nil, fmt.Errorf("open netns %q: %w: not a network namespace", path, ErrNotNetNS)
	}
	return target, nil
}

// nsGetNSType is ioctl_ns(2)'s NS_GET_NSTYPE: the kind of a namespace file.
const nsGetNSType = 0xb703

// inNetNS runs fn on a locked OS thread inside the netns at path (ns.Do).
// The node namespace (the caller's) is passed to fn so it can hop back.
func inNetNS(path string, fn func(node ns.NetNS) error) error {
	target, err := getNS(path)
	if err != nil {
		return err
	}
	defer target.Close()
	return target.Do(fn)
}

// withNetNSHandle calls fn with a handle on the netns at path, open for the
// call.
func withNetNSHandle(path string, fn func(target ns.NetNS) error) error {
	target, err := getNS(path)
	if err != nil {
		return err
	}
	defer target.Close()
	return fn(target)
}
