package hostlocal

import (
	"errors"
	"fmt"
	"net"
	"net/netip"

	"github.com/containernetworking/cni/pkg/skel"
	"github.com/containernetworking/cni/pkg/types"
	current "github.com/containernetworking/cni/pkg/types/100"

	"github.com/flatcni/plugins/pkg/config"
	"github.com/flatcni/plugins/pkg/ipam"
)

// Add reserves one address per range set for the attachment and prints the
// result (the plugin binary's ADD).
func Add(args *skel.CmdArgs) error {
	c, err := config.LoadIPAM(args.StdinData, args.Args)
	if err != nil {
		return err
	}
	// Nothing reads the configuration's text again: let the collector have
	// it (args is skel's only reference), as a large configuration would
	// otherwise stay in memory beside its parsed form, the leases and the
	// result.
	args.StdinData = nil
	res, _, err := addResult(c, args)
	if err != nil {
		return err
	}
	return printResult(res)
}

// Added is what AddResult did.
type Added struct {
	// Result is the result in the configuration's cniVersion, as Add
	// prints it.
	Result types.Result
	// Reserved says whether an address the attachment did not hold before
	// was reserved (a repeated ADD gets the attachment's addresses back and
	// reserves none: undoing it must not release them).
	Reserved bool
	// Subnets are those of the configured range sets (as Subnets returns
	// them), from the same parse.
	Subnets []netip.Prefix
}

// AddResult reserves one address per range set for the attachment and
// returns what it did (host-local's ADD without the printing, for the
// bridge running it in-process).
func AddResult(args *skel.CmdArgs) (Added, error) {
	c, err := config.LoadIPAM(args.StdinData, args.Args)
	if err != nil {
		return Added{}, err
	}
	res, reserved, err := addResult(c, args)
	return Added{Result: res, Reserved: reserved, Subnets: subnets(c)}, err
}

func addResult(c *config.IPAM, args *skel.CmdArgs) (_ types.Result, reserved bool, err error) {
	result := &current.Result{CNIVersion: current.ImplementedSpecVersion, Routes: c.Routes}
	if c.ResolvConf != "" {
		dns, err := ParseResolvConf(c.ResolvConf)
		if err != nil {
			return nil, false, types.NewError(types.ErrIOFailure, fmt.Sprintf("ipam.resolvConf %s: %v", c.ResolvConf, err), "")
		}
		result.DNS = dns
	}
	loc := c.Locator()
	requested, err := assignRequested(c, loc)
	if err != nil {
		return nil, false, err
	}
	a := ipam.Attachment{ContainerID: args.ContainerID, IfName: args.IfName}
	allocs, err := withStore(c, storeUse{prepare: &a}, func(s ipam.Store) ([]ipam.Allocation, error) {
		before, err := s.Leases(a)
		if err != nil {
			return nil, err
		}
		// A lease naming only the container (host-local before 0.8) may be
		// another interface's: fail, as the reference does, before any set
		// reserves anything. Leases falls back to such leases when the
		// attachment has none of its own: with nothing found, there are none.
		if len(before) > 0 {
			if old, err := ipam.LegacyLease(s, a, c.Ranges); err != nil {
				return nil, err
			} else if old.IsValid() {
				return nil, types.NewError(types.ErrInternal, fmt.Sprintf("network %q: container %s holds %s through a lease written without an interface name (host-local before 0.8), which may be another interface's: DEL the container or remove that lease file", c.Network, a.ContainerID, old), "")
			}
		}
		// The address each range set holds already (the first listed).
		held := map[int]netip.Addr{}
		for _, addr := range before {
			if i, _ := loc.Find(addr); i >= 0 && !held[i].IsValid() {
				held[i] = addr
			}
		}
		// Sets with a requested address first: they are the ones that fail on
		// a taken address, and then no other set has moved its last reserved
		// address yet.
		order := make([]int, 0, len(c.Ranges))
		for i := range c.Ranges {
			if requested[i].IsValid() {
				order = append(order, i)
			}
		}
		for i := range c.Ranges {
			if !requested[i].IsValid() {
				order = append(order, i)
			}
		}
		out := make([]ipam.Allocation, len(c.Ranges))
		var fresh []netip.Addr // reserved by this ADD: undone if a later set fails
		undo := func(err error) error {
			if rerr := s.ReleaseAddrs(a, fresh); rerr != nil {
				err = fmt.Errorf("%w (and releasing what was reserved failed: %v)", err, rerr)
			}
			return err
		}
		for _, i := range order {
			al, err := ipam.AllocateHeld(s, c.Ranges[i], i, a, requested[i], held[i])
			if err != nil {
				return nil, allocError(c.Network, i, undo(err))
			}
			if al.Addr.Addr() != held[i] {
				fresh = append(fresh, al.Addr.Addr())
			}
			out[i] = al
		}
		if err := s.Flush(); err != nil {
			return nil, undo(err)
		}
		reserved = len(fresh) > 0
		return out, nil
	})
	if err != nil {
		return nil, false, err
	}
	for _, al := range allocs {
		ipc := &current.IPConfig{Address: toIPNet(al.Addr)}
		if al.Gateway.IsValid() {
			ipc.Gateway = net.IP(al.Gateway.AsSlice())
		}
		result.IPs = append(result.IPs, ipc)
	}
	r, err := result.GetAsVersion(c.CNIVersion)
	return r, reserved, err
}

// assignRequested maps each requested address to the range set that holds it;
// an address outside every set, or two in one set, is a configuration error.
func assignRequested(c *config.IPAM, loc *ipam.Locator) (map[int]netip.Addr, error) {
	out := map[int]netip.Addr{}
	for _, addr := range c.Requested {
		i, _ := loc.Find(addr)
		if i < 0 {
			return nil, config.Invalid("ips", "requested address %s is outside every range of network %q", addr, c.Network)
		}
		if prev, dup := out[i]; dup && prev != addr {
			return nil, config.Invalid("ips", "%s and %s both requested from range set %d (%s); one address per range set", prev, addr, i, c.Ranges[i])
		}
		out[i] = addr
	}
	return out, nil
}

// allocError names the network and range set; the code says whether to retry
// (11), fix the request (7) or look at the lease store (5).
func allocError(network string, set int, err error) error {
	msg := fmt.Sprintf("network %q, range set %d: %v", network, set, err)
	var e *types.Error
	switch {
	case errors.As(err, &e):
		e.Msg = msg
		return e
	case errors.Is(err, ipam.ErrUnavailable):
		return types.NewError(types.ErrTryAgainLater, msg, "")
	case errors.Is(err, ipam.ErrBadRequest):
		return types.NewError(types.ErrInvalidNetworkConfig, msg, "")
	}
	return types.NewError(types.ErrIOFailure, msg, "")
}

func toIPNet(p netip.Prefix) net.IPNet {
	bits := 32
	if p.Addr().Is6() {
		bits = 128
	}
	return net.IPNet{IP: net.IP(p.Addr().AsSlice()), Mask: net.CIDRMask(p.Bits(), bits)}
}
