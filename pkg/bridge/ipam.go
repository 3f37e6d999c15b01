package bridge

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"

	"github.com/containernetworking/cni/pkg/invoke"
	"github.com/containernetworking/cni/pkg/skel"
	"github.com/containernetworking/cni/pkg/types"
	"github.com/containernetworking/cni/pkg/types/create"

	"github.com/flatcni/plugins/pkg/config"
	"github.com/flatcni/plugins/pkg/hostlocal"
	"github.com/flatcni/plugins/pkg/ipam"
)

// hostLocalName is the name under which this program is host-local.
const hostLocalName = "host-local"

// NodeIPAM finds the IPAM plugin in CNI_PATH as invoke.FindInPath does. A
// plugin that is this program (see sameProgram) is run in-process when it
// is host-local, refused otherwise (it would call the bridge back); any
// other plugin is executed as the CNI spec says, by package invoke, with
// the bridge's own environment.
type NodeIPAM struct{}

// Plugin implements IPAM.
func (NodeIPAM) Plugin(c *config.Bridge, cniPath string) (IPAMPlugin, error) {
	path, err := invoke.FindInPath(c.IPAM.Type, filepath.SplitList(cniPath))
	if err != nil {
		return nil, ipamNotFound(c.IPAM.Type, cniPath)
	}
	if sameProgram(path) {
		if filepath.Base(path) == hostLocalName {
			return inProcessHostLocal{}, nil
		}
		return nil, &ipamUnusableError{cni: config.Invalid("ipam.type", "IPAM plugin %q (%s) is this bridge plugin's own program, not an IPAM plugin: the bridge would call itself in a loop", c.IPAM.Type, path)}
	}
	// Through another plugin that calls the bridge back (directly or not),
	// each bridge would start the next: the first one's descendants refuse.
	if pid, ok := selfAncestor(); ok {
		return nil, &ipamUnusableError{cni: config.Invalid("ipam.type", "IPAM plugin %q (%s) leads back to the bridge: this program already runs as process %d, an ancestor of this call; the plugins call each other in a loop", c.IPAM.Type, path, pid)}
	}
	return execIPAM{name: c.IPAM.Type}, nil
}

// execIPAM runs an IPAM plugin binary through package invoke.
type execIPAM struct{ name string }

func (execIPAM) Local() bool { return false }

func (e execIPAM) Add(args *skel.CmdArgs) (types.Result, []netip.Prefix, bool, error) {
	r, err := invoke.DelegateAdd(context.Background(), e.name, args.StdinData, nil)
	return r, nil, true, err
}
func (e execIPAM) Del(args *skel.CmdArgs) error {
	return invoke.DelegateDel(context.Background(), e.name, args.StdinData, nil)
}
func (e execIPAM) Check(args *skel.CmdArgs) error {
	return invoke.DelegateCheck(context.Background(), e.name, args.StdinData, nil)
}
func (e execIPAM) GC(args *skel.CmdArgs) error {
	return invoke.DelegateGC(context.Background(), e.name, args.StdinData, nil)
}
func (execIPAM) Stale(*skel.CmdArgs) ([]ipam.Attachment, bool, error) { return nil, false, nil }
func (execIPAM) Leased(*skel.CmdArgs, []netip.Prefix) []netip.Prefix  { return nil }
func (execIPAM) HoldsLeases(*skel.CmdArgs) (bool, bool)               { return false, false }
func (e execIPAM) Status(args *skel.CmdArgs) error {
	return invoke.DelegateStatus(context.Background(), e.name, args.StdinData, nil)
}

// inProcessHostLocal runs package hostlocal's verbs in this process: the
// same configuration parsing, lease store, locking and errors as the
// host-local binary, whose stdin is the bridge's.
type inProcessHostLocal struct{}

func (inProcessHostLocal) Local() bool { return true }

// Add returns the result as the binary would have printed it (encoded in
// the configuration's cniVersion, then decoded as package invoke does), and
// the subnets of the configured ranges.
func (inProcessHostLocal) Add(args *skel.CmdArgs) (res types.Result, subnets []netip.Prefix, reserved bool, err error) {
	err = inProcess(func() error {
		a, err := hostlocal.AddResult(args)
		if err != nil {
			return err
		}
		b, err := json.Marshal(a.Result)
		if err != nil {
			return err
		}
		res, err = create.CreateFromBytes(b)
		subnets, reserved = a.Subnets, a.Reserved
		return err
	})
	return res, subnets, reserved, err
}
func (inProcessHostLocal) Del(args *skel.CmdArgs) error {
	return inProcess(func() error { return hostlocal.Del(args) })
}
func (inProcessHostLocal) Check(args *skel.CmdArgs) error {
	return inProcess(func() error { return hostlocal.Check(args) })
}
func (inProcessHostLocal) GC(args *skel.CmdArgs) error {
	return inProcess(func() error { return hostlocal.GC(args) })
}
func (inProcessHostLocal) Stale(args *skel.CmdArgs) (stale []ipam.Attachment, known bool, err error) {
	err = inProcess(func() (err error) {
		stale, err = hostlocal.Stale(args)
		return err
	})
	return stale, err == nil, err
}
func (inProcessHostLocal) Leased(args *skel.CmdArgs, prefixes []netip.Prefix) (leased []netip.Prefix) {
	_ = inProcess(func() (err error) {
		leased, err = hostlocal.LeasedSubnets(args, prefixes)
		return err
	})
	return leased
}
func (inProcessHostLocal) HoldsLeases(args *skel.CmdArgs) (held, known bool) {
	err := inProcess(func() (err error) {
		held, err = hostlocal.HoldsLeases(args)
		return err
	})
	return held, err == nil
}
func (inProcessHostLocal) Status(args *skel.CmdArgs) error {
	return inProcess(func() error { return hostlocal.Status(args) })
}

