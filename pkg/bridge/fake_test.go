package bridge

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"syscall"

	"github.com/containernetworking/cni/pkg/skel"
	"github.com/containernetworking/cni/pkg/types"
	current "github.com/containernetworking/cni/pkg/types/100"

	"github.com/flatcni/plugins/pkg/bridge/hostveth"
	"github.com/flatcni/plugins/pkg/config"
	"github.com/flatcni/plugins/pkg/firewall"
	"github.com/flatcni/plugins/pkg/hostlocal"
	"github.com/flatcni/plugins/pkg/ipam"
	"github.com/flatcni/plugins/pkg/l2"
	"github.com/flatcni/plugins/pkg/link"
)

// The fakes below keep the node in memory and record what they were asked
// ("EnsureBridge cni0", "SetupVeth /run/netns/c1 eth0", ...), as
// firewall.Fake does for the firewall. fail makes the named method fail.

// fakeLinks is Links in memory: bridges, veth pairs, container addresses.
type fakeLinks struct {
	mu      sync.Mutex
	calls   []string
	fail    map[string]error
	own     map[string]bool // netns paths that are the plugin's own
	netns   map[string]bool // netns paths that exist
	bridges map[string]link.Bridge
	hosts   map[string]*fakeHost // by host veth name
	gwAddrs map[string][]netip.Prefix
	gwDAD   map[netip.Prefix]bool // the dad argument each gateway address was added with
	fwd     [2]bool               // IPv4, IPv6 forwarding
	next    int                   // last link index given
	found   []*link.Bridge        // BridgeConfig.Found of each EnsureBridge
	// announcers counts the Announcers ConfigureContainer made that were
	// neither announced nor closed.
	announcers int
	// opened counts the Announcers ConfigureContainer made.
	opened int
	// neighbours: the node's neighbour entries ForgetNeighbours finds
	// (and deletes).
	neighbours map[netip.Addr]bool
	// beforeSetupVeth, when set, runs (once, without the lock) when
	// SetupVeth is called: another call racing this one.
	beforeSetupVeth func()
	// beforeDel, when set, runs (without the lock) when DelPortWithAlias
	// or DelLink is called.
	beforeDel func()
}

// fakeHost is a veth pair, by its host end.
type fakeHost struct {
	alias, netns, ifName string
	mac, contMAC         net.HardwareAddr
	index                int
	master               int // bridge index, 0 when not a port
	vlan                 int
	addrs                []netip.Prefix
	routes               []link.Route
	hairpin              bool
}

func newFakeLinks(netns ...string) *fakeLinks {
	f := &fakeLinks{fail: map[string]error{}, own: map[string]bool{}, netns: map[string]bool{}, bridges: map[string]link.Bridge{}, hosts: map[string]*fakeHost{}, gwAddrs: map[string][]netip.Prefix{}, gwDAD: map[netip.Prefix]bool{}}
	for _, n := range netns {
		f.netns[n] = true
	}
	return f
}

// call records a call and returns the error set for method.
func (f *fakeLinks) call(method string, args ...any) error {
	s := method
	for _, a := range args {
		s += fmt.Sprint(" ", a)
	}
	f.calls = append(f.calls, s)
	return f.fail[method]
}

func (f *fakeLinks) mac(i int) net.HardwareAddr {
	return net.HardwareAddr{2, 0, 0, 0, byte(i >> 8), byte(i)}
}

// cont finds the pair whose container end is ifName in netns.
func (f *fakeLinks) cont(netns, ifName string) (string, *fakeHost) {
	for name, h := range f.hosts {
		if h.netns == netns && h.ifName == ifName {
			return name, h
		}
	}
	return "", nil
}

func (f *fakeLinks) OwnNetNS(netns string) (bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.own[netns], f.call("OwnNetNS", netns)
}

func (f *fakeLinks) CheckIfNameFree(netns, ifName string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.call("CheckIfNameFree", netns, ifName); err != nil {
		return err
	}
	if !f.netns[netns] {
		return fmt.Errorf("open netns %q: %w", netns, link.ErrNetNSGone)
	}
	if _, h := f.cont(netns, ifName); h != nil {
		return link.IfNameTaken(netns, ifName)
	}
	return nil
}

