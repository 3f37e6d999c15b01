package hostlocal

import (
	"fmt"

	"github.com/containernetworking/cni/pkg/skel"
	"github.com/containernetworking/cni/pkg/types"

	"github.com/flatcni/plugins/pkg/config"
	"github.com/flatcni/plugins/pkg/ipam/disk"
)

// Status succeeds when the lease store is writable and every range set has a
// free address; otherwise error 50 ("plugin not available") naming the cause.
func Status(args *skel.CmdArgs) error {
	c, err := config.LoadIPAM(args.StdinData, args.Args)
	if err != nil {
		return err
	}
	unavailable := func(format string, a ...any) error {
		return types.NewError(config.ErrPluginNotAvailable, fmt.Sprintf("network %q: ", c.Network)+fmt.Sprintf(format, a...), "")
	}
	s, err := disk.Open(c.DataDir, c.Network)
	if err != nil {
		return unavailable("lease store not usable: %v", err)
	}
	defer s.Close()
	if err := s.Lock(); err != nil {
		return unavailable("%v", err)
	}
	werr := s.CheckWritable()
	if werr == nil {
		werr = s.CheckLastReserved(len(c.Ranges))
	}
	leases, err := s.All()
	s.Unlock()
	if werr != nil {
		return unavailable("lease store %s not writable: %v", s.Dir(), werr)
	}
	if err != nil {
		return unavailable("%v", err)
	}
	used := make([]uint64, len(c.Ranges))
	loc := c.Locator()
	for _, l := range leases {
		if i, r := loc.Find(l.Addr); i >= 0 && l.Addr != r.Gateway {
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
