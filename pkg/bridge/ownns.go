package bridge

import (
	"fmt"

	"github.com/containernetworking/cni/pkg/types"

	"github.com/flatcni/plugins/pkg/bridge/early"
	"github.com/flatcni/plugins/pkg/rtnl"
)

// refuseOwnNetns fails with skel's error when netns is the plugin's own
// network namespace (when package early took the check over from skel). A path that cannot be read is left to the caller.
func refuseOwnNetns(netns string) error {
	if !early.OwnNetnsCheck() || netns == "" {
		return nil
	}
	if own, err := rtnl.IsOwnNetNS(netns); err == nil && own {
		return types.NewError(types.ErrInvalidNetNS, fmt.Sprintf("CNI_NETNS %q: plugin's netns and netns from CNI_NETNS should not be the same", netns), "")
	}
	return nil
}
