package bridge

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"slices"

	"github.com/containernetworking/cni/pkg/skel"
	"github.com/containernetworking/cni/pkg/types"

	"github.com/flatcni/plugins/pkg/config"
	"github.com/flatcni/plugins/pkg/firewall"
	"github.com/flatcni/plugins/pkg/hostlocal"
	"github.com/flatcni/plugins/pkg/link"
)

// Ports gives the port-publishing backends (package firewall, ports*.go)
// and the one node setting they need.
type Ports interface {
	// Backend returns the publisher of backend name ("" for the default);
	// for teardown (DEL, GC), one that goes on without a lock it cannot
	// have. unguard, if not nil, is called before a removal takes the
	// network's drop of packets to 127.0.0.0/8 away (firewall.WithUnguard).
	Backend(name string, teardown bool, unguard func(backend string) error) (firewall.Ports, error)
	// RouteLocalnet lets the node route 127.0.0.0/8 out of the bridge;
	// NoRouteLocalnet turns that off again.
	RouteLocalnet(bridge string) error
	NoRouteLocalnet(bridge string) error
	// Holder returns the backend holding the network's port rule set, ""
	// if none or unknown (firewall.PortsHolder).
	Holder(network string) string
	// Indexed reports whether ports may have been published on the node
	// (indexed: a backend keeps a claims index for it) and whether the
	// index records an attachment of the network (recorded: it also sees
	// iptables-legacy's mappings, which Holder does not);
	// firewall.PortsIndexed: a few stats, no netlink.
	Indexed(network string) (indexed, recorded bool)
	// ReferencePortmapSeen reports whether netlink shows rules of the
	// reference portmap on the node (firewall.ReferencePortmapSeen: one
	// dump); RemoveReferencePortmap removes those sel chooses, with
	// commands also from iptables-legacy (firewall.RemoveReferencePortmap).
	ReferencePortmapSeen() bool
	RemoveReferencePortmap(sel firewall.PortmapSelection, commands bool) error
}

// nodePorts is Ports with package firewall's backends.
type nodePorts struct{}

func (nodePorts) Backend(name string, teardown bool, unguard func(backend string) error) (firewall.Ports, error) {
	opts := []firewall.Option{firewall.WithUnguard(unguard)}
	if teardown {
		opts = append(opts, firewall.WithBestEffortLock())
	}
	return firewall.NewPorts(name, opts...)
}
func (nodePorts) RouteLocalnet(bridge string) error { return link.EnableRouteLocalnet(bridge) }
func (nodePorts) Holder(network string) string      { return firewall.PortsHolder(network) }
func (nodePorts) ReferencePortmapSeen() bool        { return firewall.ReferencePortmapSeen() }
func (nodePorts) RemoveReferencePortmap(sel firewall.PortmapSelection, commands bool) error {
	return firewall.RemoveReferencePortmap(sel, commands)
}
func (nodePorts) Indexed(network string) (bool, bool) {
	return firewall.PortsIndexed(firewall.DefaultLockDir, network)
}
func (nodePorts) NoRouteLocalnet(bridge string) error {
	return link.DisableRouteLocalnet(bridge)
}

// ports publishes an attachment's runtimeConfig.portMappings (when the
// bridge entry declares the portMappings capability), one rule set per
// network. The rule set records which attachment owns which mapping, so
// DEL and GC need nothing else.
type ports struct {
	d       *Deps
	c       *config.Bridge
	args    *skel.CmdArgs
	owner   firewall.Attachment
	maps    []config.PortMapping
	enabled bool
	// teardown: DEL or GC, which go on without locks they cannot have.
	teardown bool
}

// loadPorts parses and validates the mappings; nothing on the node changes.
func (d *Deps) loadPorts(c *config.Bridge, args *skel.CmdArgs) (*ports, error) {
	maps, enabled, err := config.LoadPortMappings(args.StdinData)
	if err != nil {
		return nil, err
	}
	if len(maps) > 0 && !c.IsLayer3() {
		return nil, config.Invalid("runtimeConfig.portMappings", "publishing ports needs container addresses: set ipam.type")
	}
	if len(maps) > 0 && c.Vlan != 0 {
		// As for isolation: the rules (and route_localnet) name the
		// bridge, not the VLAN's gateway pair the traffic goes through.
		return nil, config.Invalid("vlan", "%d cannot be combined with runtimeConfig.portMappings: the network's gateway is then %s.%d, not the bridge the rules name", c.Vlan, c.BrName, c.Vlan)
	}
	return d.newPorts(c, args, maps, enabled), nil
}

