package bridge

import (
	"net"
	"net/netip"
	"os"

	"github.com/containernetworking/cni/pkg/skel"
	"github.com/containernetworking/cni/pkg/types"

	"github.com/flatcni/plugins/pkg/config"
	"github.com/flatcni/plugins/pkg/firewall"
	"github.com/flatcni/plugins/pkg/hostlocal"
	"github.com/flatcni/plugins/pkg/ipam"
	"github.com/flatcni/plugins/pkg/l2"
	"github.com/flatcni/plugins/pkg/link"
)

// Deps are the kernel-facing parts the verbs use. The plugin's main builds
// them with NodeDeps; unit tests pass fakes that record what was asked.
type Deps struct {
	Links    Links
	IPAM     IPAM
	Firewall Firewall
	Spoof    SpoofCheck
	Ports    Ports // port publishing (ports.go); nil: none
}

// Funcs returns the verbs for skel.PluginMainFuncs: ADD prints its result.
func Funcs(d *Deps) skel.CNIFuncs {
	return skel.CNIFuncs{
		Add: func(args *skel.CmdArgs) error {
			res, err := d.Add(args)
			if err != nil {
				return err
			}
			return hostlocal.PrintResult(os.Stdout, res)
		},
		Del:    d.Del,
		Check:  d.Check,
		GC:     d.GC,
		Status: d.Status,
	}
}

// Links makes, finds, checks and removes the network's links: the bridge,
// the containers' veth pairs, their addresses and routes (package link, and
// package l2 for VLANs). Netns arguments are paths.
type Links interface {
	// OwnNetNS tells whether netns is the plugin's own network namespace.
	OwnNetNS(netns string) (bool, error)
	// CheckIfNameFree fails when ifName exists in netns; its errors match
	// link.ErrNetNSGone or link.ErrNotNetNS when netns cannot be entered.
	CheckIfNameFree(netns, ifName string) error
	// HasPortWithAlias reports whether br has a port called name whose
	// alias is alias.
	HasPortWithAlias(br link.Bridge, name, alias string) (bool, error)
	VlanFilteringSupported() (bool, error)
	// BridgeByName's error matches link.ErrNotFound for a missing bridge.
	BridgeByName(name string) (link.Bridge, error)
	// EnsureBridge's result says whether it made the bridge (Created),
	// also with an error.
	EnsureBridge(cfg link.BridgeConfig) (link.Bridge, error)
	EnableVlanFiltering(bridge string) error
	SetupVeth(cfg link.VethConfig) (host, cont link.Interface, err error)
	AttachPort(host link.Interface, cfg link.VethConfig) error
	SetPortVlans(hostVeth string, vlan int, trunks []int, preserveDefault bool) error
	// ConfigureContainer gives the container end its addresses and routes,
	// and, with announce, returns the Announcer of its addresses (not nil
	// without an error; nil without announce).
	ConfigureContainer(cont link.Interface, addrs []netip.Prefix, routes []link.Route, enableDAD, announce bool) (Announcer, error)
	// InterfaceByName's error matches link.ErrNotFound for a missing link.
	InterfaceByName(name string) (link.Interface, error)
	// EnsureGatewayAddrs adds IPv6 addresses with duplicate address
	// detection only when dad is set (enabledad). It returns the subnets
	// of the device's other gateway addresses that stay (a subnet the
	// configuration no longer names, whose containers still use them).
	EnsureGatewayAddrs(dev link.Bridge, gws []netip.Prefix, force, dad bool) (others []netip.Prefix, err error)
	EnableForwarding(v4, v6 bool) error
	// ForgetNeighbours deletes dev's neighbour entries of addrs (best
	// effort), and reports whether there was one.
	ForgetNeighbours(dev link.Bridge, addrs []netip.Addr) bool
	// DelLinkWithAlias deletes the node's link name if its alias is alias.
	DelLinkWithAlias(name, alias string) (deleted bool, err error)
	// DelPortWithAlias is DelLinkWithAlias for a port of br only.
	DelPortWithAlias(br link.Bridge, name, alias string) (deleted bool, err error)
	// DelVeth deletes ifName in netns (a missing netns or link is not an
	// error) and reports whether it found it: a veth whose peer is on the
	// node, or an interface with addresses.
	DelVeth(netns, ifName string) (found bool, err error)
	DelLink(name string) error
	BridgeInUse(name string) (bool, error)
	// HostVethPending reports whether a host veth of ours made after the
	// link with index after is on no bridge: an ADD between its veth's
	// creation and its attach.
	HostVethPending(after int) (bool, error)
	// BridgeHasContainers ignores ports that are no container's (uplinks,
	// a VLAN's gateway pair).
	BridgeHasContainers(name string) (bool, error)
	OrphanVeths(br link.Bridge) ([]string, error)
	HostPeer(netns, ifName string) (string, error)
	CheckBridge(br link.Bridge, promisc bool, mac net.HardwareAddr) error
	CheckGatewayAddrs(br link.Bridge, gws []netip.Prefix) error
	CheckHostVeth(br link.Bridge, hostVeth string, mac net.HardwareAddr) error
	CheckContainer(netns, ifName string, mac net.HardwareAddr, addrs []netip.Prefix, routes []link.Route) error
}

