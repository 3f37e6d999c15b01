package bridge

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"

	"github.com/containernetworking/cni/pkg/skel"
	"github.com/containernetworking/cni/pkg/types"
	current "github.com/containernetworking/cni/pkg/types/100"

	"github.com/flatcni/plugins/pkg/bridge/hostveth"
	"github.com/flatcni/plugins/pkg/config"
	"github.com/flatcni/plugins/pkg/firewall"
	"github.com/flatcni/plugins/pkg/l2"
	"github.com/flatcni/plugins/pkg/link"
)

// Add attaches the container to the bridge network and returns the result
// in the configuration's cniVersion. On failure it undoes what it made for
// the attachment, and the bridge if it made it and no port is on it.
func (d *Deps) Add(args *skel.CmdArgs) (_ types.Result, err error) {
	// Validate: nothing changes on the node before this passes.
	c, err := config.LoadBridge(args.StdinData, args.Args)
	if err != nil {
		return nil, err
	}
	var ipam IPAMPlugin
	if c.IsLayer3() {
		if ipam, err = d.IPAM.Plugin(c, args.Path); err != nil {
			return nil, err
		}
		if ipam.Local() {
			if err := checkMTUOfRanges(c, args); err != nil {
				return nil, err
			}
		}
	}
	pp, err := d.loadPorts(c, args)
	if err != nil {
		return nil, err
	}
	if needsFirewall(c) || len(pp.maps) > 0 {
		// A name no rule can carry (the specification bounds none).
		if err := firewall.ValidateName(c.Name); err != nil {
			return nil, config.Invalid("name", "%v: ipMasq, isolation and published ports need rules that carry it", err)
		}
	}
	found, err := d.validateNode(c, args)
	if err != nil {
		return nil, err
	}
	if err := pp.precheck(); err != nil {
		return nil, err
	}

	var undo undoList
	defer func() {
		if err != nil {
			undo.run()
		}
	}()
	// The network's rules stay while another port is in use: pushed first,
	// this runs last, once the veth is gone.
	fwEnsured := false
	undo.push(func() {
		if fwEnsured {
			_, _ = d.removeFirewallIfUnused(c, args)
		}
	})

	// IPAM of our own (in-process host-local) starts now and runs beside the
	// bridge and the veth: it only writes its lease files, and their fsyncs
	// then overlap the kernel's work. Its undo runs after the veth's. Any
	// other plugin starts at wait, once the container's interface exists,
	// and is undone before the veth goes, as before this overlap.
	var ia *ipamAdd
	if c.IsLayer3() {
		ia = startIPAMAdd(ipam, args)
		if ipam.Local() {
			undo.push(func() { ia.undo(d.ifNameTaken(args)) })
		}
	}

	// The bridge. One made by this ADD goes again if the ADD fails and no
	// port is on it (pushed before the veth's undo: runs after it).
	br, err := d.ensureBridge(c, found, &undo)
	if err != nil {
		return nil, err // names the bridge
	}

	// The veth pair.
	vcfg := vethConfig(c, args)
	vcfg.Bridge = br
	vcfg.HairpinMode = vcfg.HairpinMode || pp.hairpin()
	host, cont, err := d.Links.SetupVeth(vcfg)
	if err != nil {
		return nil, err
	}
	gwMade := "" // a VLAN gateway pair this ADD made, on gwBridge
	var gwBridge link.Bridge
	undo.push(func() {
		_, _ = d.Links.DelVeth(args.Netns, args.IfName)
		_ = d.Links.DelLink(host.Name)
		if gwMade != "" {
			d.removeFreshGateway(gwBridge, gwMade)
		}
	})
	if !vcfg.DeferAttach {
		if err := d.finishPort(c, host, &vcfg, &undo); err != nil {
			return nil, err
		}
	}

	// IPAM.
	res := &current.Result{CNIVersion: current.ImplementedSpecVersion}
	var fwSubnets []netip.Prefix
	if c.IsLayer3() {
		var r types.Result
		r, fwSubnets, err = ia.wait()
		if err != nil {
			return nil, ipamError(c, "ADD", err)
		}
		if !ipam.Local() {
			// Run once this ADD had made the interface: its leases are this ADD's.
			undo.push(func() { ia.undo(func() bool { return false }) })
		}
		if res, err = current.NewResultFromResult(r); err != nil {
			return nil, ipamError(c, "ADD", err)
		}
		if len(res.IPs) == 0 {
			return nil, ipamError(c, "ADD", errors.New("returned no addresses"))
		}
	}

	// Addresses and routes: the container's, then the gateway's.
	var p plan
	var ann Announcer // the container's addresses, told once its port is on the bridge
	// The addresses may have been another container's lately: asked for
	// by the runtime, or known to the node's neighbour table (below, on a
	// gateway bridge). Otherwise nothing is opened to announce them.
	reused := c.StaticIPs
	if c.IsLayer3() {
		dropDefaultRoutes(c, res)
		if p, err = makePlan(c, res); err != nil {
			return nil, err
		}
		mayReuse := reused || c.IsGW && len(p.gateways) > 0
		if ann, err = d.Links.ConfigureContainer(cont, p.addrs, p.routes, c.EnableDad, mayReuse); err != nil {
			return nil, err
		}
		if ann != nil {
			undo.push(ann.Close)
		}
	}
	if vcfg.DeferAttach {
		if err := d.finishPort(c, host, &vcfg, &undo); err != nil {
			return nil, err
		}
		br = vcfg.Bridge // made again if it had gone
	}
	var gwDev link.Bridge // where the gateway addresses went (for a vlan, "<bridge>.<vlan>")
	var oldGateways []netip.Prefix
	if c.IsLayer3() && c.IsGW && len(p.gateways) > 0 {
		gwBridge = br
		if gwDev, gwMade, err = d.gatewayDevice(c, br); err != nil {
			return nil, err
		}
		if oldGateways, err = d.Links.EnsureGatewayAddrs(gwDev, p.gateways, c.ForceAddress, c.EnableDad); err != nil {
			return nil, err // names the device and both addresses
		}
		if len(oldGateways) > 0 {
			// Only the network's own: another network naming the
			// bridge (its gateway beside ours) holds no lease here.
			oldGateways = ipam.Leased(args, oldGateways)
		}
		if err := d.Links.EnableForwarding(p.v4, p.v6); err != nil {
			return nil, err
		}
		// The node's entries of the container's addresses, if another
		// container had them before: now the port is on the bridge.
		reused = d.Links.ForgetNeighbours(gwDev, addrsOf(p.addrs)) || reused
	}
	if ann != nil {
		// The container's kernel said nothing of its addresses that
		// reached the bridge (its interface came up before it had them,
		// and before its port joined the bridge with DeferAttach). The
		// other containers need it when the addresses were another MAC's
		// (a container added again with its address): it is said now,
		// from the container's interface, on the bridge and in its VLAN.
		// Only then: the bridge floods it to every port, which costs
		// ~5 us a port inside this call (2.6 ms with 500 containers).
		if reused {
			ann.Announce()
		} else {
			ann.Close()
		}
	}

	// Firewall: the MAC spoof check, the network's masquerade rules (once
	// the port is on the bridge: see removeFirewallIfUnused).
	if c.MacSpoofChk {
		if err := d.Spoof.Setup(c.Name, args.ContainerID, args.IfName, host.Name, cont.MAC); err != nil {
			return nil, fmt.Errorf("macspoofchk: %w", err)
		}
		undo.push(func() { _ = d.Spoof.Teardown(c.Name, args.ContainerID, args.IfName) })
	}
	// The network's subnets, for its rules: those of the configured
	// ranges (in-process host-local), else of the container's addresses;
	// and those of the other gateway addresses on the bridge where the
	// network holds leases: a range moved to another IPv6 subnet (or a
	// family dropped from the configuration) keeps its old gateway there,
	// which the containers attached before still use (they stay
	// masqueraded, as the reference's rules of their own keep them).
	if fwSubnets == nil {
		fwSubnets = subnets(p.addrs)
	}
	fwSubnets = slices.Concat(fwSubnets, oldGateways)
	if needsFirewall(c) {
		// Undone also when Ensure fails: it may have written part of the
		// rules (iptables family by family, nftables the FORWARD accepts
		// and the shared isolation table before the network's table).
		fwEnsured = true
		if err := d.ensureFirewall(c, fwSubnets); err != nil {
			return nil, err
		}
	} else if err := d.removeUnwantedFirewall(c, false); err != nil {
		return nil, err
	}
	undo.push(func() { _ = pp.unpublish() })
	if err := pp.publish(p.addrs, fwSubnets); err != nil {
		return nil, err
	}

	// The result. The bridge's MAC follows its ports: read it once
	// everything is attached.
	if b, berr := d.Links.BridgeByName(br.Name); berr == nil {
		br = b
	}
	result := &current.Result{
		CNIVersion: current.ImplementedSpecVersion,
		Interfaces: []*current.Interface{
			{Name: br.Name, Mac: br.MAC.String()},
			{Name: host.Name, Mac: host.MAC.String()},
			{Name: cont.Name, Mac: cont.MAC.String(), Sandbox: args.Netns},
		},
		IPs:    res.IPs,
		Routes: res.Routes,
		DNS:    res.DNS,
	}
	if c.Vlan != 0 && gwDev.Name != "" {
		// As the reference: the VLAN's gateway device comes fourth.
		result.Interfaces = append(result.Interfaces, &current.Interface{Name: gwDev.Name, Mac: gwDev.MAC.String()})
	}
	if dnsSet(c.DNS) {
		result.DNS = c.DNS
	}
	return result.GetAsVersion(c.CNIVersion)
}

