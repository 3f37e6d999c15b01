// Command host-local is a drop-in replacement for the reference host-local IPAM
// plugin: it hands out addresses from configured ranges and keeps each lease in
// a file under dataDir.
package main

import (
	"os"

	"github.com/containernetworking/cni/pkg/skel"
	"github.com/containernetworking/cni/pkg/version"

	"github.com/flatcni/plugins/pkg/hostlocal"
	_ "github.com/flatcni/plugins/pkg/shortrun" // runtime tuned for a plugin call, first thing
)

func main() {
	skel.PluginMainFuncs(skel.CNIFuncs{
		Add:    add,
		Del:    hostlocal.Del,
		Check:  hostlocal.Check,
		GC:     hostlocal.GC,
		Status: hostlocal.Status,
	}, version.All, "flatcni host-local")
}

// add closes stdout once the result is printed: a caller that reads the
// result up to EOF (our bridge) goes on while this process exits.
func add(args *skel.CmdArgs) error {
	if err := hostlocal.Add(args); err != nil {
		return err
	}
	_ = os.Stdout.Close()
	return nil
}