func (f *fakeLinks) VlanFilteringSupported() (bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return true, f.call("VlanFilteringSupported")
}

func (f *fakeLinks) BridgeByName(name string) (link.Bridge, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.call("BridgeByName", name); err != nil {
		return link.Bridge{}, err
	}
	br, ok := f.bridges[name]
	if !ok {
		return link.Bridge{}, fmt.Errorf("bridge %q: %w", name, link.ErrNotFound)
	}
	return br, nil
}

func (f *fakeLinks) EnsureBridge(cfg link.BridgeConfig) (link.Bridge, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.call("EnsureBridge", cfg.Name); err != nil {
		return link.Bridge{}, err
	}
	f.found = append(f.found, cfg.Found)
	br, ok := f.bridges[cfg.Name]
	if !ok {
		f.next++
		br = link.Bridge{Name: cfg.Name, Index: f.next, MAC: f.mac(f.next), Promisc: cfg.PromiscMode}
		f.bridges[cfg.Name] = br
		br.Created = true
	}
	// A step after the bridge's creation (promiscuous mode, up) failing.
	return br, f.fail["EnsureBridge up"]
}

func (f *fakeLinks) EnableVlanFiltering(bridge string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.call("EnableVlanFiltering", bridge)
}

func (f *fakeLinks) SetupVeth(cfg link.VethConfig) (link.Interface, link.Interface, error) {
	f.mu.Lock()
	hook := f.beforeSetupVeth
	f.beforeSetupVeth = nil
	f.mu.Unlock()
	if hook != nil {
		hook()
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.call("SetupVeth", cfg.ContainerNetNS, cfg.IfName); err != nil {
		return link.Interface{}, link.Interface{}, err
	}
	if _, h := f.cont(cfg.ContainerNetNS, cfg.IfName); h != nil {
		return link.Interface{}, link.Interface{}, link.IfNameTaken(cfg.ContainerNetNS, cfg.IfName)
	}
	if _, taken := f.hosts[cfg.HostName]; taken || cfg.HostName == "" {
		return link.Interface{}, link.Interface{}, errors.New("fake: host veth name taken")
	}
	f.next += 2
	h := &fakeHost{alias: cfg.HostAlias, netns: cfg.ContainerNetNS, ifName: cfg.IfName, mac: f.mac(f.next - 1), contMAC: f.mac(f.next), index: f.next - 1, hairpin: cfg.HairpinMode}
	if cfg.MAC != nil {
		h.contMAC = cfg.MAC
	}
	if !cfg.DeferAttach {
		h.master = cfg.Bridge.Index
	}
	f.hosts[cfg.HostName] = h
	return link.Interface{Name: cfg.HostName, MAC: h.mac, Index: h.index},
		link.Interface{Name: cfg.IfName, MAC: h.contMAC, Index: f.next, Sandbox: cfg.ContainerNetNS}, nil
}

func (f *fakeLinks) AttachPort(host link.Interface, cfg link.VethConfig) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.call("AttachPort", host.Name, cfg.Bridge.Name); err != nil {
		return err
	}
	if br, ok := f.bridges[cfg.Bridge.Name]; !ok || br.Index != cfg.Bridge.Index {
		return fmt.Errorf("attach %q to bridge %q: %w", host.Name, cfg.Bridge.Name, syscall.EINVAL)
	}
	f.hosts[host.Name].master = cfg.Bridge.Index
	return nil
}

func (f *fakeLinks) SetPortVlans(hostVeth string, vlan int, trunks []int, preserveDefault bool) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.call("SetPortVlans", hostVeth, vlan); err != nil {
		return err
	}
	if h := f.hosts[hostVeth]; h != nil {
		h.vlan = vlan
	}
	return nil
}