// teardownPorts is loadPorts for DEL and GC: invalid mappings do not stop
// the removal of what an earlier ADD published.
func (d *Deps) teardownPorts(c *config.Bridge, args *skel.CmdArgs) *ports {
	_, enabled, _ := config.LoadPortMappings(args.StdinData)
	p := d.newPorts(c, args, nil, enabled)
	p.teardown = true
	return p
}

func (d *Deps) newPorts(c *config.Bridge, args *skel.CmdArgs, maps []config.PortMapping, enabled bool) *ports {
	return &ports{d: d, c: c, args: args, owner: firewall.Attachment{ContainerID: args.ContainerID, IfName: args.IfName}, maps: maps, enabled: enabled}
}

// errNoPorts is returned when Deps has no Ports (DEL and GC then skip).
var errNoPorts = errors.New("portMappings: port publishing is not available")

// backend returns the configured publisher.
func (p *ports) backend() (firewall.Ports, error) {
	if p.d.Ports == nil {
		return nil, errNoPorts
	}
	name := p.c.MasqBackend()
	if name == "" {
		name = p.d.Ports.Holder(p.c.Name) // see firewall.Holder
	}
	fw, err := p.d.Ports.Backend(name, p.teardown, p.unguard())
	if err != nil {
		return nil, config.Invalid("ipMasqBackend", "%v", err)
	}
	return fw, nil
}

// unguard turns route_localnet off on the bridge; the backend calls it
// before a removal takes the network's rule set, and with it the drop of
// packets to 127.0.0.0/8, away, or once it finds them gone without us (a
// firewall reload): the setting would otherwise let what is
// still, or later, attached to the bridge reach the node's loopback
// services (docs/ports.md). Decided by the backend from its rules, not
// from the request (a runtime that strips capabilities sends GC none):
// where no rule set of ours is (the reference portmap's network), nothing
// is touched. Without a usable bridge name, nil: nothing to turn off.
// Nor while another rule set than the one going holds a drop and needs
// route_localnet on this bridge (it goes off with that one's drop):
// another network's on the same bridge (two configurations may name one
// bridge, "cni0" by default), or this network's in another backend (its
// ipMasqBackend changed: a rule set in each).
func (p *ports) unguard() func(self string) error {
	if !p.c.HasBridge() {
		return nil
	}
	br := p.c.BrName
	return func(self string) error {
		for _, name := range firewall.Names("") {
			o, err := p.d.Ports.Backend(name, true, nil)
			if err != nil {
				continue
			}
			for net, b := range o.Guarding() {
				going := net == p.c.Name && o.Name() == self
				// A rule set written before the bridge was recorded:
				// this network's is taken to be on this bridge.
				if !going && (b == br || b == "" && net == p.c.Name) {
					return nil
				}
			}
		}
		if err := p.d.Ports.NoRouteLocalnet(br); err != nil {
			return fmt.Errorf("turn route_localnet off on %s: %w", br, err)
		}
		return nil
	}
}

// alsoOthers runs fn with fw, then with each other port backend that
// holds a rule set of the network (Holds: netlink only, no process) or
// whose claims index records it (Recorded: a rule set netlink does not
// show, or one gone without us, whose route_localnet is to go): a
// network whose ipMasqBackend changed between ADDs has mappings in both,
// and a mapping left behind would forward its host port to whichever
// container gets the address next. With always (GC), also with the other
// backends that seem to hold nothing, their errors not reported (the
// backend may not exist on the node): iptables-legacy's rules are not seen
// through netlink.
func (p *ports) alsoOthers(fw firewall.Ports, always bool, fn func(firewall.Ports) error) error {
	errs := []error{fn(fw)}
	for _, name := range firewall.Names(fw.Name()) {
		o, err := p.d.Ports.Backend(name, true, p.unguard())
		if err != nil || o.Name() == fw.Name() {
			continue
		}
		if !o.Holds(p.c.Name) {
			// Best effort: a backend netlink shows nothing of may be
			// gone from the node (iptables uninstalled since); its
			// failure must not fail the DEL for ever.
			if always || o.Recorded(p.c.Name) {
				if err := fn(o); err != nil && !always {
					fmt.Fprintf(os.Stderr, "portMappings (%s): network %q: %v\n", o.Name(), p.c.Name, err)
				}
			}
			continue
		}
		if err := fn(o); err != nil {
			errs = append(errs, fmt.Errorf("portMappings (%s): %w", o.Name(), err))
		}
	}
	return errors.Join(errs...)
}

