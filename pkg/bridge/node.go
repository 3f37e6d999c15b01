package bridge

import (
	"errors"
	"net"
	"net/netip"

	"github.com/containernetworking/cni/pkg/types"

	"github.com/flatcni/plugins/pkg/bridge/hostveth"
	"github.com/flatcni/plugins/pkg/firewall"
	"github.com/flatcni/plugins/pkg/l2"
	"github.com/flatcni/plugins/pkg/link"
	"github.com/flatcni/plugins/pkg/rtnl"
)

// NodeDeps returns the parts that act on the node's kernel: netlink
// (packages link, l2, rtnl), the firewall backends, the IPAM plugin found
// in CNI_PATH (host-local in-process when it is this program).
func NodeDeps() *Deps {
	return &Deps{Links: nodeLinks{}, IPAM: NodeIPAM{}, Firewall: nodeFirewall{}, Spoof: nodeSpoof{}, Ports: nodePorts{}}
}

// nodeLinks is Links on the node's kernel.
type nodeLinks struct{}

func (nodeLinks) OwnNetNS(netns string) (bool, error) { return rtnl.IsOwnNetNS(netns) }
func (nodeLinks) CheckIfNameFree(netns, ifName string) error {
	return link.CheckIfNameFree(netns, ifName)
}
func (nodeLinks) VlanFilteringSupported() (bool, error) { return l2.VlanFilteringSupported() }
func (nodeLinks) BridgeByName(name string) (link.Bridge, error) {
	return link.BridgeByName(name)
}
func (nodeLinks) EnsureBridge(cfg link.BridgeConfig) (link.Bridge, error) {
	return link.EnsureBridge(cfg)
}
func (nodeLinks) EnableVlanFiltering(bridge string) error { return l2.EnableVlanFiltering(bridge) }
func (nodeLinks) SetupVeth(cfg link.VethConfig) (link.Interface, link.Interface, error) {
	return link.SetupVeth(cfg)
}
func (nodeLinks) AttachPort(host link.Interface, cfg link.VethConfig) error {
	return link.AttachPort(host, cfg)
}
func (nodeLinks) SetPortVlans(hostVeth string, vlan int, trunks []int, preserveDefault bool) error {
	return l2.SetPortVlans(hostVeth, vlan, trunks, preserveDefault)
}
func (nodeLinks) ConfigureContainer(cont link.Interface, addrs []netip.Prefix, routes []link.Route, enableDAD, announce bool) (Announcer, error) {
	a, err := link.ConfigureContainer(cont, addrs, routes, enableDAD, announce)
	if !announce {
		return nil, err
	}
	return nodeAnnouncer{a}, err
}

// nodeAnnouncer is a link.Announcer, nil when ConfigureContainer could not
// make one (best effort); a failure to announce does not fail ADD.
type nodeAnnouncer struct{ a *link.Announcer }

func (n nodeAnnouncer) Announce() { _ = n.a.Announce() }
func (n nodeAnnouncer) Close()    { n.a.Close() }

func (nodeLinks) InterfaceByName(name string) (link.Interface, error) {
	return link.InterfaceByName(name)
}
func (nodeLinks) EnsureGatewayAddrs(dev link.Bridge, gws []netip.Prefix, force, dad bool) ([]netip.Prefix, error) {
	return link.EnsureGatewayAddrs(dev, gws, force, dad)
}
func (nodeLinks) EnableForwarding(v4, v6 bool) error { return link.EnableForwarding(v4, v6) }
func (nodeLinks) ForgetNeighbours(dev link.Bridge, addrs []netip.Addr) bool {
	return link.ForgetNeighbours(dev, addrs)
}
func (nodeLinks) HasPortWithAlias(br link.Bridge, name, alias string) (bool, error) {
	l, err := rtnl.LinkByName(name)
	if errors.Is(err, rtnl.ErrNotFound) {
		return false, nil
	}
	return err == nil && l.Alias == alias && l.Master == int32(br.Index), err
}
func (nodeLinks) DelLinkWithAlias(name, alias string) (bool, error) {
	return rtnl.DelLinkWithAlias(name, alias)
}
func (nodeLinks) DelPortWithAlias(br link.Bridge, name, alias string) (bool, error) {
	return rtnl.DelPortWithAlias(name, alias, int32(br.Index))
}
func (nodeLinks) DelVeth(netns, ifName string) (bool, error) {
	host, addrs, err := link.DelVeth(netns, ifName)
	return host != "" || len(addrs) > 0, err
}
func (nodeLinks) DelLink(name string) error             { return link.DelLink(name) }
func (nodeLinks) BridgeInUse(name string) (bool, error) { return link.BridgeInUse(name) }
func (nodeLinks) HostVethPending(after int) (bool, error) {
	return link.UnattachedVeth(hostveth.IsAlias, after)
}
func (nodeLinks) BridgeHasContainers(name string) (bool, error) {
	return link.BridgeHasContainers(name)
}
func (nodeLinks) OrphanVeths(br link.Bridge) ([]string, error) {
	return link.OrphanVeths(br, hostveth.IsAlias)
}
func (nodeLinks) HostPeer(netns, ifName string) (string, error) {
	return link.HostPeer(netns, ifName)
}
func (nodeLinks) CheckBridge(br link.Bridge, promisc bool, mac net.HardwareAddr) error {
	return link.CheckBridge(br, promisc, mac)
}
func (nodeLinks) CheckGatewayAddrs(br link.Bridge, gws []netip.Prefix) error {
	return link.CheckGatewayAddrs(br, gws)
}
func (nodeLinks) CheckHostVeth(br link.Bridge, hostVeth string, mac net.HardwareAddr) error {
	return link.CheckHostVeth(br, hostVeth, mac)
}
func (nodeLinks) CheckContainer(netns, ifName string, mac net.HardwareAddr, addrs []netip.Prefix, routes []link.Route) error {
	return link.CheckContainer(netns, ifName, mac, addrs, routes)
}