func (f *fakeLinks) ConfigureContainer(cont link.Interface, addrs []netip.Prefix, routes []link.Route, enableDAD, announce bool) (Announcer, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.call("ConfigureContainer", cont.Sandbox, cont.Name, addrs); err != nil {
		return nil, err
	}
	_, h := f.cont(cont.Sandbox, cont.Name)
	h.addrs, h.routes = addrs, routes
	if !announce {
		return nil, nil
	}
	f.announcers++
	f.opened++
	return &fakeAnnouncer{f: f, what: fmt.Sprint(cont.Sandbox, " ", cont.Name, " ", addrs)}, nil
}

// fakeAnnouncer records its announcement in its fakeLinks' calls
// ("Announce <netns> <ifName> <addrs>"); fakeLinks.announcers counts those
// not yet released.
type fakeAnnouncer struct {
	f    *fakeLinks
	what string
	done bool
}

func (a *fakeAnnouncer) Announce() {
	a.f.mu.Lock()
	defer a.f.mu.Unlock()
	if !a.done {
		_ = a.f.call("Announce", a.what)
		a.release()
	}
}

func (a *fakeAnnouncer) Close() {
	a.f.mu.Lock()
	defer a.f.mu.Unlock()
	a.release()
}

func (a *fakeAnnouncer) release() {
	if !a.done {
		a.done = true
		a.f.announcers--
	}
}

func (f *fakeLinks) InterfaceByName(name string) (link.Interface, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.call("InterfaceByName", name); err != nil {
		return link.Interface{}, err
	}
	if h := f.hosts[name]; h != nil {
		return link.Interface{Name: name, MAC: h.mac, Index: h.index}, nil
	}
	return link.Interface{}, fmt.Errorf("link %q: %w", name, link.ErrNotFound)
}

// EnsureGatewayAddrs: every gateway address coexists on the fake (no
// conflicts); the others of the gateways' families are returned.
func (f *fakeLinks) EnsureGatewayAddrs(dev link.Bridge, gws []netip.Prefix, force, dad bool) ([]netip.Prefix, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.call("EnsureGatewayAddrs", dev.Name, gws); err != nil {
		return nil, err
	}
	var others []netip.Prefix
	for _, a := range f.gwAddrs[dev.Name] {
		if !slices.Contains(gws, a) && slices.ContainsFunc(gws, func(g netip.Prefix) bool { return g.Addr().Is4() == a.Addr().Is4() }) {
			others = append(others, a.Masked())
		}
	}
	for _, g := range gws {
		if !slices.Contains(f.gwAddrs[dev.Name], g) {
			f.gwAddrs[dev.Name] = append(f.gwAddrs[dev.Name], g)
			f.gwDAD[g] = dad
		}
	}
	return others, nil
}

func (f *fakeLinks) ForgetNeighbours(dev link.Bridge, addrs []netip.Addr) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	_ = f.call("ForgetNeighbours", dev.Name, fmt.Sprint(addrs))
	forgot := false
	for _, a := range addrs {
		forgot = f.neighbours[a] || forgot
		delete(f.neighbours, a)
	}
	return forgot
}

func (f *fakeLinks) EnableForwarding(v4, v6 bool) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.call("EnableForwarding", v4, v6); err != nil {
		return err
	}
	f.fwd[0], f.fwd[1] = f.fwd[0] || v4, f.fwd[1] || v6
	return nil
}

func (f *fakeLinks) HasPortWithAlias(br link.Bridge, name, alias string) (bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.call("HasPortWithAlias", br.Name, name); err != nil {
		return false, err
	}
	h := f.hosts[name]
	return h != nil && h.alias == alias && h.master == br.Index, nil
}

func (f *fakeLinks) DelLinkWithAlias(name, alias string) (bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.call("DelLinkWithAlias", name); err != nil {
		return false, err
	}
	if h := f.hosts[name]; h != nil && h.alias == alias {
		delete(f.hosts, name)
		return true, nil
	}
	return false, nil
}