// with runs fn with the backend under the network's lock (the one the
// masquerade rules use: the last DEL's removal never interleaves with an ADD).
func (p *ports) with(fn func(firewall.Ports) error) error {
	fw, err := p.backend()
	if err != nil {
		return err
	}
	unlock, err := p.d.firewallFor(p.teardown).Lock(p.c.Name)
	if err != nil {
		return err
	}
	defer unlock()
	return p.portsError(fw, fn(fw))
}

// portsError names the backend in err, and the network in a conflict,
// which is a CNI error of code 11 (try again later), as a requested
// address in use is: the port is free again once its holder goes.
func (p *ports) portsError(fw firewall.Ports, err error) error {
	if err == nil {
		return nil
	}
	var ce *firewall.PortConflictError
	if errors.As(err, &ce) {
		return types.NewError(types.ErrTryAgainLater, fmt.Sprintf("portMappings (%s): network %q: %v", fw.Name(), p.c.Name, err), "")
	}
	return fmt.Errorf("portMappings (%s): %w", fw.Name(), err)
}

// hairpin reports whether the container's port needs hairpin mode: with
// br_netfilter, a packet of the container to its own published port is
// DNAT'd at the bridge and bridged back out of the port it came in on,
// which a bridge does only in hairpin mode. Not with promiscMode (which
// the configuration cannot combine with hairpinMode either).
func (p *ports) hairpin() bool {
	return len(p.maps) > 0 && !p.c.PromiscMode
}

// firewallMappings returns the mappings of each family the container has an
// address in (its first address of the family); a mapping whose hostIP is of
// a family the container has no address in is an error naming the entry.
func (p *ports) firewallMappings(addrs []netip.Prefix) ([]firewall.Mapping, error) {
	out, missing := p.mappingsOn(addrs)
	if missing >= 0 {
		return nil, config.Invalid(fmt.Sprintf("runtimeConfig.portMappings[%d].hostIP", missing),
			"%s: the container has no address of that family", p.maps[missing].HostIP)
	}
	return out, nil
}

// mappingsOn returns the mappings on addrs, and the index of the first
// entry that applies to none of them (-1 if none).
func (p *ports) mappingsOn(addrs []netip.Prefix) ([]firewall.Mapping, int) {
	var first [2]netip.Addr // IPv4, IPv6
	for _, a := range addrs {
		i := 0
		if !a.Addr().Is4() {
			i = 1
		}
		if !first[i].IsValid() {
			first[i] = a.Addr()
		}
	}
	var out []firewall.Mapping
	missing := -1
	for i, m := range p.maps {
		n := 0
		for fi, cip := range first {
			if !cip.IsValid() || !m.Applies(fi == 0) {
				continue
			}
			fm := firewall.Mapping{Protocol: m.Protocol, HostPort: m.HostPort, ContainerIP: cip, ContainerPort: m.ContainerPort}
			if !m.Wildcard() {
				fm.HostIP = m.HostIP
			}
			if !slices.Contains(out, fm) { // entries that agree: once
				out = append(out, fm)
			}
			n++
		}
		if n == 0 && missing < 0 {
			missing = i
		}
	}
	return out, missing
}

// precheck fails ADD, before the node changes, when a requested host port
// is published by another attachment. The families are those of
// host-local's ranges, or both when IPAM does not say. It reads only the
// claims of the wanted host ports (firewall's claims index; the rules
// confirm a conflict). Publish checks again under the lock (a racing ADD
// can still win; this ADD is then undone).
func (p *ports) precheck() error {
	if len(p.maps) == 0 {
		return nil
	}
	var addrs []netip.Prefix
	if p.c.IPAM.Type == "host-local" {
		subnets, _ := hostlocal.Subnets(p.args)
		for _, s := range subnets {
			addrs = append(addrs, netip.PrefixFrom(s.Addr(), s.Addr().BitLen()))
		}
	}
	known := len(addrs) > 0
	if !known {
		// The container's families are not known before IPAM answers:
		// only the mappings a hostIP ties to one family are checked now
		// (a mapping without one applies only to the families the
		// container gets), the others once published (Publish checks
		// under the lock, and ADD is undone).
		q := *p
		q.maps = slices.DeleteFunc(slices.Clone(p.maps), func(m config.PortMapping) bool { return !m.HostIP.IsValid() })
		if len(q.maps) == 0 {
			return nil
		}
		p = &q
		addrs = []netip.Prefix{netip.MustParsePrefix("0.0.0.0/32"), netip.MustParsePrefix("::/128")}
	}
	want, missing := p.mappingsOn(addrs)
	if known && missing >= 0 {
		_, err := p.firewallMappings(addrs) // names the entry
		return err
	}
	fw, err := p.backend()
	if err != nil {
		return err
	}
	return p.portsError(fw, fw.Conflict(p.c.Name, p.owner, want))
}

