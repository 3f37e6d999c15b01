package bridge

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"slices"

	"github.com/containernetworking/cni/pkg/skel"

	"github.com/flatcni/plugins/pkg/config"
	"github.com/flatcni/plugins/pkg/firewall"
)

// firewallNetwork describes the network's rules for its subnets. The
// forward accepts (what comes from the bridge, and the replies to it) go
// with masquerading, and with internal: its containers' bridged traffic
// meets the FORWARD chains with br_netfilter, whose DROP policy would
// keep them from each other; its isolation, earlier in the path, keeps
// everything else from leaving the bridge.
func firewallNetwork(c *config.Bridge, subnets []netip.Prefix) firewall.Network {
	return withIsolation(c, firewall.Network{
		Name:          c.Name,
		Bridge:        c.BrName,
		Subnets:       subnets,
		NonMasquerade: c.NonMasq,
		Masquerade:    c.IPMasq,
		Forward:       c.IPMasq || c.Internal,
	})
}

// withFirewall runs fn with the network's backend, under the network's lock.
// For teardown (DEL, GC, undoing an ADD) the Firewall's teardown variant is
// used when it has one: the node's goes on without a lock it cannot have.
func (d *Deps) withFirewall(c *config.Bridge, teardown bool, fn func(firewall.Backend) error) error {
	fwd := d.firewallFor(teardown)
	name := c.MasqBackend()
	if name == "" {
		// The backend the network's rules are in, without starting
		// iptables to choose the default again (firewall.Holder).
		name = fwd.Holder(c.Name)
	}
	fw, err := fwd.Backend(name)
	if err != nil {
		return config.Invalid("ipMasqBackend", "%v", err)
	}
	unlock, err := fwd.Lock(c.Name)
	if err != nil {
		return err
	}
	defer unlock()
	if err := fn(fw); err != nil {
		return fmt.Errorf("%s (%s): %w", firewallKeys(c), fw.Name(), err)
	}
	return nil
}

// firewallFor returns the Firewall, or its teardown variant (when it has one)
// for DEL, GC and undoing an ADD.
func (d *Deps) firewallFor(teardown bool) Firewall {
	if t, ok := d.Firewall.(teardownFirewall); ok && teardown {
		return t.ForTeardown()
	}
	return d.Firewall
}

// ensureFirewall makes sure the network's rules exist. Call it only once the
// container's port is on the bridge (see removeFirewallIfUnused). When it
// wrote them (the network's first ADD, or its first after a change), the
// other backend's rules of the network go: after an ipMasqBackend switch
// they would otherwise keep applying the old configuration to the whole
// subnet until the last DEL. Before it, under the lock, it marks the
// network as one that may hold rules (SetMayHold, see
// removeUnwantedFirewall) unless it is marked already (a stat): a plugin
// killed while writing leaves the marker (costing a later configuration
// without rules a look), never rules without it, and rules found in place
// without one (written by a version that made no markers, or before a
// marking failed) get one.
func (d *Deps) ensureFirewall(c *config.Bridge, subnets []netip.Prefix) error {
	return d.withFirewall(c, false, func(fw firewall.Backend) error {
		if !d.Firewall.MayHold(c.Name) {
			if err := d.Firewall.SetMayHold(c.Name, true); err != nil {
				// Only a later configuration without rules misses
				// it, and GC removes them all the same.
				fmt.Fprintf(os.Stderr, "%s: %v\n", firewallKeys(c), err)
			}
		}
		changed, err := fw.Sync(firewallNetwork(c, subnets))
		if err == nil && changed {
			d.removeFromOtherBackends(c, fw.Name(), false)
		}
		return err
	})
}

// removeFirewallIfUnused removes the network's rules when no container of
// it is left (networkInUse: ports that are no container's, as an uplink,
// do not keep them), and reports whether it removed them from every backend that
// showed some (the network may then be forgotten: forgetIfUnused).
// ADD ensures the rules only after its veth is up, under the same lock, so an
// ADD racing with this DEL always ends with the rules in place. Since no
// container is then attached, the reference plugin's per-container rules of
// the network (left on a node switched over in place) are removed as well.
func (d *Deps) removeFirewallIfUnused(c *config.Bridge, args *skel.CmdArgs) (removed bool, err error) {
	err = d.withFirewall(c, true, func(fw firewall.Backend) error {
		inUse, err := d.networkInUse(c, args)
		if err != nil || inUse {
			return err
		}
		if err := fw.Remove(c.Name); err != nil {
			return err
		}
		removed = d.removeFromOtherBackends(c, fw.Name(), false)
		return errors.Join(d.removeReferenceRules(c, nil)...)
	})
	return removed && err == nil, err
}

// networkInUse reports whether a container of the network may be left: one
// on its bridge, unless the network's IPAM (host-local in-process) holds no
// address: the bridge may carry another network's containers (two networks
// naming one bridge), which keep nothing of this network. A plugin run by
// exec cannot tell: the bridge answers.
func (d *Deps) networkInUse(c *config.Bridge, args *skel.CmdArgs) (bool, error) {
	inUse, err := d.Links.BridgeHasContainers(c.BrName)
	if err != nil || !inUse || !c.IsLayer3() || c.IPAMPluginName() != nil {
		return inUse, err
	}
	p, err := d.IPAM.Plugin(c, args.Path)
	if err != nil || !p.Local() {
		return true, nil
	}
	held, known := p.HoldsLeases(args)
	return held || !known, nil
}

