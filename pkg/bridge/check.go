package bridge

import (
	"fmt"
	"net"
	"net/netip"
	"slices"

	"github.com/containernetworking/cni/pkg/skel"
	current "github.com/containernetworking/cni/pkg/types/100"
	"github.com/containernetworking/cni/pkg/version"

	"github.com/flatcni/plugins/pkg/config"
	"github.com/flatcni/plugins/pkg/link"
)

// Check verifies the attachment against prevResult and the configuration,
// as the reference plugin does: the bridge (listed in prevResult, in
// promiscuous mode exactly when promiscMode says so, with prevResult's MAC
// when ADD pinned it: see bridgeMACPinned), the host veth (the container
// interface's peer, listed in prevResult, with its MAC there, a port of the
// bridge), the container interface with its MAC, addresses (up, each with
// its subnet route) and routes; then asks IPAM to check its leases. Netlink
// only, besides IPAM.
func (d *Deps) Check(args *skel.CmdArgs) error {
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

	brIface, err := nodeInterface(prev, "bridge", c.BrName)
	if err != nil {
		return err
	}
	var brMAC net.HardwareAddr
	if bridgeMACPinned(c) {
		if brMAC, err = resultMAC(brIface); err != nil {
			return err
		}
	}
	br, err := d.Links.BridgeByName(c.BrName)
	if err != nil {
		return err
	}
	if err := d.Links.CheckBridge(br, c.PromiscMode, brMAC); err != nil {
		return err
	}

	contIdx := -1
	for i, iface := range prev.Interfaces {
		if iface != nil && iface.Name == args.IfName && iface.Sandbox == args.Netns {
			contIdx = i
		}
	}
	if contIdx < 0 {
		return fmt.Errorf("prevResult has no interface %q in sandbox %q", args.IfName, args.Netns)
	}
	mac, err := resultMAC(prev.Interfaces[contIdx]) // optional (the spec's "mac")
	if err != nil {
		return err
	}
	hostVeth, err := d.Links.HostPeer(args.Netns, args.IfName)
	if err != nil {
		return netnsError(args, err)
	}
	hostIface, err := nodeInterface(prev, "host veth", hostVeth)
	if err != nil {
		return fmt.Errorf("%w, the peer of %s in %s", err, args.IfName, args.Netns)
	}
	hostMAC, err := resultMAC(hostIface)
	if err != nil {
		return err
	}
	if err := d.Links.CheckHostVeth(br, hostVeth, hostMAC); err != nil {
		return err
	}

	var addrs, gateways []netip.Prefix
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
		g, ok := netip.AddrFromSlice(ipc.Gateway)
		if !ok {
			continue
		}
		if !gw[p.Addr().Is4()].IsValid() {
			gw[p.Addr().Is4()] = g.Unmap()
		}
		if gp := netip.PrefixFrom(g.Unmap(), p.Bits()); c.IsGW && !slices.Contains(gateways, gp) {
			gateways = append(gateways, gp)
		}
	}
	// The gateway addresses ADD put on the bridge (isGateway); a VLAN
	// network's are on its <bridge>.<vlan> veth, not checked here.
	if c.IsLayer3() && c.Vlan == 0 {
		if err := d.Links.CheckGatewayAddrs(br, gateways); err != nil {
			return err
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
	if err := d.Links.CheckContainer(args.Netns, args.IfName, mac, addrs, routes); err != nil {
		return netnsError(args, err)
	}
	if pp, err := d.loadPorts(c, args); err != nil {
		return err
	} else if err := pp.check(addrs); err != nil {
		return err
	}
	if c.IsLayer3() {
		return d.runIPAM(c, args, "CHECK", IPAMPlugin.Check)
	}
	return nil
}

// bridgeMACPinned reports whether ADD pinned the bridge's MAC, so that CHECK
// can hold it to prevResult's. The kernel gives a bridge whose MAC was never
// set the lowest MAC of its ports, so its MAC changes as containers come and
// go. ADD sets the bridge's MAC (to itself, as the reference does) when it
// puts a gateway address on it: isGateway (implied by isDefaultGateway) with
// IPAM, and no vlan (with a vlan the gateway is the <bridge>.<vlan> veth).
// The reference compares the bridge's MAC in every case.
func bridgeMACPinned(c *config.Bridge) bool {
	return c.IsGW && c.IsLayer3() && c.Vlan == 0
}

// nodeInterface returns prevResult's interface named name with no sandbox,
// the entry of a link on the node; what says which link, for the error.
func nodeInterface(prev *current.Result, what, name string) (*current.Interface, error) {
	sandbox := ""
	for _, iface := range prev.Interfaces {
		if iface == nil || iface.Name != name {
			continue
		}
		if iface.Sandbox == "" {
			return iface, nil
		}
		sandbox = iface.Sandbox
	}
	if sandbox != "" {
		return nil, fmt.Errorf("prevResult does not list %s %q on the node, only in sandbox %q", what, name, sandbox)
	}
	return nil, fmt.Errorf("prevResult does not list %s %q", what, name)
}

// resultMAC parses a prevResult interface's MAC; nil when it has none (then
// there is nothing to compare, as with the reference).
func resultMAC(iface *current.Interface) (net.HardwareAddr, error) {
	if iface.Mac == "" {
		return nil, nil
	}
	mac, err := net.ParseMAC(iface.Mac)
	if err != nil {
		return nil, fmt.Errorf("prevResult: interface %q has MAC %q: %v", iface.Name, iface.Mac, err)
	}
	return mac, nil
}
