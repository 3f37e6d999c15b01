package bridge

import (
	"errors"
	"fmt"
	"os"

	"github.com/containernetworking/cni/pkg/skel"

	"github.com/flatcni/plugins/pkg/bridge/early"
	"github.com/flatcni/plugins/pkg/bridge/hostveth"
	"github.com/flatcni/plugins/pkg/config"
	"github.com/flatcni/plugins/pkg/delegate"
	"github.com/flatcni/plugins/pkg/l2"
	"github.com/flatcni/plugins/pkg/link"
	"github.com/flatcni/plugins/pkg/rtnl"
)

// Del detaches the container: removes its veth (if the netns still exists, or
// a host end that survived it), releases its addresses, its MAC spoof check
// (and the reference plugin's for the same attachment), and the network's
// firewall rules when it was the last attachment.
// Idempotent: whatever is already gone is skipped.
func Del(args *skel.CmdArgs) error {
	c, err := config.LoadBridgeForTeardown(args.StdinData)
	if err != nil {
		return err
	}
	if err := refuseOwnNetns(args.Netns); err != nil {
		return err
	}
	// IPAM DEL, a process of its own, runs while the kernel removes the veth
	// (which waits for an RCU grace period, often the longest step).
	// Both usually started while the plugin initialised (package early).
	ipamErr := make(chan error, 1)
	if c.IsLayer3() {
		ex := &delegate.Exec{}
		if p := early.TakeIPAM(); p != nil {
			ex.Adopt(p) // killed and run anew unless it is the same plugin and environment
		}
		go func() { ipamErr <- ipamDel(c, args.StdinData, ex) }()
	} else {
		ipamErr <- nil
	}
	// Our host end has a name and alias derived from the attachment: deleting
	// it from the node removes the container end too, without entering the
	// container netns. Otherwise (the netns is gone, or the attachment was
	// made by the reference plugin, whose host end has a random name) the
	// container end is deleted from inside the netns.
	var errs []error
	deleted, err, started := early.HostVethDel()
	if !started {
		deleted, err = rtnl.DelLinkWithAlias(hostveth.Name(args.ContainerID, args.IfName), hostveth.Alias(args.ContainerID, args.IfName))
	}
	if err != nil {
		errs = append(errs, err)
	}
	if !deleted && args.Netns != "" {
		if _, _, err := link.DelVeth(args.Netns, args.IfName); err != nil {
			errs = append(errs, err)
		}
	}
	if err := <-ipamErr; err != nil {
		errs = append(errs, err)
	}
	if c.MacSpoofChk {
		// Also the reference plugin's check of this attachment, left on a
		// node switched in place; failing to remove that fails nothing, the
		// reference only prints its own teardown's failures too.
		leftover, err := l2.TeardownMacSpoofCheckWithReference(c.Name, args.ContainerID, args.IfName)
		if err != nil {
			errs = append(errs, fmt.Errorf("macspoofchk: %w", err))
		}
		if leftover != nil {
			fmt.Fprintf(os.Stderr, "macspoofchk: %v\n", leftover)
		}
	}
	// An unknown backend never made rules: ADD rejects it.
	if needsFirewall(c) && c.MasqBackendValid() {
		if err := removeFirewallIfEmpty(c); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}
