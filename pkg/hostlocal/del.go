package hostlocal

import (
	"github.com/containernetworking/cni/pkg/skel"

	"github.com/flatcni/plugins/pkg/config"
	"github.com/flatcni/plugins/pkg/ipam"
)

// Del releases every lease of the attachment. Releasing nothing is not an error.
func Del(args *skel.CmdArgs) error {
	c, err := config.LoadIPAMForTeardown(args.StdinData)
	if err != nil {
		return err
	}
	if !storeExists(c) {
		return nil
	}
	_, err = withStore(c, storeUse{teardown: true}, func(s ipam.Store) ([]byte, error) {
		_, err := s.Release(ipam.Attachment{ContainerID: args.ContainerID, IfName: args.IfName})
		return nil, err
	})
	return err
}
