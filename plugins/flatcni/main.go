// Command flatcni is the bridge and the host-local CNI plugin in one program:
// installed (or linked) as "bridge" it is a drop-in replacement for the
// reference bridge plugin, as "host-local" for the reference host-local IPAM
// plugin. It dispatches on the base name it was started under.
package main

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/containernetworking/cni/pkg/skel"
	"github.com/containernetworking/cni/pkg/version"

	"github.com/flatcni/plugins/pkg/bridge"
	"github.com/flatcni/plugins/pkg/hostlocal"
)

func main() {
	name := filepath.Base(os.Args[0])
	switch name {
	case "bridge":
		skel.PluginMainFuncs(bridge.Funcs(bridge.NodeDeps()), version.All, "flatcni bridge")
	case "host-local":
		skel.PluginMainFuncs(hostlocal.Funcs(), version.All, "flatcni host-local")
	default:
		fmt.Fprintf(os.Stderr, "flatcni: started as %q: install or link this program as \"bridge\" or \"host-local\"\n", name)
		os.Exit(1)
	}
}