// Announcer has a container's interface tell the other hosts of its link
// its MAC for each of its addresses (link.Announcer): a gratuitous ARP for
// each IPv4 address, an unsolicited neighbour advertisement for each IPv6
// one, without entering the container's netns again.
type Announcer interface {
	// Announce sends them, best effort, and releases the announcer.
	Announce()
	// Close releases it without sending; a second call, or one after
	// Announce, does nothing.
	Close()
}

// IPAM finds the IPAM plugin that a network's ipam.type names.
type IPAM interface {
	// Plugin resolves c.IPAM.Type in cniPath (CNI_PATH). It fails with a
	// configuration error naming the plugin when it is missing or would
	// call this program back as a plugin other than host-local.
	Plugin(c *config.Bridge, cniPath string) (IPAMPlugin, error)
}

// IPAMPlugin runs the verbs of one IPAM plugin, on the bridge's own
// arguments (its configuration on args.StdinData).
type IPAMPlugin interface {
	// Add returns the plugin's result and, when the plugin knows them
	// before any ADD (host-local in-process: its ranges), the subnets of
	// the network; nil subnets leave them to the result's addresses.
	// reserved says whether undoing the ADD must release addresses: false
	// when the attachment held them all before (a repeated ADD); always
	// true for an executed plugin, which does not say.
	Add(args *skel.CmdArgs) (res types.Result, subnets []netip.Prefix, reserved bool, err error)
	Del(args *skel.CmdArgs) error
	Check(args *skel.CmdArgs) error
	GC(args *skel.CmdArgs) error
	// Stale lists the attachments holding the network's addresses that
	// GC will release (not in cni.dev/valid-attachments); known is false
	// when the plugin cannot tell (one run by exec).
	Stale(args *skel.CmdArgs) (stale []ipam.Attachment, known bool, err error)
	Status(args *skel.CmdArgs) error
	// Leased returns those of prefixes that hold an address of the
	// network's attachments (host-local in-process: a lease file's name in
	// one); nil when the plugin cannot tell (one run by exec).
	Leased(args *skel.CmdArgs, prefixes []netip.Prefix) []netip.Prefix
	// HoldsLeases reports whether the network holds any address; known
	// is false when the plugin cannot tell (one run by exec), or failed
	// to.
	HoldsLeases(args *skel.CmdArgs) (held, known bool)
	// Local reports whether the plugin's ADD needs nothing of the
	// container's interface: our host-local run in-process, which only
	// touches its lease files. ADD then runs it beside the bridge's and the
	// veth's creation, so that its disk waits overlap the kernel's. A plugin
	// run by exec is never Local: it may need the interface (DHCP does).
	// DEL runs every plugin after the interface is gone, as the reference
	// does, so that an address is free only once nothing uses it.
	Local() bool
}

// Firewall gives the network-level firewall backends (package firewall):
// ensure a network's rule set, remove it, list networks.
type Firewall interface {
	// Backend returns the backend called name ("" for the default); an
	// unknown name is an error.
	Backend(name string) (firewall.Backend, error)
	// Holder returns the backend holding rules of the network, "" if none
	// or unknown (firewall.Holder).
	Holder(network string) string
	// Usable reports whether the backend name (firewall.Usable) can run
	// on the node, without starting a process: STATUS asks it.
	Usable(name string) error
	// Lock serialises rule changes of the network between processes.
	Lock(network string) (unlock func(), err error)
	// MayHold reports whether the network may have masquerade or isolation
	// rules in some backend: false only when it surely has none, found
	// without asking the backends (firewall.NetworkMarked: none were
	// written since the node started, or since they were last removed for
	// a configuration that asks for none). SetMayHold sets what it reports.
	MayHold(network string) bool
	SetMayHold(network string, may bool) error
	// Forget removes what the network keeps on the node beside its rules
	// (its marker and lock file, firewall.ForgetNetwork) when unused,
	// called under the network's lock, reports that nothing is attached.
	Forget(network string, unused func() (bool, error)) error
	// LegacyIPTables reports whether the node has iptables-legacy tables,
	// whose rules netlink does not show (firewall.LegacyIPTables).
	LegacyIPTables() bool
}

// SpoofCheck manages the MAC spoof checks of attachments (package l2).
type SpoofCheck interface {
	Setup(network, containerID, ifName, hostVeth string, mac net.HardwareAddr) error
	Teardown(network, containerID, ifName string) error
	// TeardownMany removes the checks of the attachments (by network,
	// container ID and interface name) in one reading and one batch.
	TeardownMany(atts []l2.Attachment) error
	// TeardownWithReference also removes the reference plugin's check of
	// the attachment; its leftover is only worth printing.
	TeardownWithReference(network, containerID, ifName string) (leftover, err error)
	// Checks lists the network's checks.
	Checks(network string) ([]l2.Attachment, error)
	// RemoveDeadReference removes the reference plugin's checks whose host
	// veth is gone.
	RemoveDeadReference() error
}