// forgetIfUnused removes the network's marker and lock file when no
// container of it is left (networkInUse, Firewall.Forget): the last DEL, whose
// rules and published ports went, leaves nothing of the network in
// /run/flatcni. Only printed if it fails: the verb succeeded.
func (d *Deps) forgetIfUnused(c *config.Bridge, args *skel.CmdArgs) {
	err := d.Firewall.Forget(c.Name, func() (bool, error) {
		inUse, err := d.networkInUse(c, args)
		return err == nil && !inUse, err
	})
	if err != nil {
		fmt.Fprintf(os.Stderr, "network %q: left in place: %v\n", c.Name, err)
	}
}

// removeUnwantedFirewall removes the network's rules from every backend
// that holds them when its configuration asks for none: ipMasq, or the
// isolation keys of a network without ipMasq, turned off while containers
// were attached. The rules are the network's, for all of its containers,
// and follow its configuration in force at its next ADD or DEL (as a
// changed nonMasqueradeCIDRs does); otherwise a container added since
// would be masqueraded (or isolated) against it, and since the last DEL
// and GC only remove the rules of a network that asks for them, they would
// stay for ever. ADD and DEL look only when the network may have rules
// (MayHold: a marker ensureFirewall makes before it may write them, and
// this removes once they are gone): any other network without rules, one
// that publishes ports only among them, costs a stat; they then ask each
// backend (netlink). GC of a marked network removes from every backend
// without asking, also what netlink does not show (iptables-legacy), and
// reports only the configured backend's failures (the others may not exist
// on the node); of one without the marker, it asks (rules of a version
// that made no markers). It starts no process to choose a default backend.
func (d *Deps) removeUnwantedFirewall(c *config.Bridge, gc bool) error {
	if !c.MasqBackendValid() {
		return nil
	}
	marked := d.Firewall.MayHold(c.Name)
	if !marked && !gc {
		return nil
	}
	always := gc && marked
	fwd := d.firewallFor(true)
	holds := func(fw firewall.Backend) bool { return always || fw.Holds(c.Name) }
	if !marked && !slices.ContainsFunc(firewall.Names(""), func(name string) bool {
		fw, err := fwd.Backend(name)
		return err == nil && holds(fw)
	}) {
		return nil
	}
	unlock, err := fwd.Lock(c.Name)
	if err != nil {
		return err
	}
	defer unlock()
	var errs []error
	for _, name := range firewall.Names("") {
		fw, err := fwd.Backend(name)
		if err != nil || !holds(fw) {
			continue
		}
		if err := fw.Remove(c.Name); err != nil && (!always || c.MasqBackend() == name) {
			errs = append(errs, fmt.Errorf("network %q asks for no masquerade or isolation rules: remove its %s rules: %w", c.Name, fw.Name(), err))
		}
	}
	if len(errs) == 0 && marked {
		// A marker left costs the next ADD or DEL a look, nothing more:
		// the verb that removed the rules succeeds (DEL and GC get
		// through an unusable /run/flatcni).
		if err := fwd.SetMayHold(c.Name, false); err != nil {
			fmt.Fprintf(os.Stderr, "no rules left, marker kept: %v\n", err)
		}
	}
	return errors.Join(errs...)
}

// removeFromOtherBackends removes the network's rules from the backends
// other than the one in force: a network whose ipMasqBackend changed between
// ADDs has rules in both (the reference's DEL also tears down both
// backends). The other backend may not exist on this node, so its failures
// are not reported, only whether every removal tried succeeded. ADD and
// DEL look first, through netlink (Holds:
// removing from iptables-legacy starts several processes, ~100 ms, for what
// is rarely there); GC (always) also finds rules of iptables-legacy, which
// netlink does not show. Call it under the network's lock. Not ok either
// when the iptables backend was not asked but the node has iptables-legacy
// tables: its rules may be there unseen, and the network's marker must
// stay for GC (forgetIfUnused).
func (d *Deps) removeFromOtherBackends(c *config.Bridge, inForce string, always bool) (ok bool) {
	ok = true
	for _, name := range firewall.Names(inForce) {
		// (A backend that turns out to be the one in force is skipped.)
		fw, err := d.firewallFor(true).Backend(name)
		if err != nil || fw.Name() == inForce {
			continue
		}
		switch {
		case always || fw.Holds(c.Name):
			ok = fw.Remove(c.Name) == nil && ok
		case name == firewall.IPTablesName && d.Firewall.LegacyIPTables():
			ok = false
		}
	}
	return ok
}

// removeReferenceRulesOf deletes the reference plugin's per-container
// masquerade rules of one container of the network, as removeReferenceRules.
func (d *Deps) removeReferenceRulesOf(c *config.Bridge, containerID string) []error {
	return d.withReferenceBackends(c, fmt.Sprintf(" of container %q", containerID), func(fw firewall.Backend) error {
		return fw.RemoveLegacyOf(c.Name, containerID)
	})
}

// removeReferenceRules deletes the reference plugin's per-container
// masquerade rules of the network whose container is not in keep.
func (d *Deps) removeReferenceRules(c *config.Bridge, keep map[string]bool) []error {
	return d.withReferenceBackends(c, "", func(fw firewall.Backend) error {
		return fw.RemoveLegacy(c.Name, keep)
	})
}

// withReferenceBackends runs remove with whichever backends this node has.
// The reference may have used either backend; only the configured one's
// failures are reported (the other may not exist on this node), named
// with whose rules (of) they are.
func (d *Deps) withReferenceBackends(c *config.Bridge, of string, remove func(firewall.Backend) error) []error {
	var errs []error
	for _, name := range firewall.Names("") {
		fw, err := d.Firewall.Backend(name)
		if err != nil {
			continue
		}
		if err := remove(fw); err != nil && (c.MasqBackend() == "" || c.MasqBackend() == name) {
			errs = append(errs, fmt.Errorf("remove reference plugin's rules%s (%s): %w", of, name, err))
		}
	}
	return errs
}
