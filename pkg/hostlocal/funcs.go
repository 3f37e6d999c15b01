package hostlocal

import (
	"net/netip"
	"path/filepath"

	"github.com/containernetworking/cni/pkg/skel"

	"github.com/flatcni/plugins/pkg/config"
	"github.com/flatcni/plugins/pkg/ipam/disk"
)

// Funcs returns the plugin's verbs for skel.PluginMainFuncs.
func Funcs() skel.CNIFuncs {
	return skel.CNIFuncs{Add: Add, Del: Del, Check: Check, GC: GC, Status: Status}
}

// Subnets returns the subnets of the configured range sets (after
// runtimeConfig.ipRanges and CNI_ARGS, as ADD reads them), masked, each once.
func Subnets(args *skel.CmdArgs) ([]netip.Prefix, error) {
	c, err := config.LoadIPAM(args.StdinData, args.Args)
	if err != nil {
		return nil, err
	}
	return subnets(c), nil
}

// subnets returns the subnets of c's range sets, masked, each once.
func subnets(c *config.IPAM) []netip.Prefix {
	var out []netip.Prefix
	seen := map[netip.Prefix]bool{}
	for _, set := range c.Ranges {
		for _, r := range set.All() {
			if p := r.Subnet; !seen[p] {
				seen[p] = true
				out = append(out, p)
			}
		}
	}
	return out
}

// LeasedSubnets returns those of prefixes that hold a lease of the
// network (see disk.LeasedIn): the bridge keeps masquerading the subnet of
// an old gateway address while containers attached in it are there.
func LeasedSubnets(args *skel.CmdArgs, prefixes []netip.Prefix) ([]netip.Prefix, error) {
	c, err := config.LoadIPAM(args.StdinData, args.Args)
	if err != nil {
		return nil, err
	}
	return disk.LeasedIn(leaseDir(c), prefixes)
}

// HoldsLeases reports whether the network holds a lease: whether any
// attachment is left, for the bridge's last DEL (its bridge may carry
// another network's containers). It reads the network's name and dataDir
// only (as DEL), and the lease directory's entries until the first lease.
// A missing lease directory answers nothing (an error): no ADD of this
// configuration made it, so the network's containers, if any, were added
// under another (a dataDir edited since, another IPAM plugin).
func HoldsLeases(args *skel.CmdArgs) (bool, error) {
	c, err := config.LoadIPAMForTeardown(args.StdinData)
	if err != nil {
		return false, err
	}
	return disk.AnyLease(leaseDir(c))
}

// leaseDir is the network's lease directory, <dataDir>/<network>.
func leaseDir(c *config.IPAM) string {
	dir := c.DataDir
	if dir == "" {
		dir = disk.DefaultDataDir
	}
	return filepath.Join(dir, c.Network)
}
