package bridge

import (
	"github.com/containernetworking/cni/pkg/skel"

	"github.com/flatcni/plugins/pkg/config"
)

// Status (CNI 1.1) is ready when the IPAM plugin is.
func (d *Deps) Status(args *skel.CmdArgs) error {
	c, err := config.LoadBridge(args.StdinData, args.Args)
	if err != nil {
		return err
	}
	if !c.IsLayer3() {
		return nil
	}
	return d.runIPAM(c, args, "STATUS", IPAMPlugin.Status)
}
