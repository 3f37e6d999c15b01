package bridge

import (
	"errors"
	"fmt"
	"os"

	"github.com/containernetworking/cni/pkg/skel"

	"github.com/flatcni/plugins/pkg/bridge/hostveth"
	"github.com/flatcni/plugins/pkg/config"
	"github.com/flatcni/plugins/pkg/link"
)

// Del detaches the container: removes its veth (if the netns still exists, or
// a host end that survived it), releases its addresses, its MAC spoof check
// (and the reference plugin's for the same attachment), and the network's
// firewall rules when it was the last attachment.
// Idempotent: whatever is already gone is skipped.
func (d *Deps) Del(args *skel.CmdArgs) error {
	c, err := config.LoadBridgeForTeardown(args.StdinData)
	if err != nil {
		return err
	}
	if err := d.refuseOwnNetns(args); err != nil {
		return err
	}
	var errs []error
	waitPorts := d.teardownPorts(c, args).startDel()
	// Our host end has a name and alias derived from the attachment: deleting
	// it from the node removes the container end too, without entering the
	// container netns. Otherwise (the netns is gone, or the attachment was
	// made by the reference plugin, whose host end has a random name) the
	// container end is deleted from inside the netns.
	deleted, err := d.Links.DelLinkWithAlias(hostveth.Name(args.ContainerID, args.IfName), hostveth.Alias(args.ContainerID, args.IfName))
	ifaceLeft := err != nil // the interface may still be there
	if err != nil {
		errs = append(errs, err)
	}
	// A path that is not a network namespace (a FIFO, a file) holds no
	// interface of ours: nothing to delete there.
	foreign := false // the container's interface, not of our making
	if !deleted && args.Netns != "" {
		found, err := d.Links.DelVeth(args.Netns, args.IfName)
		if err != nil && !errors.Is(err, link.ErrNotNetNS) {
			errs = append(errs, err)
			ifaceLeft = true
		} else if found {
			ifaceLeft = false // the pair went from the container's side
		}
		foreign = found
	}
	// IPAM after the interface is gone (as the reference, which once
	// released first: a new container could get the address while the old
	// interface still had it). Not while it may still be there: DEL fails
	// then, and the runtime's next DEL releases.
	if c.IsLayer3() && !ifaceLeft {
		if err := d.runIPAM(c, args, "DEL", IPAMPlugin.Del); err != nil && !noIPAM(err, "DEL") {
			errs = append(errs, err)
		}
	}
	if c.MacSpoofChk {
		// Also the reference plugin's check of this attachment, left on a
		// node switched in place; failing to remove that fails nothing, the
		// reference only prints its own teardown's failures too.
		leftover, err := d.Spoof.TeardownWithReference(c.Name, args.ContainerID, args.IfName)
		if err != nil {
			errs = append(errs, fmt.Errorf("macspoofchk: %w", err))
		}
		if leftover != nil {
			fmt.Fprintf(os.Stderr, "macspoofchk: %v\n", leftover)
		}
	} else {
		// A check made while macspoofchk was on (turned off since): the
		// host veth's name comes from the attachment, so a later ADD of
		// it would be held to the old container's MAC, and its frames
		// dropped. Best effort, as GC removes it too: one netlink
		// request where there is none.
		_ = d.Spoof.Teardown(c.Name, args.ContainerID, args.IfName)
	}
	// The reference plugin's masquerade rules of the container, when the
	// reference attached it (no host veth of ours, an interface in the
	// container): a node switched from it in place. Its own DEL removes
	// them; left, they would masquerade the released address, whoever gets
	// it next and whatever the configuration says then, until the
	// network's last DEL or GC. Looked for only then: an attachment of
	// ours has none, and a DEL that finds no interface (repeated, or its
	// netns gone) leaves them to GC, as the reference's DEL does; the
	// lookup costs netlink dumps, and processes with iptables-legacy.
	if foreign && (c.IPMasq || c.RulesUnknown) && c.IsLayer3() {
		errs = append(errs, d.removeReferenceRulesOf(c, args.ContainerID)...)
	}
	// Without a bridge (a name no link can have) nobody can tell whether
	// the network is still in use: its rules stay for GC.
	rulesGone := false // the network's last rules went: nothing attached
	if needsFirewall(c) && c.HasBridge() {
		removed, err := d.removeFirewallIfUnused(c, args)
		if err != nil {
			errs = append(errs, err)
		}
		rulesGone = removed
	} else if !needsFirewall(c) {
		// Rules made under an earlier configuration that asked for them.
		if err := d.removeUnwantedFirewall(c, false); err != nil {
			errs = append(errs, err)
		}
	}
	portsGone, err := waitPorts()
	if err != nil {
		errs = append(errs, err)
	}
	// The last DEL of a network with rules or published ports: its marker
	// and lock file go too (a network a runtime removes for good, podman
	// network rm, leaves nothing in /run/flatcni). A network without rules
	// whose marker is left (its removal failed) keeps both.
	if len(errs) == 0 && (rulesGone || portsGone && !needsFirewall(c) && !d.Firewall.MayHold(c.Name)) {
		d.forgetIfUnused(c, args)
	}
	return errors.Join(errs...)
}
