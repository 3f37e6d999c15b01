package l2

import (
	"fmt"

	"github.com/vishvananda/netlink"
)

// SetIsolated turns the isolated flag of the bridge port hostVeth on or off
// (the portIsolation key). Isolated ports of a bridge cannot exchange frames
// with each other, only with non-isolated ports and the bridge itself.
func SetIsolated(hostVeth string, on bool) error {
	link, err := linkByName(hostVeth)
	if err != nil {
		return fmt.Errorf("set isolated=%v on bridge port %q: %w", on, hostVeth, err)
	}
	if err := netlink.LinkSetIsolated(link, on); err != nil {
		return fmt.Errorf("set isolated=%v on bridge port %q: %w", on, hostVeth, err)
	}
	return nil
}
