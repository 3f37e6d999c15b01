package hostlocal

import (
	"encoding/json"
	"fmt"
	"net/netip"

	"github.com/containernetworking/cni/pkg/skel"
	"github.com/containernetworking/cni/pkg/types"
	current "github.com/containernetworking/cni/pkg/types/100"
	"github.com/containernetworking/cni/pkg/version"

	"github.com/flatcni/plugins/pkg/config"
	"github.com/flatcni/plugins/pkg/ipam"
)

// Check verifies that the attachment holds leases and that they match the
// addresses of prevResult that fall in this network's ranges.
func Check(args *skel.CmdArgs) error {
	c, err := config.LoadIPAM(args.StdinData, args.Args)
	if err != nil {
		return err
	}
	want, err := prevAddrs(args.StdinData, c)
	if err != nil {
		return err
	}
	a := ipam.Attachment{ContainerID: args.ContainerID, IfName: args.IfName}
	held, err := withStore(c, storeUse{}, func(s ipam.Store) ([]netip.Addr, error) { return s.Leases(a) })
	if err != nil {
		return err
	}
	if len(held) == 0 {
		return fmt.Errorf("host-local: network %q: no lease held by %s", c.Network, a)
	}
	have := map[netip.Addr]bool{}
	for _, h := range held {
		have[h] = true
	}
	for _, w := range want {
		if !have[w] {
			return fmt.Errorf("host-local: network %q: prevResult address %s is not leased to %s (it holds %v)", c.Network, w, a, held)
		}
	}
	return nil
}

// prevAddrs returns prevResult's addresses inside the configured ranges.
func prevAddrs(stdin []byte, c *config.IPAM) ([]netip.Addr, error) {
	var conf types.PluginConf
	if err := json.Unmarshal(stdin, &conf); err != nil {
		return nil, types.NewError(types.ErrDecodingFailure, "cannot decode network configuration: "+err.Error(), "")
	}
	if conf.RawPrevResult == nil {
		return nil, nil
	}
	if err := version.ParsePrevResult(&conf); err != nil {
		return nil, config.Invalid("prevResult", "%v", err)
	}
	res, err := current.NewResultFromResult(conf.PrevResult)
	if err != nil {
		return nil, config.Invalid("prevResult", "%v", err)
	}
	var out []netip.Addr
	loc := c.Locator()
	for _, ipc := range res.IPs {
		addr, ok := netip.AddrFromSlice(ipc.Address.IP)
		if !ok {
			continue
		}
		if i, _ := loc.Find(addr); i >= 0 {
			out = append(out, addr.Unmap())
		}
	}
	return out, nil
}
