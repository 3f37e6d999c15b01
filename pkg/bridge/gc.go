package bridge

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"sync"

	"github.com/containernetworking/cni/pkg/skel"
	"github.com/containernetworking/cni/pkg/types"

	"github.com/flatcni/plugins/pkg/bridge/hostveth"
	"github.com/flatcni/plugins/pkg/config"
	"github.com/flatcni/plugins/pkg/firewall"
	"github.com/flatcni/plugins/pkg/ipam"
	"github.com/flatcni/plugins/pkg/l2"
	"github.com/flatcni/plugins/pkg/link"
)

// GC (CNI 1.1) hands the valid attachments to IPAM, removes host veths on the
// bridge whose peer is gone, MAC spoof checks of attachments that are not
// valid, the reference plugin's MAC spoof checks whose host veth is gone, the
// network's firewall rules when no attachment is valid, and the reference
// plugin's per-container masquerade chains of gone containers.
func (d *Deps) GC(args *skel.CmdArgs) error {
	c, err := config.LoadBridgeForTeardown(args.StdinData)
	if err != nil {
		return err
	}
	type att struct{ id, ifname string }
	valid := map[att]bool{}
	validIDs := map[string]bool{}
	for _, a := range c.ValidAttachments {
		valid[att{a.ContainerID, a.IfName}] = true
		validIDs[a.ContainerID] = true
	}

	var errs []error
	ipamArgs := args
	if c.IsLayer3() && c.HasBridge() {
		failed, kept := d.removeStaleVeths(c, args)
		errs = append(errs, failed...)
		if len(kept) > 0 {
			// Their interfaces are still there: IPAM keeps their
			// addresses (as valid) until a GC removes them.
			a := *args
			stdin, err := withValid(args.StdinData, kept)
			if err != nil {
				return errors.Join(append(errs, err)...)
			}
			a.StdinData = stdin
			ipamArgs = &a
		}
	}
	if c.IsLayer3() {
		if err := d.runIPAM(c, ipamArgs, "GC", IPAMPlugin.GC); err != nil && !noIPAM(err, "GC") {
			errs = append(errs, err)
		}
	}
	// A bridge name no link can have (ADD rejects it) has no veths.
	if c.HasBridge() {
		errs = append(errs, d.removeOrphanVeths(c.BrName)...)
	}
	if checks, err := d.Spoof.Checks(c.Name); err == nil {
		// In one batch: one reading of the rules, not one per check.
		checks = slices.DeleteFunc(checks, func(a l2.Attachment) bool { return valid[att{a.ContainerID, a.IfName}] })
		if err := d.Spoof.TeardownMany(checks); err != nil {
			errs = append(errs, fmt.Errorf("macspoofchk: %w", err))
		}
	} else if c.MacSpoofChk {
		errs = append(errs, fmt.Errorf("macspoofchk: %w", err))
	}
	// The reference plugin's checks name no network, so the valid
	// attachments cannot tell whose they are; those whose host veth is gone
	// (perhaps just now, as an orphan) are dead whatever their network.
	// Printed only, as DEL does with the reference's leftovers, and only for
	// a network with macspoofchk (as our own checks' listing failures above):
	// a node without nftables would otherwise print it on every GC.
	if err := d.Spoof.RemoveDeadReference(); err != nil && c.MacSpoofChk {
		fmt.Fprintf(os.Stderr, "macspoofchk: %v\n", err)
	}
	// By the network's name: also for a bridge name no link can have (a
	// configuration edited since its ADDs). A configuration that asks for
	// no rules (ipMasq and isolation turned off since the ADDs) has none
	// to keep, whatever is attached; one whose keys for rules cannot be
	// read keeps them while anything valid is attached.
	if c.IPMasq || c.Isolates() || c.RulesUnknown {
		errs = append(errs, d.gcFirewall(c, len(valid) == 0, validIDs)...)
	} else {
		if err := d.removeUnwantedFirewall(c, true); err != nil {
			errs = append(errs, err)
		}
		errs = append(errs, d.removeReferenceRules(c, validIDs)...)
	}
	if err := d.teardownPorts(c, args).gc(func(id, ifname string) bool { return valid[att{id, ifname}] }); err != nil {
		errs = append(errs, err)
	}
	// The reference portmap's rules of gone containers, left by a
	// conflist that chained it (docs/migration.md).
	if err := d.teardownPorts(c, args).removeReferencePortmap(validIDs); err != nil {
		errs = append(errs, fmt.Errorf("portMappings: %w", err))
	}
	// Nothing attached and all of the network's rules and ports gone: as
	// its last DEL, GC forgets it (its marker and lock file; none there,
	// no lock taken). Only with a bridge to tell that nothing is attached.
	if len(valid) == 0 && len(errs) == 0 && c.HasBridge() {
		d.forgetIfUnused(c, args)
	}
	return errors.Join(errs...)
}

// gcFirewall drops the network's rules when it has no valid attachment, and
// the reference plugin's per-container rules of containers not kept, with
// whichever backends this node has.
func (d *Deps) gcFirewall(c *config.Bridge, empty bool, keep map[string]bool) []error {
	var errs []error
	if empty && c.MasqBackend() == "" && d.firewallFor(true).Holder(c.Name) == "" {
		if err := d.removeEverywhere(c); err != nil {
			errs = append(errs, err)
		}
	} else if empty {
		if err := d.withFirewall(c, true, func(fw firewall.Backend) error {
			if err := fw.Remove(c.Name); err != nil {
				return err
			}
			d.removeFromOtherBackends(c, fw.Name(), true)
			return nil
		}); err != nil {
			errs = append(errs, err)
		}
	}
	return append(errs, d.removeReferenceRules(c, keep)...)
}

