package hostlocal

import (
	"fmt"

	"github.com/containernetworking/cni/pkg/skel"
	"github.com/containernetworking/cni/pkg/types"

	"github.com/flatcni/plugins/pkg/config"
	"github.com/flatcni/plugins/pkg/ipam/disk"
)

// Status succeeds when a lease could be written now and every range set has
// a free address; otherwise error 50 ("plugin not available") naming the
// cause. It changes nothing on the node (disk.Probe): no lease directory,
// lock or index is made, no file written, no lock taken.
func Status(args *skel.CmdArgs) error {
	c, err := config.LoadIPAM(args.StdinData, args.Args)
	if err != nil {
		return err
	}
	unavailable := func(format string, a ...any) error {
		return types.NewError(config.ErrPluginNotAvailable, fmt.Sprintf("network %q: ", c.Network)+fmt.Sprintf(format, a...), "")
	}
	leased, err := disk.Probe(c.DataDir, c.Network, len(c.Ranges))
	if err != nil {
		return unavailable("lease store not usable: %v", err)
	}
	used := make([]uint64, len(c.Ranges))
	loc := c.Locator()
	for _, addr := range leased {
		if i, r := loc.Find(addr); i >= 0 && addr != r.Gateway {
			used[i]++
		}
	}
	for i, set := range c.Ranges {
		if used := used[i]; set.Size(used+1) <= used {
			return unavailable("range set %d (%s) is exhausted: all %d addresses are leased", i, set.Describe(), used)
		}
	}
	return nil
}