// inProcess runs fn and returns its error as the binary's caller would read
// it: a CNI error as it is, any other error (and a panic) as skel turns it
// into one, code 999.
func inProcess(fn func() error) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = types.NewError(types.ErrInternal, fmt.Sprintf("panic: %v", r), "")
		}
	}()
	if err = fn(); err == nil {
		return nil
	}
	var te *types.Error
	if errors.As(err, &te) {
		return te
	}
	return types.NewError(types.ErrInternal, err.Error(), "")
}

// ipamUnusableError is an IPAM plugin that cannot be run: not in CNI_PATH
// (missing), or one that would call the bridge back. A configuration error
// for ADD, CHECK and STATUS (code 7; STATUS says 50 for a missing one);
// DEL and GC go on without it (noIPAM): ADD never ran it.
type ipamUnusableError struct {
	cni     *types.Error
	missing bool
}

func (e *ipamUnusableError) Error() string { return e.cni.Error() }
func (e *ipamUnusableError) Unwrap() error { return e.cni }

func ipamNotFound(name, cniPath string) error {
	return &ipamUnusableError{config.Invalid("ipam.type", "IPAM plugin %q not found in CNI_PATH %q", name, cniPath), true}
}

// noIPAM reports whether err says the IPAM plugin is not installed, or
// would call the bridge back, and notes on stderr that the teardown went on
// without it: nothing can be released through a plugin that is not there
// or that ADD refuses to run, and a DEL failing for that would be retried
// for ever (the runtime calls DEL after a failed ADD too).
func noIPAM(err error, verb string) bool {
	var u *ipamUnusableError
	if !errors.As(err, &u) {
		return false
	}
	fmt.Fprintf(os.Stderr, "%s: %s: went on without it\n", verb, u.cni.Msg)
	return true
}

// runIPAM resolves the network's IPAM plugin and runs one of its verbs
// (call, such as IPAMPlugin.Del), naming the plugin in its error.
func (d *Deps) runIPAM(c *config.Bridge, args *skel.CmdArgs, verb string, call func(IPAMPlugin, *skel.CmdArgs) error) error {
	if err := c.IPAMPluginName(); err != nil {
		return &ipamUnusableError{err, true} // only a teardown's configuration gets here with it
	}
	p, err := d.IPAM.Plugin(c, args.Path)
	if err != nil {
		return err
	}
	if err := call(p, args); err != nil {
		return ipamError(c, verb, err)
	}
	return nil
}

// ipamError names the IPAM plugin in its error, keeping its CNI code.
func ipamError(c *config.Bridge, verb string, err error) error {
	var te *types.Error
	if errors.As(err, &te) {
		return types.NewError(te.Code, fmt.Sprintf("IPAM plugin %q %s: %s", c.IPAM.Type, verb, te.Msg), te.Details)
	}
	return fmt.Errorf("IPAM plugin %q %s: %w", c.IPAM.Type, verb, err)
}

// ipamAdd is an IPAM ADD started by startIPAMAdd: beside the bridge's and
// the veth's creation when the plugin is Local, at wait otherwise (as the
// spec orders it: the container's interface exists before IPAM runs).
type ipamAdd struct {
	plugin   IPAMPlugin
	args     *skel.CmdArgs
	done     chan struct{}
	res      types.Result
	subnets  []netip.Prefix
	reserved bool
	err      error
}

func startIPAMAdd(p IPAMPlugin, args *skel.CmdArgs) *ipamAdd {
	a := &ipamAdd{plugin: p, args: args}
	if p.Local() {
		a.done = make(chan struct{})
		go func() {
			defer close(a.done)
			a.res, a.subnets, a.reserved, a.err = p.Add(args)
		}()
	}
	return a
}

// wait returns the ADD's result (running it now if it was not started).
func (a *ipamAdd) wait() (types.Result, []netip.Prefix, error) {
	if a.done == nil {
		a.res, a.subnets, a.reserved, a.err = a.plugin.Add(a.args)
		a.done = make(chan struct{})
		close(a.done)
	}
	<-a.done
	return a.res, a.subnets, a.err
}

// undo releases what the ADD reserved, also when ADD fails before it used
// the result: nothing for an ADD never run or failed (it released what it
// reserved itself, as the reference assumes), nor for one that only gave
// the attachment back the addresses it held, nor when taken reports that
// the attachment's interface exists (both: another ADD of the same
// attachment, racing this one, owns them; it may have got back as held
// what this one reserved first).
func (a *ipamAdd) undo(taken func() bool) {
	if a.done == nil {
		return
	}
	<-a.done
	if a.err == nil && a.reserved && !taken() {
		_ = a.plugin.Del(a.args)
	}
}
