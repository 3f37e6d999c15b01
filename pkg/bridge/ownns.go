package bridge

import (
	"fmt"

	"github.com/containernetworking/cni/pkg/types"

	"github.com/flatcni/plugins/pkg/bridge/early"
)

// refuseOwnNetns fails with skel's error when netns is the plugin's own
// network namespace (see early.RefusesNetns).
func refuseOwnNetns(netns string) error {
	if early.RefusesNetns(netns) {
		return types.NewError(types.ErrInvalidNetNS, fmt.Sprintf("CNI_NETNS %q: plugin's netns and netns from CNI_NETNS should not be the same", netns), "")
	}
	return nil
}
