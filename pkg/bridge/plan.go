package bridge

import (
	"fmt"
	"net"
	"net/netip"

	"github.com/containernetworking/cni/pkg/skel"
	"github.com/containernetworking/cni/pkg/types"
	current "github.com/containernetworking/cni/pkg/types/100"

	"github.com/flatcni/plugins/pkg/config"
	"github.com/flatcni/plugins/pkg/link"
)

// plan is what ADD derives from the IPAM result: addresses and routes for the
// container, gateway addresses for the bridge.
type plan struct {
	addrs    []netip.Prefix
	routes   []link.Route
	gateways []netip.Prefix // gateway address with the subnet's length, for the bridge
	v4, v6   bool
}

// ipv6MinMTU is IPv6's minimum link MTU (RFC 8200).
const ipv6MinMTU = 1280

// checkMTUOfRanges refuses, before anything changes, an mtu below IPv6's
// minimum on a network whose in-process host-local has an IPv6 range set
// (makePlan would only refuse it once the address is leased). Any other
// IPAM plugin is known by its result alone. Its configuration is read
// again only for such an mtu; errors in it are IPAM's to report.
func checkMTUOfRanges(c *config.Bridge, args *skel.CmdArgs) error {
	if c.MTU <= 0 || c.MTU >= ipv6MinMTU {
		return nil
	}
	ic, err := config.LoadIPAM(args.StdinData, args.Args)
	if err != nil {
		return nil
	}
	for i, set := range ic.Ranges {
		if set.Len() > 0 && !set.Is4() {
			return config.Invalid("mtu", "%d is below IPv6's minimum of %d, and ipam range set %d (%s) is IPv6", c.MTU, ipv6MinMTU, i, set.Describe())
		}
	}
	return nil
}

// makePlan fills in gateways (first address of the subnet when IPAM gave none
// and the bridge is the gateway) and default routes (isDefaultGateway), and
// points every IP at the container interface (index 2 in the result).
func makePlan(c *config.Bridge, res *current.Result) (plan, error) {
	var p plan
	defaultFound := map[bool]bool{}
	for _, r := range res.Routes {
		if d, ok := prefixOf(r.Dst); ok && d.Bits() == 0 && r.GW != nil {
			defaultFound[d.Addr().Is4()] = true
		}
	}
	gw := map[bool]netip.Addr{}
	for _, ipc := range res.IPs {
		addr, ok := prefixOf(ipc.Address)
		if !ok {
			return p, fmt.Errorf("IPAM plugin %q returned an invalid address %v", c.IPAM.Type, ipc.Address)
		}
		is4 := addr.Addr().Is4()
		ipc.Interface = current.Int(2)
		if ipc.Gateway == nil && c.IsGW {
			ipc.Gateway = net.IP(addr.Masked().Addr().Next().AsSlice())
		}
		g, _ := netip.AddrFromSlice(ipc.Gateway)
		g = g.Unmap()
		if g.IsValid() && !gw[is4].IsValid() {
			gw[is4] = g
		}
		if c.IsDefaultGW && !defaultFound[is4] && g.IsValid() {
			dst := net.IPNet{IP: net.IPv4zero.To4(), Mask: net.CIDRMask(0, 32)}
			if !is4 {
				dst = net.IPNet{IP: net.IPv6zero, Mask: net.CIDRMask(0, 128)}
			}
			res.Routes = append(res.Routes, &types.Route{Dst: dst, GW: ipc.Gateway})
			defaultFound[is4] = true
		}
		if c.IsGW && g.IsValid() {
			p.gateways = append(p.gateways, netip.PrefixFrom(g, addr.Bits()))
		}
		p.addrs = append(p.addrs, addr)
		p.v4, p.v6 = p.v4 || is4, p.v6 || !is4
	}
	if p.v6 && c.MTU > 0 && c.MTU < ipv6MinMTU {
		// The kernel turns IPv6 off on a link below it: the address
		// could not be added ("disable_ipv6: no such file").
		return p, config.Invalid("mtu", "%d is below IPv6's minimum of %d, and IPAM returned an IPv6 address", c.MTU, ipv6MinMTU)
	}
	for _, r := range res.Routes {
		rt, ok := containerRoute(r, gw)
		if !ok {
			return p, fmt.Errorf("IPAM plugin %q returned an invalid route %v", c.IPAM.Type, r.Dst)
		}
		p.routes = append(p.routes, rt)
	}
	return p, nil
}

// containerRoute converts a result's route for the container interface. As
// the reference plugin does, a route without gw goes via its family's
// gateway (familyGW, keyed by "is IPv4"), and its priority, table and scope
// are kept (MTU and advmss are not applied).
func containerRoute(r *types.Route, familyGW map[bool]netip.Addr) (link.Route, bool) {
	dst, ok := prefixOf(r.Dst)
	if !ok {
		return link.Route{}, false
	}
	rt := link.Route{Dst: dst, GW: familyGW[dst.Addr().Is4()], Priority: r.Priority}
	if g, ok := netip.AddrFromSlice(r.GW); ok {
		rt.GW = g.Unmap()
	}
	if r.Table != nil {
		rt.Table = *r.Table
	}
	if r.Scope != nil {
		rt.Scope = *r.Scope
	}
	return rt, true
}

func prefixOf(n net.IPNet) (netip.Prefix, bool) {
	a, ok := netip.AddrFromSlice(n.IP)
	if !ok {
		return netip.Prefix{}, false
	}
	ones, bits := n.Mask.Size()
	a = a.Unmap()
	if bits == 128 && a.Is4() {
		ones -= 96
	}
	if bits == 0 {
		return netip.Prefix{}, false
	}
	return netip.PrefixFrom(a, ones), true
}

// subnets returns the masked subnets of the addresses (for firewall rules).
// addrsOf returns the addresses of prefixes.
func addrsOf(prefixes []netip.Prefix) []netip.Addr {
	out := make([]netip.Addr, len(prefixes))
	for i, p := range prefixes {
		out[i] = p.Addr()
	}
	return out
}

func subnets(addrs []netip.Prefix) []netip.Prefix {
	var out []netip.Prefix
	seen := map[netip.Prefix]bool{}
	for _, a := range addrs {
		m := a.Masked()
		if !seen[m] {
			seen[m] = true
			out = append(out, m)
		}
	}
	return out
}
