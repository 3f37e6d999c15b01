package bridge

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"

	"github.com/flatcni/plugins/pkg/config"
	"github.com/flatcni/plugins/pkg/firewall"
	"github.com/flatcni/plugins/pkg/link"
)

// firewallNetwork describes the network's rules for its subnets.
func firewallNetwork(c *config.Bridge, subnets []netip.Prefix) firewall.Network {
	return withIsolation(c, firewall.Network{
		Name:          c.Name,
		Bridge:        c.BrName,
		Subnets:       subnets,
		NonMasquerade: c.NonMasq,
		Masquerade:    c.IPMasq,
		Forward:       c.IPMasq,
	})
}

// configuredSubnets reads runtimeConfig.ipRanges[*][*].subnet (which
// host-local uses before its own ranges), ipam.subnet and
// ipam.ranges[*][*].subnet, whatever the IPAM plugin; nil when there are none.
func configuredSubnets(stdin []byte) []netip.Prefix {
	type rangeSets [][]struct {
		Subnet string `json:"subnet"`
	}
	var conf struct {
		RuntimeConfig struct {
			IPRanges rangeSets `json:"ipRanges"`
		} `json:"runtimeConfig"`
		IPAM struct {
			Subnet string    `json:"subnet"`
			Ranges rangeSets `json:"ranges"`
		} `json:"ipam"`
	}
	if json.Unmarshal(stdin, &conf) != nil {
		return nil
	}
	var out []netip.Prefix
	add := func(s string) {
		if p, err := netip.ParsePrefix(s); err == nil {
			out = append(out, p.Masked())
		}
	}
	addSets := func(sets rangeSets) {
		for _, set := range sets {
			for _, r := range set {
				add(r.Subnet)
			}
		}
	}
	addSets(conf.RuntimeConfig.IPRanges)
	add(conf.IPAM.Subnet)
	addSets(conf.IPAM.Ranges)
	return out
}

// withFirewall runs fn with the network's backend, under the network's lock.
func withFirewall(c *config.Bridge, fn func(firewall.Backend) error) error {
	fw, err := firewall.New(c.MasqBackend())
	if err != nil {
		return config.Invalid("ipMasqBackend", "%v", err)
	}
	unlock, err := firewall.LockNetwork(firewall.DefaultLockDir, c.Name)
	if err != nil {
		return err
	}
	defer unlock()
	if err := fn(fw); err != nil {
		return fmt.Errorf("%s (%s): %w", firewallKeys(c), fw.Name(), err)
	}
	return nil
}

// ensureFirewall makes sure the network's rules exist. Call it only once the
// container's port is on the bridge (see removeFirewallIfEmpty).
func ensureFirewall(c *config.Bridge, subnets []netip.Prefix) error {
	return withFirewall(c, func(fw firewall.Backend) error {
		return fw.Ensure(firewallNetwork(c, subnets))
	})
}

// removeFirewallIfEmpty removes the network's rules when its bridge has no
// attached port with carrier left (the bridge itself then has no carrier).
// ADD ensures the rules only after its veth is up, under the same lock, so an
// ADD racing with this DEL always ends with the rules in place. Since no
// container is then attached, the reference plugin's per-container rules of
// the network (left on a node switched over in place) are removed as well.
func removeFirewallIfEmpty(c *config.Bridge) error {
	return withFirewall(c, func(fw firewall.Backend) error {
		inUse, err := link.BridgeInUse(c.BrName)
		if err != nil || inUse {
			return err
		}
		if err := fw.Remove(c.Name); err != nil {
			return err
		}
		return errors.Join(removeReferenceRules(c, nil)...)
	})
}

// removeReferenceRules deletes the reference plugin's per-container
// masquerade rules of the network whose container is not in keep, with
// whichever backends this node has. The reference may have used either
// backend; only the configured one's failures are reported (the other may
// not exist on this node).
func removeReferenceRules(c *config.Bridge, keep map[string]bool) []error {
	var errs []error
	for _, name := range []string{firewall.IPTablesName, firewall.NFTablesName} {
		fw, err := firewall.New(name)
		if err != nil {
			continue
		}
		if err := fw.RemoveLegacy(c.Name, keep); err != nil && (c.MasqBackend() == "" || c.MasqBackend() == name) {
			errs = append(errs, fmt.Errorf("remove reference plugin's rules (%s): %w", name, err))
		}
	}
	return errs
}
