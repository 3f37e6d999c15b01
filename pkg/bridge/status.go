package bridge

import (
	"context"

	"github.com/containernetworking/cni/pkg/invoke"
	"github.com/containernetworking/cni/pkg/skel"

	"github.com/flatcni/plugins/pkg/config"
	"github.com/flatcni/plugins/pkg/delegate"
)

// Status (CNI 1.1) is ready when the IPAM plugin is.
func Status(args *skel.CmdArgs) error {
	c, err := config.LoadBridge(args.StdinData, args.Args)
	if err != nil {
		return err
	}
	if !c.IsLayer3() {
		return nil
	}
	if err := invoke.DelegateStatus(context.Background(), c.IPAM.Type, args.StdinData, &delegate.Exec{}); err != nil {
		return ipamError(c, "STATUS", err)
	}
	return nil
}