func (f *fakeLinks) DelPortWithAlias(br link.Bridge, name, alias string) (bool, error) {
	if f.beforeDel != nil {
		f.beforeDel()
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.call("DelPortWithAlias", br.Name, name); err != nil {
		return false, err
	}
	if h := f.hosts[name]; h != nil && h.alias == alias && h.master == br.Index {
		delete(f.hosts, name)
		return true, nil
	}
	return false, nil
}

func (f *fakeLinks) DelVeth(netns, ifName string) (bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.call("DelVeth", netns, ifName); err != nil {
		return false, err
	}
	name, h := f.cont(netns, ifName)
	if h != nil {
		delete(f.hosts, name)
	}
	return h != nil, nil
}

func (f *fakeLinks) DelLink(name string) error {
	if f.beforeDel != nil {
		f.beforeDel()
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.call("DelLink", name); err != nil {
		return err
	}
	delete(f.hosts, name)
	delete(f.bridges, name)
	// A peer on the node (a VLAN gateway pair's) takes its pair along.
	if host, h := f.cont(nodeNetNS, name); h != nil {
		delete(f.hosts, host)
	}
	return nil
}

// BridgeHasContainers: the fake's veths are containers' but a VLAN
// gateway pair, whose peer stays on the node.
func (f *fakeLinks) BridgeHasContainers(name string) (bool, error) {
	return f.bridgeInUse("BridgeHasContainers", name, func(h *fakeHost) bool { return h.netns != nodeNetNS })
}

func (f *fakeLinks) BridgeInUse(name string) (bool, error) {
	return f.bridgeInUse("BridgeInUse", name, func(*fakeHost) bool { return true })
}

// HostVethPending: a host end of ours, made after the link of index
// after, on no bridge.
func (f *fakeLinks) HostVethPending(after int) (bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.call("HostVethPending"); err != nil {
		return false, err
	}
	for _, h := range f.hosts {
		if h.master == 0 && h.index > after && hostveth.IsAlias(h.alias) {
			return true, nil
		}
	}
	return false, nil
}

func (f *fakeLinks) bridgeInUse(call, name string, counts func(*fakeHost) bool) (bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.call(call, name); err != nil {
		return false, err
	}
	br, ok := f.bridges[name]
	for _, h := range f.hosts {
		if ok && h.master == br.Index && counts(h) {
			return true, nil
		}
	}
	return false, nil
}

func (f *fakeLinks) OrphanVeths(br link.Bridge) ([]string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.call("OrphanVeths", br.Name); err != nil {
		return nil, err
	}
	var out []string
	for name, h := range f.hosts {
		if h.master == br.Index && !f.netns[h.netns] {
			out = append(out, name)
		}
	}
	slices.Sort(out)
	return out, nil
}

func (f *fakeLinks) HostPeer(netns, ifName string) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.call("HostPeer", netns, ifName); err != nil {
		return "", err
	}
	if name, h := f.cont(netns, ifName); h != nil {
		return name, nil
	}
	return "", fmt.Errorf("%s in %s: %w", ifName, netns, link.ErrNotFound)
}

func (f *fakeLinks) CheckBridge(br link.Bridge, promisc bool, mac net.HardwareAddr) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.call("CheckBridge", br.Name); err != nil {
		return err
	}
	if mac != nil && mac.String() != br.MAC.String() {
		return fmt.Errorf("bridge %q has MAC %s, want %s", br.Name, br.MAC, mac)
	}
	return nil
}

func (f *fakeLinks) CheckGatewayAddrs(br link.Bridge, gws []netip.Prefix) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.call("CheckGatewayAddrs", br.Name, gws); err != nil {
		return err
	}
	for _, g := range gws {
		if !slices.Contains(f.gwAddrs[br.Name], g) {
			return fmt.Errorf("bridge %q: gateway address %s is missing", br.Name, g)
		}
	}
	return nil
}

func (f *fakeLinks) CheckHostVeth(br link.Bridge, hostVeth string, mac net.HardwareAddr) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.call("CheckHostVeth", hostVeth); err != nil {
		return err
	}
	h := f.hosts[hostVeth]
	switch {
	case h == nil:
		return fmt.Errorf("host veth %q: %w", hostVeth, link.ErrNotFound)
	case h.master != br.Index:
		return fmt.Errorf("host veth %q is not a port of %q", hostVeth, br.Name)
	case mac != nil && mac.String() != h.mac.String():
		return fmt.Errorf("host veth %q has MAC %s, want %s", hostVeth, h.mac, mac)
	}
	return nil
}

