package link

import (
	"errors"
	"fmt"

	"github.com/containernetworking/plugins/pkg/ns"
)

// ErrNetNSGone is matched (with errors.Is) when a container netns path does
// not exist any more.
var ErrNetNSGone = errors.New("network namespace does not exist")

// inNetNS runs fn on a locked OS thread inside the netns at path. The node
// namespace (the caller's) is passed to fn so it can hop back.
func inNetNS(path string, fn func(node ns.NetNS) error) error {
	target, err := ns.GetNS(path)
	if err != nil {
		var gone ns.NSPathNotExistErr
		if errors.As(err, &gone) {
			return fmt.Errorf("open netns %q: %w", path, ErrNetNSGone)
		}
		return fmt.Errorf("open netns %q: %w", path, err)
	}
	defer target.Close()
	return target.Do(fn)
}
