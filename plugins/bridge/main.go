// Command bridge is a drop-in replacement for the reference bridge plugin: it
// attaches containers to a Linux bridge on the node through veth pairs, with
// addresses from the IPAM plugin named in ipam.type, and optional masquerade.
package main

import (
	"github.com/containernetworking/cni/pkg/skel"
	"github.com/containernetworking/cni/pkg/version"

	"github.com/flatcni/plugins/pkg/bridge"
	_ "github.com/flatcni/plugins/pkg/shortrun" // runtime tuned for a plugin call, first thing
)

func main() {
	// pkg/bridge/early has already run (a package initialiser): it took the
	// own-netns check over from skel and, for ADD, started the IPAM plugin.
	skel.PluginMainFuncs(skel.CNIFuncs{
		Add:    bridge.Add,
		Del:    bridge.Del,
		Check:  bridge.Check,
		GC:     bridge.GC,
		Status: bridge.Status,
	}, version.All, "flatcni bridge")
}
