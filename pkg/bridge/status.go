package bridge

import (
	"errors"
	"fmt"

	"github.com/containernetworking/cni/pkg/skel"
	"github.com/containernetworking/cni/pkg/types"

	"github.com/flatcni/plugins/pkg/config"
	"github.com/flatcni/plugins/pkg/link"
)

// Status (CNI 1.1) is ready when the IPAM plugin is, and the firewall
// backend a network with rules or published ports needs can run (no
// process started to tell); an IPAM plugin not installed, a backend that
// cannot run, or a link of the bridge's name that is no bridge, is "not
// available" (50), as ADD cannot run then.
func (d *Deps) Status(args *skel.CmdArgs) error {
	c, err := config.LoadBridge(args.StdinData, args.Args)
	if err != nil {
		return err
	}
	// A link of the bridge's name that is no bridge fails every ADD.
	if _, err := d.Links.BridgeByName(c.BrName); errors.Is(err, link.ErrNotBridge) {
		return types.NewError(config.ErrPluginNotAvailable, fmt.Sprintf("bridge: %v", err), "")
	}
	_, ports, _ := config.LoadPortMappings(args.StdinData)
	if (needsFirewall(c) || ports) && d.Firewall != nil {
		if err := d.Firewall.Usable(c.MasqBackend()); err != nil {
			keys := "portMappings"
			if needsFirewall(c) {
				keys = firewallKeys(c)
			}
			return types.NewError(config.ErrPluginNotAvailable, fmt.Sprintf("%s: %v", keys, err), "")
		}
	}
	if !c.IsLayer3() {
		return nil
	}
	err = d.runIPAM(c, args, "STATUS", IPAMPlugin.Status)
	var nf *ipamUnusableError
	if errors.As(err, &nf) && nf.missing {
		return types.NewError(config.ErrPluginNotAvailable, nf.cni.Msg, nf.cni.Details)
	}
	return err
}
