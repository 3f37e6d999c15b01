package bridge

import (
	"fmt"
	"os"
	"strings"

	"github.com/containernetworking/cni/pkg/types"

	"github.com/flatcni/plugins/pkg/link"
)

// checkOwnNetns is set by TakeOverNetnsCheck.
var checkOwnNetns bool

// TakeOverNetnsCheck makes ADD and DEL refuse a CNI_NETNS that is the
// plugin's own network namespace before they change anything. skel makes the
// same check only after ADD or DEL has run (it cannot undo them), opening the
// namespace once more on the way out; setting CNI_NETNS_OVERRIDE turns that
// late check off, here and in the IPAM plugin, which inherits the
// environment. A runtime that sets CNI_NETNS_OVERRIDE itself turns both
// checks off, as with the reference plugin. Call it first thing in main.
func TakeOverNetnsCheck() {
	if v := os.Getenv("CNI_NETNS_OVERRIDE"); v == "1" || strings.EqualFold(v, "true") {
		return
	}
	checkOwnNetns = true
	_ = os.Setenv("CNI_NETNS_OVERRIDE", "1")
}

// refuseOwnNetns fails with skel's error when netns is the plugin's own
// network namespace. A path that cannot be read is left to the caller.
func refuseOwnNetns(netns string) error {
	if !checkOwnNetns || netns == "" {
		return nil
	}
	if own, err := link.IsOwnNetNS(netns); err == nil && own {
		return types.NewError(types.ErrInvalidNetNS, fmt.Sprintf("CNI_NETNS %q: plugin's netns and netns from CNI_NETNS should not be the same", netns), "")
	}
	return nil
}