// publish publishes the mappings on the container's addresses. subnets
// are the network's (those of the configured ranges when IPAM tells them),
// which the rule set's fixed rules are written for: the same for every
// container of the network, whatever range its address is in.
func (p *ports) publish(addrs, subnets []netip.Prefix) error {
	if len(p.maps) == 0 {
		// An ADD that publishes nothing on a network that may: puts back
		// what a DROP policy set since needs (Refresh), as ADD does for the
		// masquerade rules.
		if !p.enabled || p.d.Ports == nil || len(addrs) == 0 {
			return nil
		}
		// Best effort: this ADD publishes nothing, and fails for nothing.
		n := firewall.PortNetwork{Name: p.c.Name, Bridge: p.c.BrName, Subnets: subnets}
		if err := p.with(func(fw firewall.Ports) error { return fw.Refresh(n) }); err != nil {
			fmt.Fprintf(os.Stderr, "portMappings: network %q: %v\n", p.c.Name, err)
		}
		return nil
	}
	maps, err := p.firewallMappings(addrs)
	if err != nil {
		return err
	}
	if p.d.Ports == nil {
		return errNoPorts
	}
	n := firewall.PortNetwork{Name: p.c.Name, Bridge: p.c.BrName, Subnets: subnets}
	// route_localnet once the rule set (with its drop of packets to
	// 127.0.0.0/8 from other interfaces) is there, under the network's
	// lock: a DEL or GC that removes the rule set turns it off under the
	// same lock.
	return p.with(func(fw firewall.Ports) error {
		if err := fw.Publish(n, p.owner, maps); err != nil {
			return err
		}
		if slices.ContainsFunc(maps, func(m firewall.Mapping) bool { return m.ContainerIP.Is4() }) {
			return p.d.Ports.RouteLocalnet(p.c.BrName)
		}
		return nil
	})
}

// unpublish removes the attachment's mappings (ADD's undo).
func (p *ports) unpublish() error {
	if len(p.maps) == 0 {
		return nil
	}
	return p.with(func(fw firewall.Ports) error { return fw.Unpublish(p.c.Name, p.owner) })
}

// startDel starts removing the attachment's mappings on DEL, while the
// veth goes (both wait for the kernel: an RCU grace period each). Only the
// attachment's own mappings go, which needs the node-wide ports lock of the
// backend but not the network's lock (DEL's other steps take that one
// meanwhile). The returned function waits for it, then, under the
// network's lock, when no container is left on the bridge, removes
// everything the network published (also for attachments gone without
// DEL) with its rule set, and reports whether it did. Without the
// capability in DEL's configuration, the same when the claims index
// records an attachment of the network (Indexed: a few stats; it also sees
// iptables-legacy's mappings) or a backend holds the network's rule set
// (Holder: netlink only, no process): the capability may have gone since
// ADD (a chained portmap took over), and a mapping left would forward its
// host port to the released address and keep it claimed until a GC, which
// some runtimes never call. On a node where no port was ever published (no
// index) nothing is asked.
func (p *ports) startDel() (wait func() (emptied bool, err error)) {
	noop := func() (bool, error) { return false, nil }
	if p.d.Ports == nil {
		return noop
	}
	if !p.enabled {
		indexed, recorded := p.d.Ports.Indexed(p.c.Name)
		if !indexed || !recorded && p.d.Ports.Holder(p.c.Name) == "" {
			return noop
		}
	}
	done := make(chan error, 1)
	go func() {
		fw, err := p.backend()
		if err == nil {
			err = p.alsoOthers(fw, false, func(fw firewall.Ports) error { return fw.Unpublish(p.c.Name, p.owner) })
			if err != nil {
				err = fmt.Errorf("portMappings (%s): network %q: %w", fw.Name(), p.c.Name, err)
			}
		}
		if rerr := p.removeReferencePortmapOf(); rerr != nil {
			err = errors.Join(err, fmt.Errorf("portMappings: %w", rerr))
		}
		done <- err
	}()
	return func() (emptied bool, err error) {
		err = <-done
		err = errors.Join(err, p.with(func(fw firewall.Ports) error {
			if !p.c.HasBridge() {
				return nil // nobody can tell whether the network is in use: GC's
			}
			inUse, err := p.d.Links.BridgeHasContainers(p.c.BrName)
			if err == nil && !inUse {
				err = p.alsoOthers(fw, false, func(fw firewall.Ports) error { return fw.Retain(p.c.Name, nil) })
				emptied = err == nil
			}
			return err
		}))
		return emptied && err == nil, err
	}
}

