package bridge

import (
	"errors"
	"fmt"
	"runtime"

	"github.com/containernetworking/cni/pkg/skel"
	"github.com/containernetworking/cni/pkg/types"
	current "github.com/containernetworking/cni/pkg/types/100"

	"github.com/flatcni/plugins/pkg/bridge/early"
	"github.com/flatcni/plugins/pkg/bridge/hostveth"
	"github.com/flatcni/plugins/pkg/config"
	"github.com/flatcni/plugins/pkg/delegate"
	"github.com/flatcni/plugins/pkg/l2"
	"github.com/flatcni/plugins/pkg/link"
)

// Add attaches the container to the bridge network and prints the result.
func Add(args *skel.CmdArgs) (err error) {
	c, err := config.LoadBridge(args.StdinData, args.Args)
	if err != nil {
		return err
	}
	var ipamPath string
	if c.IsLayer3() {
		if ipamPath, err = findIPAM(c); err != nil {
			return err
		}
	}

	// IPAM is a process of its own and the longest step. Its process starts
	// now, but gets its configuration (and so does anything) only once the
	// node checks below have passed: its start-up overlaps them, and an
	// invalid ADD still changes nothing. It then runs while the bridge and
	// the veth pair are made; if either half fails, the deferred undo reverts
	// whichever succeeded.
	type ipamOut struct {
		res *current.Result
		err error
	}
	ipamDone := make(chan ipamOut, 1)
	gate := make(chan bool, 1)
	// The result is used as soon as IPAM has written it; whether IPAM then
	// exited successfully is settled before ADD reports success.
	ipamExec := &delegate.Exec{Early: true, Gate: gate}
	if c.IsLayer3() {
		// Usually started by package early while the plugin initialised;
		// else here, not in the goroutine: the fork is then not queued
		// behind the checks below. A failed start is retried and reported by
		// ipamAdd.
		if p := early.TakeIPAM(); p != nil {
			ipamExec.Adopt(p)
		} else {
			_ = ipamExec.Prestart(ipamPath, ipamAddArgs.AsEnv())
		}
		go func() {
			res, err := ipamAdd(c, ipamPath, args.StdinData, ipamExec)
			ipamDone <- ipamOut{res, err}
		}()
	} else {
		ipamDone <- ipamOut{res: &current.Result{CNIVersion: current.ImplementedSpecVersion}}
	}
	sandbox, err := validateNode(c, args)
	if err != nil {
		gate <- false
		<-ipamDone
		return err
	}
	defer sandbox.Close()
	gate <- true
	// Let the IPAM goroutine feed the plugin now: with GOMAXPROCS=1 it would
	// otherwise wait for this goroutine to block, after the links are made.
	runtime.Gosched()

	var undo []func()
	defer func() {
		if err != nil {
			for i := len(undo) - 1; i >= 0; i-- {
				undo[i]()
			}
		}
	}()

	vcfg := vethConfig(c, args)
	host, cont, br, vethErr := setupLinks(c, &vcfg)
	// The network's rules are subnet-wide: with the subnets in the IPAM
	// configuration (host-local's ranges, the same for every ADD), they are
	// made sure of while IPAM still runs; otherwise from IPAM's addresses below.
	fwSubnets := configuredSubnets(args.StdinData)
	var fwErr error
	fwDone := false
	if vethErr == nil && needsFirewall(c) && len(fwSubnets) > 0 {
		fwErr, fwDone = ensureFirewall(c, fwSubnets), true
	}
	var ipamRes ipamOut
	select {
	case ipamRes = <-ipamDone:
	default:
		// IPAM still runs: meanwhile, run the code that will handle its
		// result once, on a sample, so that its first run (page faults,
		// encoding/json's per-type set-up) is not on ADD's critical path.
		warmResultPath(c.CNIVersion)
		ipamRes = <-ipamDone
	}
	if ipamRes.err == nil && c.IsLayer3() {
		undo = append(undo, func() { _ = ipamDel(c, args.StdinData, &delegate.Exec{}) })
	}
	if fwDone {
		// Undone after the veth is gone: the rules go if no other port is left.
		undo = append(undo, func() { _ = removeFirewallIfEmpty(c) })
	}
	if vethErr == nil {
		undo = append(undo, func() {
			_, _, _ = link.DelVeth(args.Netns, args.IfName)
			_ = link.DelLink(host.Name)
		})
	}
	if ipamRes.err != nil {
		return ipamRes.err
	}
	if vethErr != nil {
		return vethErr
	}
	if fwErr != nil {
		return fwErr
	}
	res := ipamRes.res
	// The port is made whole (attached if deferred, VLANs set) before the
	// container's addresses when it is already on the bridge (DAD must probe
	// through it), after them when deferred (see vethConfig).
	if !vcfg.DeferAttach {
		if err := finishPort(c, host, vcfg); err != nil {
			return err
		}
	}
	var p plan
	if c.IsLayer3() {
		dropDefaultRoutes(c, res)
		if p, err = makePlan(c, res); err != nil {
			return err
		}
		if err := link.ConfigureContainer(cont, p.addrs, p.routes, c.EnableDad); err != nil {
			return err
		}
	}
	if vcfg.DeferAttach {
		if err := finishPort(c, host, vcfg); err != nil {
			return err
		}
	}

	var gwDev link.Bridge // where the gateway addresses went (for a vlan, "<bridge>.<vlan>")
	if c.IsLayer3() {
		if c.IsGW && len(p.gateways) > 0 {
			if gwDev, err = gatewayDevice(c, br); err != nil {
				return err
			}
			if err := link.EnsureGatewayAddrs(gwDev, p.gateways, c.ForceAddress); err != nil {
				return err // names the device and both addresses
			}
			if err := link.EnableForwarding(p.v4, p.v6); err != nil {
				return err
			}
		}
	}

	if c.MacSpoofChk {
		if err := l2.SetupMacSpoofCheck(c.Name, args.ContainerID, args.IfName, host.Name, cont.MAC); err != nil {
			return fmt.Errorf("macspoofchk: %w", err)
		}
		undo = append(undo, func() { _ = l2.TeardownMacSpoofCheck(c.Name, args.ContainerID, args.IfName) })
	}
	if needsFirewall(c) && !fwDone {
		if err := ensureFirewall(c, subnets(p.addrs)); err != nil {
			return err
		}
	}

	// The bridge's MAC follows its ports: read it once everything is attached.
	if b, berr := link.BridgeByName(br.Name); berr == nil {
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
	if err := ipamExec.Settle(); err != nil {
		return ipamError(c, "ADD", err)
	}
	return types.PrintResult(result, c.CNIVersion)
}

// finishPort makes the host end a port of the bridge if SetupVeth left that
// to later (DeferAttach), and gives it its VLANs.
func finishPort(c *config.Bridge, host link.Interface, vcfg link.VethConfig) error {
	if vcfg.DeferAttach {
		if err := link.AttachPort(host, vcfg); err != nil {
			return err
		}
	}
	if c.NeedsVlanFiltering() {
		return l2.SetPortVlans(host.Name, c.Vlan, c.TrunkVlans, c.PreserveDefaultVlan)
	}
	return nil
}

// setupLinks makes sure the bridge exists and wires the container to it;
// vcfg.Bridge is set to the bridge.
func setupLinks(c *config.Bridge, vcfg *link.VethConfig) (host, cont link.Interface, br link.Bridge, err error) {
	br, err = link.EnsureBridge(link.BridgeConfig{Name: c.BrName, MTU: c.MTU, PromiscMode: c.PromiscMode, VlanFiltering: c.NeedsVlanFiltering()})
	if err != nil {
		return host, cont, br, err // names the bridge
	}
	if c.NeedsVlanFiltering() {
		if err := l2.EnableVlanFiltering(br.Name); err != nil {
			return host, cont, br, err
		}
	}
	vcfg.Bridge = br
	host, cont, err = link.SetupVeth(*vcfg)
	return host, cont, br, err
}

// vethConfig describes the container's veth pair.
//
// With IPAM, the host end joins the bridge only once IPAM has answered and
// the container end is configured (DeferAttach). The container end comes up
// while IPAM runs, and the kernel then sends its first IPv6 packets: a
// multicast listener report per group its addresses join, an unsolicited
// neighbour advertisement, a router solicitation. A Linux bridge with no
// multicast querier floods each to every port, and every other container
// takes each copy up its IPv6 stack: at 500 containers that was some 6 ms of
// CPU per ADD on a 2-CPU node, taken from the ADD itself. Sent while the
// host end is not yet a port, they stop at the host end. The listener
// reports would not on their own (the kernel sends them two scheduler ticks
// after the join, after ADD has returned, where their flood landed on
// whatever the node did next): the container end is in MLDv1 mode until it
// is configured, which reports at once (pkg/link, mld.go). The kernel
// repeats the reports within a second and the solicitation after 4 s,
// through the bridge by then, so a multicast querier or a router on the
// bridge hears of the container, only up to a second or 4 s later than it
// would have (README, differences from the reference). Not deferred without
// IPAM (nothing to wait for), with DAD (it must probe through the bridge) or
// with the container end left down (nothing is sent).
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
// It returns the container netns entered for the rest of ADD.
func validateNode(c *config.Bridge, args *skel.CmdArgs) (_ *link.Sandbox, err error) {
	if err := refuseOwnNetns(args.Netns); err != nil {
		return nil, err
	}
	sb, err := link.OpenSandbox(args.Netns)
	if err != nil {
		if errors.Is(err, link.ErrNetNSGone) || errors.Is(err, link.ErrNotNetNS) {
			return nil, types.NewError(types.ErrInvalidNetNS, fmt.Sprintf("CNI_NETNS %q: %v", args.Netns, err), "")
		}
		return nil, err
	}
	defer func() {
		if err != nil {
			sb.Close()
		}
	}()
	// Before IPAM: a failed ADD releases the attachment's leases, which must
	// not be those of a live attachment with the same interface.
	if err := link.CheckIfNameFree(args.Netns, args.IfName); err != nil {
		return nil, err
	}
	if c.NeedsVlanFiltering() {
		ok, err := l2.VlanFilteringSupported()
		if err != nil {
			return nil, fmt.Errorf("vlan: probe bridge VLAN filtering: %w", err)
		}
		if !ok {
			return nil, types.NewError(types.ErrInvalidNetworkConfig, "vlan/vlanTrunk: "+l2.ErrNoVlanFiltering.Error(), "")
		}
	}
	if _, err := link.BridgeByName(c.BrName); err != nil && !errors.Is(err, link.ErrNotFound) {
		return nil, config.Invalid("bridge", "%v", err)
	}
	return sb, nil
}

func dnsSet(d types.DNS) bool {
	return len(d.Nameservers) > 0 || len(d.Search) > 0 || len(d.Options) > 0 || d.Domain != ""
}