// undoList is ADD's one undo idiom: each step that made something pushes
// how to remove it; on failure they run last first.
type undoList []func()

func (u *undoList) push(f func()) { *u = append(*u, f) }

func (u undoList) run() {
	for i := len(u) - 1; i >= 0; i-- {
		u[i]()
	}
}

// ensureBridge makes sure the network's bridge exists (found: as
// validation found it, nil for none), with VLAN filtering when the network
// needs it, and pushes the removal of one it made onto undo.
func (d *Deps) ensureBridge(c *config.Bridge, found *link.Bridge, undo *undoList) (link.Bridge, error) {
	br, err := d.Links.EnsureBridge(link.BridgeConfig{Name: c.BrName, MTU: c.MTU, PromiscMode: c.PromiscMode, VlanFiltering: c.NeedsVlanFiltering(), DAD: c.EnableDad, Found: found})
	if br.Created {
		fresh := br
		undo.push(func() { d.removeFreshBridge(fresh) })
	}
	if err != nil {
		return br, err
	}
	if c.NeedsVlanFiltering() {
		if err := d.Links.EnableVlanFiltering(br.Name); err != nil {
			return br, err
		}
	}
	return br, nil
}

// finishPort makes the host end a port of the bridge if SetupVeth left that
// to later (DeferAttach), and gives it its VLANs. A bridge gone meanwhile
// (a failed ADD of the network removed the one it had made, before this
// ADD's host end was there to keep it: removeFreshBridge) is made again,
// once, and vcfg.Bridge set to it.
func (d *Deps) finishPort(c *config.Bridge, host link.Interface, vcfg *link.VethConfig, undo *undoList) error {
	if vcfg.DeferAttach {
		err := d.Links.AttachPort(host, *vcfg)
		if err != nil {
			cur, berr := d.Links.BridgeByName(c.BrName)
			if errors.Is(berr, link.ErrNotFound) || berr == nil && cur.Index != vcfg.Bridge.Index {
				br, eerr := d.ensureBridge(c, nil, undo)
				if eerr != nil {
					return eerr
				}
				vcfg.Bridge = br
				err = d.Links.AttachPort(host, *vcfg)
			}
		}
		if err != nil {
			return err
		}
	}
	if c.NeedsVlanFiltering() {
		return d.Links.SetPortVlans(host.Name, c.Vlan, c.TrunkVlans, c.PreserveDefaultVlan)
	}
	return nil
}