// gc keeps the mappings of valid attachments only, in every backend.
func (p *ports) gc(valid func(containerID, ifname string) bool) error {
	if p.d.Ports == nil {
		return nil
	}
	keep := func(a firewall.Attachment) bool { return valid(a.ContainerID, a.IfName) }
	retain := func(fw firewall.Ports) error { return fw.Retain(p.c.Name, keep) }
	if p.c.MasqBackend() != "" || p.d.Ports.Holder(p.c.Name) != "" {
		return p.with(func(fw firewall.Ports) error { return p.alsoOthers(fw, true, retain) })
	}
	// No backend named and none holding the network's rule set: every
	// backend is asked all the same (iptables-legacy's rules are not seen
	// through netlink), and the default backend, whose choice starts
	// iptables twice, is chosen only to tell whose failure to report.
	unlock, err := p.d.firewallFor(true).Lock(p.c.Name)
	if err != nil {
		return err
	}
	defer unlock()
	get := func(name string) (firewall.Ports, error) { return p.d.Ports.Backend(name, true, p.unguard()) }
	fw, err := onEveryBackend(get, retain, p.backend)
	if fw == nil {
		return err
	}
	return p.portsError(fw, err)
}

// check verifies that exactly the attachment's mappings are published.
func (p *ports) check(addrs []netip.Prefix) error {
	if !p.enabled {
		return nil
	}
	want, err := p.firewallMappings(addrs)
	if err != nil {
		return err
	}
	fw, err := p.backend()
	if err != nil {
		return err
	}
	all, err := fw.List()
	if err != nil {
		return fmt.Errorf("portMappings (%s): %w", fw.Name(), err)
	}
	var have []firewall.Mapping
	for _, pub := range all {
		if pub.Network == p.c.Name && pub.Owner == p.owner {
			have = append(have, pub.Mapping)
		}
	}
	for _, m := range want {
		if !slices.Contains(have, m) {
			return fmt.Errorf("portMappings (%s): network %q: %s of %v is not published", fw.Name(), p.c.Name, m, p.owner)
		}
	}
	for _, m := range have {
		if !slices.Contains(want, m) {
			return fmt.Errorf("portMappings (%s): network %q: %s of %v is published, and runtimeConfig.portMappings does not ask for it", fw.Name(), p.c.Name, m, p.owner)
		}
	}
	if len(have) != len(want) {
		return fmt.Errorf("portMappings (%s): network %q: %v has %d published mappings for the %d asked for: some are published twice", fw.Name(), p.c.Name, p.owner, len(have), len(want))
	}
	return nil
}

// referencePortmapSelection chooses the reference portmap's rules of the
// network (see firewall.RemoveReferencePortmap) with its subnets when
// host-local tells them (without, its nftables rules, which name no
// network, stay).
func (p *ports) referencePortmapSelection(containerID string) firewall.PortmapSelection {
	sel := firewall.PortmapSelection{Network: p.c.Name, ContainerID: containerID}
	if p.c.IPAM.Type == "host-local" {
		sel.Subnets, _ = hostlocal.Subnets(p.args)
	}
	return sel
}

// removeReferencePortmapOf removes the reference portmap's rules of the
// attachment on DEL: left on a node whose conflist chained portmap at ADD
// and since publishes with our bridge (the capability in DEL's
// configuration), they would forward the host ports, before our rules, to
// the released address (docs/migration.md). Only then, and only when
// netlink shows portmap's rules on the node (one dump): a DEL without the
// capability pays nothing, and one with it a dump on nodes without them,
// made while the veth goes (startDel). By netlink only: iptables-legacy's
// are GC's.
func (p *ports) removeReferencePortmapOf() error {
	if p.d.Ports == nil || !p.enabled || !p.c.IsLayer3() || !p.d.Ports.ReferencePortmapSeen() {
		return nil
	}
	return p.d.Ports.RemoveReferencePortmap(p.referencePortmapSelection(p.owner.ContainerID), false)
}

// removeReferencePortmap removes, on GC, the reference portmap's iptables
// rules of the network's containers not in keep (GC is no hot path: also
// iptables-legacy's, with commands). Its nftables rules name a container
// but no network, and the valid attachments are this network's only: a
// container of another network still chaining portmap, whose address is in
// an overlapping subnet, would look gone. So they stay; DEL, which names
// the container, removes them.
func (p *ports) removeReferencePortmap(keep map[string]bool) error {
	if p.d.Ports == nil || !p.c.IsLayer3() {
		return nil
	}
	sel := firewall.PortmapSelection{Network: p.c.Name, Keep: keep}
	return p.d.Ports.RemoveReferencePortmap(sel, true)
}
