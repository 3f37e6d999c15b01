package bridge

import (
	"errors"

	"github.com/containernetworking/cni/pkg/skel"
	"github.com/containernetworking/cni/pkg/types"

	"github.com/flatcni/plugins/pkg/config"
)

// Status (CNI 1.1) is ready when the IPAM plugin is; an IPAM plugin not
// installed is "not available" (50), as ADD cannot run without it.
func (d *Deps) Status(args *skel.CmdArgs) error {
	c, err := config.LoadBridge(args.StdinData, args.Args)
	if err != nil {
		return err
	}
	if !c.IsLayer3() {
		return nil
	}
	err = d.runIPAM(c, args, "STATUS", IPAMPlugin.Status)
	var nf *ipamNotFoundError
	if errors.As(err, &nf) {
		return types.NewError(config.ErrPluginNotAvailable, nf.cni.Msg, nf.cni.Details)
	}
	return err
}