func (f *fakeLinks) CheckContainer(netns, ifName string, mac net.HardwareAddr, addrs []netip.Prefix, routes []link.Route) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.call("CheckContainer", netns, ifName); err != nil {
		return err
	}
	_, h := f.cont(netns, ifName)
	switch {
	case h == nil:
		return fmt.Errorf("%s in %s: %w", ifName, netns, link.ErrNotFound)
	case mac != nil && mac.String() != h.contMAC.String(): // nil: not compared, as link.CheckContainer
		return fmt.Errorf("%s has MAC %s, want %s", ifName, h.contMAC, mac)
	case !slices.Equal(addrs, h.addrs):
		return fmt.Errorf("%s has addresses %v, want %v", ifName, h.addrs, addrs)
	case !slices.Equal(routes, h.routes):
		return fmt.Errorf("%s has routes %v, want %v", ifName, h.routes, routes)
	}
	return nil
}

// fakeIPAM hands out 10.1.0.2, .3, ... of 10.1.0.0/24 (gateway 10.1.0.1),
// one lease per attachment, as host-local would.
type fakeIPAM struct {
	mu      sync.Mutex
	calls   []string
	fail    map[string]error // by verb: "ADD", "DEL", ...
	subnets []netip.Prefix   // what Add reports as known subnets
	leases  map[string]netip.Addr
	nets    map[string]string // each lease's network
	next    netip.Addr
	local   bool // Local: ADD and DEL run it beside the veth
	// exec: a plugin run by exec, which does not tell Stale.
	exec bool
	// onGC runs at the start of GC.
	onGC func()
}

func newFakeIPAM() *fakeIPAM {
	return &fakeIPAM{fail: map[string]error{}, leases: map[string]netip.Addr{}, nets: map[string]string{}, next: netip.MustParseAddr("10.1.0.1")}
}

// Plugin implements IPAM: a plugin called "missing" is not found.
func (f *fakeIPAM) Plugin(c *config.Bridge, cniPath string) (IPAMPlugin, error) {
	if c.IPAM.Type == "missing" {
		return nil, ipamNotFound(c.IPAM.Type, cniPath)
	}
	return f, nil
}

func (f *fakeIPAM) Local() bool { return f.local }

func (f *fakeIPAM) call(verb string, args *skel.CmdArgs) error {
	f.calls = append(f.calls, verb+" "+args.ContainerID+"/"+args.IfName)
	return f.fail[verb]
}

func (f *fakeIPAM) Add(args *skel.CmdArgs) (types.Result, []netip.Prefix, bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.call("ADD", args); err != nil {
		return nil, nil, false, err
	}
	key := args.ContainerID + "/" + args.IfName
	a, ok := f.leases[key]
	if !ok {
		f.next = f.next.Next()
		a = f.next
		f.leases[key] = a
		f.nets[key] = networkOf(args)
	}
	return &current.Result{
		CNIVersion: current.ImplementedSpecVersion,
		IPs:        []*current.IPConfig{{Address: net.IPNet{IP: a.AsSlice(), Mask: net.CIDRMask(24, 32)}, Gateway: net.IPv4(10, 1, 0, 1).To4()}},
	}, f.subnets, !ok, nil
}

func (f *fakeIPAM) Del(args *skel.CmdArgs) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.call("DEL", args); err != nil {
		return err
	}
	delete(f.leases, args.ContainerID+"/"+args.IfName)
	return nil
}

func (f *fakeIPAM) Check(args *skel.CmdArgs) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.call("CHECK", args); err != nil {
		return err
	}
	if _, ok := f.leases[args.ContainerID+"/"+args.IfName]; !ok {
		return errors.New("no lease")
	}
	return nil
}

