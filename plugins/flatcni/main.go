// Command flatcni is the bridge and the host-local CNI plugin in one program:
// installed (or linked) as "bridge" it is a drop-in replacement for the
// reference bridge plugin, as "host-local" for the reference host-local IPAM
// plugin. It dispatches on the base name it was started under.
package main

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime/debug"

	"github.com/containernetworking/cni/pkg/skel"
	"github.com/containernetworking/cni/pkg/types"
	"github.com/containernetworking/cni/pkg/version"

	"github.com/flatcni/plugins/pkg/bridge"
	"github.com/flatcni/plugins/pkg/config"
	"github.com/flatcni/plugins/pkg/hostlocal"
	"github.com/flatcni/plugins/pkg/rtnl"
)

func main() {
	name := filepath.Base(os.Args[0])
	if name == "bridge" || name == "host-local" {
		if err := config.CheckEnvNames(os.Getenv); err != nil {
			_ = err.Print()
			os.Exit(1)
		}
	}
	switch name {
	case "bridge":
		// Its ADD and DEL refuse the plugin's own netns themselves, first.
		skel.PluginMainFuncs(wrapVerbs(bridge.Funcs(bridge.NodeDeps()), netnsSelf, netnsSelf), version.All, "flatcni bridge")
	case "host-local":
		skel.PluginMainFuncs(wrapVerbs(hostlocal.Funcs(), netnsBefore, netnsAfter), version.All, "flatcni host-local")
	default:
		// As any plugin's failure: an error result on stdout, which the
		// runtime reads and shows.
		_ = types.NewError(types.ErrInternal, fmt.Sprintf("flatcni: started as %q: install or link this program as \"bridge\" or \"host-local\"", name), "").Print()
		os.Exit(1)
	}
}

// largeConfig is the size of configuration above which the collector runs
// at gcPercentLarge.
const (
	largeConfig    = 1 << 20
	gcPercentLarge = 25
)

// wrapVerbs puts boundMemory around every verb, and netnsChecked around
// ADD and DEL (add and del say when the check is made).
func wrapVerbs(f skel.CNIFuncs, add, del netnsCheck) skel.CNIFuncs {
	return skel.CNIFuncs{
		Add:    netnsChecked(boundMemory(f.Add), add),
		Del:    netnsChecked(boundMemory(f.Del), del),
		Check:  boundMemory(f.Check),
		GC:     boundMemory(f.GC),
		Status: boundMemory(f.Status),
	}
}

// boundMemory keeps the memory of a call on a large configuration near the
// configuration's size (issue #26). The configuration's text stays alive for
// the whole call (skel holds it), so with the default GOGC of 100 the heap
// grows to twice the text plus what is parsed from it before the collector
// runs. Past largeConfig, the verb runs with GOGC 25, after the pieces
// io.ReadAll left behind are collected and their pages given back: the peak
// then stays that of reading the text, whatever the configuration is made
// of. Configurations of ordinary size (a few kB) are unchanged, and so is
// a GOGC the operator set.
func boundMemory(verb func(*skel.CmdArgs) error) func(*skel.CmdArgs) error {
	if verb == nil {
		return nil
	}
	return func(args *skel.CmdArgs) error {
		if len(args.StdinData) > largeConfig && os.Getenv("GOGC") == "" {
			debug.SetGCPercent(gcPercentLarge)
			debug.FreeOSMemory()
		}
		return verb(args)
	}
}

// netnsCheck says when netnsChecked refuses the plugin's own namespace.
type netnsCheck int

const (
	netnsSelf   netnsCheck = iota // the verb does, first
	netnsBefore                   // before the verb
	netnsAfter                    // after it succeeded, as skel does
)

// netnsChecked makes the check skel makes after a successful ADD or DEL
// (CNI_NETNS is not the plugin's own namespace), without blocking, and
// tells skel it is done (CNI_NETNS_OVERRIDE): skel opens the path, which
// blocks forever on a FIFO, after the verb succeeded. host-local's ADD is
// checked before it runs (refused after it, it would keep the addresses it
// reserved and have printed its result before the error), its DEL after,
// so that it releases first, as skel orders it.
func netnsChecked(verb func(*skel.CmdArgs) error, when netnsCheck) func(*skel.CmdArgs) error {
	return func(args *skel.CmdArgs) error {
		if when == netnsBefore {
			if err := config.RefuseOwnNetns(args, rtnl.IsOwnNetNS); err != nil {
				return err
			}
		}
		if err := verb(args); err != nil {
			return err
		}
		if when == netnsAfter {
			if err := config.RefuseOwnNetns(args, rtnl.IsOwnNetNS); err != nil {
				return err
			}
		}
		args.NetnsOverride = "1"
		return nil
	}
}
