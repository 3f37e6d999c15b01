package bridge

import (
	"context"
	"fmt"
	"net"
	"net/netip"

	"github.com/containernetworking/cni/pkg/invoke"
	"github.com/containernetworking/cni/pkg/skel"
	current "github.com/containernetworking/cni/pkg/types/100"
	"github.com/containernetworking/cni/pkg/version"

	"github.com/flatcni/plugins/pkg/config"
	"github.com/flatcni/plugins/pkg/delegate"
	"github.com/flatcni/plugins/pkg/link"
)

// Check verifies the attachment against prevResult: the bridge, the host veth
// on it, the container interface with its MAC, addresses and routes; then
// asks IPAM to check its leases.
func Check(args *skel.CmdArgs) error {
	c, err := config.LoadBridge(args.StdinData, args.Args)
	if err != nil {
		return err
	}
	if c.RawPrevResult == nil {
		return config.Invalid("prevResult", "missing: CHECK needs the result of ADD")
	}
	if err := version.ParsePrevResult(&c.PluginConf); err != nil {
		return config.Invalid("prevResult", "%v", err)
	}
	prev, err := current.NewResultFromResult(c.PrevResult)
	if err != nil {
		return config.Invalid("prevResult", "%v", err)
	}

	br, err := link.BridgeByName(c.BrName)
	if err != nil {
		return err
	}
	contIdx := -1
	for i, iface := range prev.Interfaces {
		if iface.Name == args.IfName && iface.Sandbox == args.Netns {
			contIdx = i
		}
	}
	if contIdx < 0 {
		return fmt.Errorf("prevResult has no interface %q in sandbox %q", args.IfName, args.Netns)
	}
	mac, err := net.ParseMAC(prev.Interfaces[contIdx].Mac)
	if err != nil {
		return fmt.Errorf("prevResult: interface %q has MAC %q: %v", args.IfName, prev.Interfaces[contIdx].Mac, err)
	}
	hostVeth, err := link.HostPeer(args.Netns, args.IfName)
	if err != nil {
		return err
	}
	if err := link.CheckHostVeth(br, hostVeth, nil); err != nil {
		return err
	}

	var addrs []netip.Prefix
	gw := map[bool]netip.Addr{}
	for _, ipc := range prev.IPs {
		if ipc.Interface != nil && *ipc.Interface != contIdx {
			continue
		}
		p, ok := prefixOf(ipc.Address)
		if !ok {
			return fmt.Errorf("prevResult: invalid address %v", ipc.Address)
		}
		addrs = append(addrs, p)
		if g, ok := netip.AddrFromSlice(ipc.Gateway); ok && !gw[p.Addr().Is4()].IsValid() {
			gw[p.Addr().Is4()] = g.Unmap()
		}
	}
	var routes []link.Route
	for _, r := range prev.Routes {
		rt, ok := containerRoute(r, gw)
		if !ok {
			return fmt.Errorf("prevResult: invalid route %v", r.Dst)
		}
		routes = append(routes, rt)
	}
	if err := link.CheckContainer(args.Netns, args.IfName, mac, addrs, routes); err != nil {
		return err
	}
	if c.IsLayer3() {
		if err := invoke.DelegateCheck(context.Background(), c.IPAM.Type, args.StdinData, &delegate.Exec{}); err != nil {
			return ipamError(c, "CHECK", err)
		}
	}
	return nil
}