// GC releases the leases of attachments not valid, as host-local's does
// (not for a plugin run by exec, whose leases the fake does not keep).
func (f *fakeIPAM) GC(args *skel.CmdArgs) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.onGC != nil {
		f.onGC()
	}
	if err := f.call("GC", args); err != nil || f.exec {
		return err
	}
	valid, err := hostlocal.ValidAttachments(args.StdinData)
	if err != nil {
		return err
	}
	for key := range f.leases {
		id, ifname, _ := strings.Cut(key, "/")
		if !valid[ipam.Attachment{ContainerID: id, IfName: ifname}] {
			delete(f.leases, key)
		}
	}
	return nil
}

// HoldsLeases: whether the fake holds a lease (unknown for a plugin run by
// exec).
func (f *fakeIPAM) HoldsLeases(args *skel.CmdArgs) (bool, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for key := range f.leases {
		if f.nets[key] == networkOf(args) {
			return true, !f.exec
		}
	}
	return false, !f.exec
}

// networkOf is the network's name in a call's configuration.
func networkOf(args *skel.CmdArgs) string {
	var c struct{ Name string }
	_ = json.Unmarshal(args.StdinData, &c)
	return c.Name
}

// Leased: the prefixes holding one of the fake's leases (none for a plugin
// run by exec, which does not tell).
func (f *fakeIPAM) Leased(_ *skel.CmdArgs, prefixes []netip.Prefix) []netip.Prefix {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.exec {
		return nil
	}
	var out []netip.Prefix
	for _, p := range prefixes {
		for _, a := range f.leases {
			if p.Contains(a) {
				out = append(out, p)
				break
			}
		}
	}
	return out
}

// Stale lists the leases of attachments not in the request's valid ones.
func (f *fakeIPAM) Stale(args *skel.CmdArgs) ([]ipam.Attachment, bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.call("STALE", args); err != nil || f.exec {
		return nil, false, err
	}
	valid, err := hostlocal.ValidAttachments(args.StdinData)
	if err != nil {
		return nil, false, err
	}
	var out []ipam.Attachment
	for key := range f.leases {
		id, ifname, _ := strings.Cut(key, "/")
		if a := (ipam.Attachment{ContainerID: id, IfName: ifname}); !valid[a] {
			out = append(out, a)
		}
	}
	return out, true, nil
}

func (f *fakeIPAM) Status(args *skel.CmdArgs) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.call("STATUS", args)
}

// fakeFirewall gives one firewall.Fake for either backend name and
// records the network locks taken.
type fakeFirewall struct {
	*firewall.Fake
	mu     sync.Mutex
	locks  []string
	held   bool
	marked map[string]bool // SetMayHold
	// unmarkErr fails SetMayHold(false) (a marker that cannot be removed:
	// /run/flatcni unusable, a directory at the marker's name).
	unmarkErr error
	unusable  error // Usable's answer
	// onSync, when set, runs as each Sync starts.
	onSync func(network string)
	// names: the name argument of each Backend call.
	names []string
	// forgotten: the networks Forget removed the marker and lock file of.
	forgotten []string
	// others, when set, are the backends of these names (others: the
	// fake); legacy: LegacyIPTables' answer.
	others map[string]firewall.Backend
	legacy bool
}

// LegacyIPTables: legacy.
func (f *fakeFirewall) LegacyIPTables() bool { return f.legacy }

// namedBackend is a backend under another name (a second backend beside
// the fake in force).
type namedBackend struct {
	firewall.Backend
	name string
}

func (b namedBackend) Name() string { return b.name }

// syncSpy is a backend whose Sync calls onSync first.
type syncSpy struct {
	firewall.Backend
	onSync func(network string)
}

func (s syncSpy) Sync(n firewall.Network) (bool, error) {
	s.onSync(n.Name)
	return s.Backend.Sync(n)
}