// nodeFirewall is Firewall with package firewall's backends and lock files.
// For teardown, the locks are best effort (firewall.WithBestEffortLock).
type nodeFirewall struct{ teardown bool }

func (f nodeFirewall) Backend(name string) (firewall.Backend, error) {
	if f.teardown {
		return firewall.New(name, firewall.WithBestEffortLock())
	}
	return firewall.New(name)
}
func (nodeFirewall) Holder(network string) string { return firewall.Holder(network) }
func (nodeFirewall) Usable(name string) error     { return firewall.Usable(name) }
func (nodeFirewall) MayHold(network string) bool {
	return firewall.NetworkMarked(firewall.DefaultLockDir, network)
}
func (nodeFirewall) SetMayHold(network string, may bool) error {
	if may {
		return firewall.MarkNetwork(firewall.DefaultLockDir, network)
	}
	return firewall.UnmarkNetwork(firewall.DefaultLockDir, network)
}
func (nodeFirewall) LegacyIPTables() bool { return firewall.LegacyIPTables() }
func (nodeFirewall) Forget(network string, unused func() (bool, error)) error {
	return firewall.ForgetNetwork(firewall.DefaultLockDir, network, unused)
}
func (f nodeFirewall) Lock(network string) (func(), error) {
	if f.teardown {
		return firewall.LockNetworkForTeardown(firewall.DefaultLockDir, network), nil
	}
	unlock, err := firewall.LockNetwork(firewall.DefaultLockDir, network)
	if err != nil {
		// The lock directory or file is unusable (read-only, full, not
		// ours): an I/O failure.
		// LockNetwork's error names the network.
		return nil, types.NewError(types.ErrIOFailure, err.Error(), "")
	}
	return unlock, nil
}

// teardownFirewall is a Firewall with a variant for DEL, GC and undoing an
// ADD, which must not fail for ever on a lock they cannot have.
type teardownFirewall interface {
	ForTeardown() Firewall
}

func (nodeFirewall) ForTeardown() Firewall { return nodeFirewall{teardown: true} }

// nodeSpoof is SpoofCheck with package l2's nftables rules.
type nodeSpoof struct{}

func (nodeSpoof) Setup(network, containerID, ifName, hostVeth string, mac net.HardwareAddr) error {
	return l2.SetupMacSpoofCheck(network, containerID, ifName, hostVeth, mac)
}
func (nodeSpoof) Teardown(network, containerID, ifName string) error {
	return l2.TeardownMacSpoofCheck(network, containerID, ifName)
}
func (nodeSpoof) TeardownMany(atts []l2.Attachment) error {
	return l2.TeardownMacSpoofChecks(atts)
}
func (nodeSpoof) TeardownWithReference(network, containerID, ifName string) (error, error) {
	return l2.TeardownMacSpoofCheckWithReference(network, containerID, ifName)
}
func (nodeSpoof) Checks(network string) ([]l2.Attachment, error) { return l2.MacSpoofChecks(network) }
func (nodeSpoof) RemoveDeadReference() error {
	_, err := l2.RemoveDeadReferenceSpoofChecks()
	return err
}
