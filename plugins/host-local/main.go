// Command host-local is a drop-in replacement for the reference host-local IPAM
// plugin: it hands out addresses from configured ranges and keeps each lease in
// a file under dataDir.
package main

import (
	"github.com/containernetworking/cni/pkg/skel"
	"github.com/containernetworking/cni/pkg/version"

	"github.com/flatcni/plugins/pkg/hostlocal"
)

func main() {
	skel.PluginMainFuncs(skel.CNIFuncs{
		Add:    hostlocal.Add,
		Del:    hostlocal.Del,
		Check:  hostlocal.Check,
		GC:     hostlocal.GC,
		Status: hostlocal.Status,
	}, version.All, "flatcni host-local")
}