// vethConfig describes the container's veth pair.
//
// With IPAM, the host end joins the bridge only once the container end is
// configured (DeferAttach): the first IPv6 packets the container's kernel
// sends by itself when its interface comes up (a multicast listener report
// per group its addresses join, an unsolicited neighbour advertisement, a
// router solicitation) then stop at the host end instead of being flooded
// by a bridge without a multicast querier to every other container. The
// listener reports are sent at once, not two scheduler ticks after the join
// (after ADD), because the container end is in MLDv1 mode until it is
// configured (pkg/link, mld.go). The kernel repeats the reports within a
// second and the solicitation after 4 s, through the bridge by then.
// Integration tests assert this (integration/bridge_flood_test.go). Not
// deferred without IPAM (nothing to configure), with DAD (it must probe
// through the bridge) or with the container end left down (nothing is sent).
func vethConfig(c *config.Bridge, args *skel.CmdArgs) link.VethConfig {
	return link.VethConfig{
		ContainerNetNS:            args.Netns,
		IfName:                    args.IfName,
		HostName:                  hostveth.Name(args.ContainerID, args.IfName),
		HostAlias:                 hostveth.Alias(args.ContainerID, args.IfName),
		MTU:                       c.MTU,
		MAC:                       c.MAC,
		HairpinMode:               c.HairpinMode,
		PortIsolation:             portIsolated(c),
		DisableContainerInterface: c.DisableContainerInterface,
		EnableDAD:                 c.EnableDad,
		DeferAttach:               c.IsLayer3() && !c.EnableDad && !c.DisableContainerInterface,
		L2Only:                    !c.IsLayer3(),
	}
}