func (f *fakeFirewall) Backend(name string) (firewall.Backend, error) {
	f.mu.Lock()
	f.names = append(f.names, name)
	f.mu.Unlock()
	if name != "" && name != firewall.IPTablesName && name != firewall.NFTablesName {
		return nil, fmt.Errorf("unknown ipMasqBackend %q", name)
	}
	if b := f.others[name]; b != nil {
		return b, nil
	}
	if f.onSync != nil {
		return syncSpy{f.Fake, f.onSync}, nil
	}
	return f.Fake, nil
}

// Holder: the fake's one backend serves every name.
func (f *fakeFirewall) Holder(string) string { return "" }

// Usable: the error set in unusable, if any.
func (f *fakeFirewall) Usable(name string) error { return f.unusable }

// MayHold and SetMayHold keep the marker in memory.
func (f *fakeFirewall) MayHold(network string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.marked[network]
}

func (f *fakeFirewall) SetMayHold(network string, may bool) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if !may && f.unmarkErr != nil {
		return f.unmarkErr
	}
	if f.marked == nil {
		f.marked = map[string]bool{}
	}
	f.marked[network] = may
	return nil
}

// Forget takes the network's lock, as the node's, and forgets the marker
// when unused says so.
func (f *fakeFirewall) Forget(network string, unused func() (bool, error)) error {
	unlock, err := f.Lock(network)
	if err != nil {
		return err
	}
	defer unlock()
	if ok, err := unused(); err != nil || !ok {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.marked, network)
	f.forgotten = append(f.forgotten, network)
	return nil
}

func (f *fakeFirewall) Lock(network string) (func(), error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.held {
		return nil, errors.New("fake: network lock taken twice")
	}
	f.held = true
	f.locks = append(f.locks, network)
	return func() { f.mu.Lock(); f.held = false; f.mu.Unlock() }, nil
}

// fakeSpoof keeps the MAC spoof checks by attachment.
type fakeSpoof struct {
	mu     sync.Mutex
	calls  []string
	fail   error
	checks map[string]l2.Attachment // by network/containerID/ifName
}

func newFakeSpoof() *fakeSpoof { return &fakeSpoof{checks: map[string]l2.Attachment{}} }

func (f *fakeSpoof) Setup(network, containerID, ifName, hostVeth string, mac net.HardwareAddr) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, "Setup "+containerID+"/"+ifName)
	if f.fail != nil {
		return f.fail
	}
	f.checks[network+"/"+containerID+"/"+ifName] = l2.Attachment{Network: network, ContainerID: containerID, IfName: ifName, HostVeth: hostVeth, MAC: mac}
	return nil
}

func (f *fakeSpoof) Teardown(network, containerID, ifName string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, "Teardown "+containerID+"/"+ifName)
	delete(f.checks, network+"/"+containerID+"/"+ifName)
	return nil
}

func (f *fakeSpoof) TeardownMany(atts []l2.Attachment) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, fmt.Sprintf("TeardownMany %d", len(atts)))
	for _, a := range atts {
		delete(f.checks, a.Network+"/"+a.ContainerID+"/"+a.IfName)
	}
	return nil
}

func (f *fakeSpoof) TeardownWithReference(network, containerID, ifName string) (error, error) {
	return nil, f.Teardown(network, containerID, ifName)
}

func (f *fakeSpoof) Checks(network string) ([]l2.Attachment, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []l2.Attachment
	for _, a := range f.checks {
		if a.Network == network {
			out = append(out, a)
		}
	}
	return out, nil
}

func (f *fakeSpoof) RemoveDeadReference() error { return nil }

// fakeNode is a Deps of fakes.
type fakeNode struct {
	links *fakeLinks
	ipam  *fakeIPAM
	fw    *fakeFirewall
	spoof *fakeSpoof
	deps  *Deps
}

func newFakeNode(netns ...string) *fakeNode {
	n := &fakeNode{links: newFakeLinks(netns...), ipam: newFakeIPAM(), fw: &fakeFirewall{Fake: firewall.NewFake()}, spoof: newFakeSpoof()}
	n.deps = &Deps{Links: n.links, IPAM: n.ipam, Firewall: n.fw, Spoof: n.spoof, Ports: &fakePorts{FakePorts: firewall.NewFakePorts()}}
	return n
}
