package hostlocal

import (
	"errors"
	"slices"

	"github.com/containernetworking/cni/pkg/skel"

	"github.com/flatcni/plugins/pkg/config"
	"github.com/flatcni/plugins/pkg/ipam"
)

// GC releases every lease of the network whose attachment is not in
// cni.dev/valid-attachments (CNI 1.1).
func GC(args *skel.CmdArgs) error {
	c, err := config.LoadIPAMForTeardown(args.StdinData)
	if err != nil {
		return err
	}
	valid, err := ValidAttachments(args.StdinData)
	if err != nil {
		return err
	}
	if !storeExists(c) {
		return nil
	}
	_, err = withStore(c, storeUse{teardown: true}, func(s ipam.Store) ([]byte, error) {
		return nil, Collect(s, valid)
	})
	return err
}

// Stale returns the attachments holding a lease of the network that GC
// releases (not in cni.dev/valid-attachments) and that have an interface
// name (a lease from old releases of the reference names only the
// container). The bridge's GC removes their host veths first, as DEL
// removes the interface before releasing.
func Stale(args *skel.CmdArgs) ([]ipam.Attachment, error) {
	c, err := config.LoadIPAMForTeardown(args.StdinData)
	if err != nil {
		return nil, err
	}
	valid, err := ValidAttachments(args.StdinData)
	if err != nil {
		return nil, err
	}
	if !storeExists(c) {
		return nil, nil
	}
	return withStore(c, storeUse{teardown: true}, func(s ipam.Store) ([]ipam.Attachment, error) {
		leases, err := s.All()
		if err != nil {
			return nil, err
		}
		out := stale(leases, valid)
		return slices.DeleteFunc(out, func(a ipam.Attachment) bool { return a.IfName == "" }), nil
	})
}

// Collect releases the leases of every attachment not in valid.
func Collect(s ipam.Store, valid map[ipam.Attachment]bool) error {
	leases, err := s.All()
	if err != nil {
		return err
	}
	// A lease that cannot be released (its error names it) does not keep
	// the others: GC goes on and reports every failure.
	var errs []error
	for _, a := range stale(leases, valid) {
		if _, err := s.Release(a); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// stale returns, once each, the attachments of leases that are not in
// valid. A lease from old releases of the reference, which names only the
// container, is kept when any attachment of that container is valid.
func stale(leases []ipam.Lease, valid map[ipam.Attachment]bool) []ipam.Attachment {
	validIDs := map[string]bool{}
	for a := range valid {
		validIDs[a.ContainerID] = true
	}
	var out []ipam.Attachment
	seen := map[ipam.Attachment]bool{}
	for _, l := range leases {
		if valid[l.Attachment] || (l.IfName == "" && validIDs[l.ContainerID]) || seen[l.Attachment] {
			continue
		}
		seen[l.Attachment] = true
		out = append(out, l.Attachment)
	}
	return out
}

// ValidAttachments reads the valid attachments of a GC request
// (config.ValidAttachments: either key).
func ValidAttachments(stdin []byte) (map[ipam.Attachment]bool, error) {
	valid, err := config.ValidAttachments(stdin)
	if err != nil {
		return nil, err
	}
	out := make(map[ipam.Attachment]bool, len(valid))
	for _, a := range valid {
		out[ipam.Attachment{ContainerID: a.ContainerID, IfName: a.IfName}] = true
	}
	return out, nil
}