// validateNode checks what ADD needs from the node before anything changes.
// It returns the bridge as it found it (nil when there is none yet), for
// EnsureBridge to use rather than read again.
func (d *Deps) validateNode(c *config.Bridge, args *skel.CmdArgs) (*link.Bridge, error) {
	if err := d.refuseOwnNetns(args); err != nil {
		return nil, err
	}
	// Before IPAM: a failed ADD releases the attachment's leases, which must
	// not be those of a live attachment with the same interface.
	if err := d.Links.CheckIfNameFree(args.Netns, args.IfName); err != nil {
		return nil, netnsError(args, err)
	}
	if c.NeedsVlanFiltering() {
		ok, err := d.Links.VlanFilteringSupported()
		if err != nil {
			return nil, fmt.Errorf("vlan: probe bridge VLAN filtering: %w", err)
		}
		if !ok {
			return nil, types.NewError(types.ErrInvalidNetworkConfig, "vlan/vlanTrunk: "+l2.ErrNoVlanFiltering.Error(), "")
		}
	}
	br, err := d.Links.BridgeByName(c.BrName)
	switch {
	case errors.Is(err, link.ErrNotFound):
		return nil, nil
	case err != nil:
		return nil, config.Invalid("bridge", "%v", err)
	}
	// The attachment's host veth on the network's bridge: its container
	// end is in another netns (a container ID used again without a DEL;
	// or another ADD of it made the pair since the look above), and IPAM
	// would hand out its lease again. (The same container ID and
	// interface on another network, another bridge, is another
	// attachment.)
	name, alias := hostveth.Name(args.ContainerID, args.IfName), hostveth.Alias(args.ContainerID, args.IfName)
	if live, err := d.Links.HasPortWithAlias(br, name, alias); err != nil {
		return nil, fmt.Errorf("look up host veth %s: %w", name, err)
	} else if live {
		return nil, fmt.Errorf("attachment %s/%s is live already on bridge %q (its host veth %s; its %s is not in %q): DEL it first", args.ContainerID, args.IfName, br.Name, name, args.IfName, args.Netns)
	}
	return &br, nil
}

// ifNameTaken returns whether the attachment's interface exists in the
// container, for a failed ADD's undo, which runs after its own veth is
// gone: then another ADD of the same attachment, racing this one, made it,
// and the leases this ADD reserved first are that ADD's (its IPAM got them
// back as held).
func (d *Deps) ifNameTaken(args *skel.CmdArgs) func() bool {
	return func() bool {
		return errors.Is(d.Links.CheckIfNameFree(args.Netns, args.IfName), link.ErrIfNameTaken)
	}
}

// refuseOwnNetns fails when CNI_NETNS is the plugin's own namespace. skel
// makes the same check, but only after ADD has run.
func (d *Deps) refuseOwnNetns(args *skel.CmdArgs) error {
	return config.RefuseOwnNetns(args, d.Links.OwnNetNS)
}

// dnsSet reports whether the configuration has a "dns" of its own, which
// replaces IPAM's in the result: any of its lists given, also empty (an
// empty list clears IPAM's DNS, as with the reference).
func dnsSet(d types.DNS) bool {
	return d.Nameservers != nil || d.Search != nil || d.Options != nil || d.Domain != ""
}

// netnsError gives an error entering CNI_NETNS (gone, or not a network
// namespace) the invalid-netns code (8); other errors are returned as they
// are.
func netnsError(args *skel.CmdArgs, err error) error {
	if errors.Is(err, link.ErrNetNSGone) || errors.Is(err, link.ErrNotNetNS) {
		return types.NewError(types.ErrInvalidNetNS, fmt.Sprintf("CNI_NETNS %q: %v", args.Netns, err), "")
	}
	return err
}