// removeEverywhere removes the rules of a network that names no
// ipMasqBackend and whose rules no backend shows (netlink does not show
// iptables-legacy's) from every backend, as GC does with the backend in
// force and then the others; the default backend, whose choice starts
// iptables twice, is chosen only to tell whose failure to report.
func (d *Deps) removeEverywhere(c *config.Bridge) error {
	fwd := d.firewallFor(true)
	unlock, err := fwd.Lock(c.Name)
	if err != nil {
		return err
	}
	defer unlock()
	fw, err := onEveryBackend(fwd.Backend, func(fw firewall.Backend) error { return fw.Remove(c.Name) },
		func() (firewall.Backend, error) {
			fw, err := fwd.Backend("")
			if err != nil {
				return nil, config.Invalid("ipMasqBackend", "%v", err)
			}
			return fw, nil
		})
	if err != nil && fw != nil {
		return fmt.Errorf("%s (%s): %w", firewallKeys(c), fw.Name(), err)
	}
	return err
}

// onEveryBackend runs op with the backend of each name (those that cannot
// be made are skipped) and returns the error of the backend in force, with
// that backend: inForce, whose choice of the default backend starts
// iptables twice, is called only once an op failed. An error of inForce
// itself comes with a nil backend.
func onEveryBackend[B interface{ Name() string }](get func(string) (B, error), op func(B) error, inForce func() (B, error)) (B, error) {
	var zero B
	failed := map[string]error{}
	for _, name := range firewall.Names("") {
		b, err := get(name)
		if err != nil {
			continue
		}
		if err := op(b); err != nil {
			failed[b.Name()] = err
		}
	}
	if len(failed) == 0 {
		return zero, nil
	}
	b, err := inForce()
	if err != nil {
		return zero, err
	}
	return b, failed[b.Name()]
}

// removeStaleVeths deletes the host veths, on the network's bridge, of the
// attachments whose addresses IPAM's GC is about to release (not valid),
// before it releases them, as DEL removes the interface before the
// address: a container the runtime no longer knows, whose netns lives on,
// would otherwise keep an address a new container may get. Only an IPAM
// plugin that tells (our host-local) names them; with another, such veths
// stay (the reference's GC leaves them all).
func (d *Deps) removeStaleVeths(c *config.Bridge, args *skel.CmdArgs) (errs []error, kept []ipam.Attachment) {
	if c.IPAMPluginName() != nil {
		return nil, nil
	}
	p, err := d.IPAM.Plugin(c, args.Path)
	if err != nil {
		return nil, nil // IPAM's GC reports it
	}
	stale, known, err := p.Stale(args)
	if err != nil {
		return []error{ipamError(c, "GC", err)}, nil
	}
	if !known || len(stale) == 0 {
		return nil, nil
	}
	br, err := d.Links.BridgeByName(c.BrName)
	if errors.Is(err, link.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return []error{err}, stale // their veths may be there
	}
	var mu sync.Mutex
	errs = deleteEach(stale, func(a ipam.Attachment) error {
		_, err := d.Links.DelPortWithAlias(br, hostveth.Name(a.ContainerID, a.IfName), hostveth.Alias(a.ContainerID, a.IfName))
		if err != nil {
			mu.Lock()
			kept = append(kept, a)
			mu.Unlock()
		}
		return err
	})
	return errs, kept
}

// withValid returns a GC's configuration with more valid attachments, under
// both keys (an IPAM plugin may read either, config.ValidAttachments).
func withValid(stdin []byte, more []ipam.Attachment) ([]byte, error) {
	valid, err := config.ValidAttachments(stdin)
	if err != nil {
		return nil, err
	}
	var doc map[string]json.RawMessage
	if err := json.Unmarshal(stdin, &doc); err != nil {
		return nil, err
	}
	// Every spelling that encoding/json matches goes.
	for key := range doc {
		if strings.EqualFold(key, config.ValidAttachmentsKey) || strings.EqualFold(key, config.OldValidAttachmentsKey) {
			delete(doc, key)
		}
	}
	for _, a := range more {
		valid = append(valid, types.GCAttachment{ContainerID: a.ContainerID, IfName: a.IfName})
	}
	raw, err := json.Marshal(valid)
	if err != nil {
		return nil, err
	}
	doc[config.ValidAttachmentsKey] = raw
	doc[config.OldValidAttachmentsKey] = raw
	return json.Marshal(doc)
}

// vethDeleters is how many veth deletions GC runs at a time.
const vethDeleters = 8

// deleteEach runs del on each item, vethDeleters at a time, and returns
// their errors in the items' order. Deleting a veth pair mostly waits for
// the kernel (RCU grace periods, the peer's namespace), and deletions
// running together overlap those waits: 100 pairs whose peers are in
// another netns took 2.6 s one after the other, 0.7 s eight at a time.
func deleteEach[T any](items []T, del func(T) error) []error {
	errs := make([]error, len(items))
	var wg sync.WaitGroup
	sem := make(chan struct{}, vethDeleters)
	for i, it := range items {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			errs[i] = del(it)
			<-sem
		}()
	}
	wg.Wait()
	return slices.DeleteFunc(errs, func(err error) bool { return err == nil })
}

// removeOrphanVeths deletes the host veths on the bridge whose peer is gone
// or, carrying our alias, never left the node (link.OrphanVeths).
func (d *Deps) removeOrphanVeths(bridge string) []error {
	br, err := d.Links.BridgeByName(bridge)
	if errors.Is(err, link.ErrNotFound) {
		return nil
	}
	if err != nil {
		return []error{err}
	}
	orphans, err := d.Links.OrphanVeths(br)
	var errs []error
	if err != nil {
		errs = append(errs, err)
	}
	return append(errs, deleteEach(orphans, d.Links.DelLink)...)
}
