// Command libfloor is the start-up floor of any plugin built on the
// libraries the project requires: it links them (their package
// initialisers run before main, as in the plugins) and only writes a line,
// built with the plugins' flags. Beside the hello-world floor it shows
// what the libraries alone cost at start-up, before any code of ours.
package main

import (
	_ "crypto/sha256"
	_ "debug/elf"
	_ "encoding/json"
	_ "net/netip"
	"os"

	_ "github.com/containernetworking/cni/pkg/invoke"
	_ "github.com/containernetworking/cni/pkg/skel"
	_ "github.com/containernetworking/cni/pkg/types/100"
	_ "github.com/containernetworking/cni/pkg/version"
	_ "github.com/coreos/go-iptables/iptables"
	_ "github.com/google/nftables"
	_ "github.com/vishvananda/netlink"
)

func main() { os.Stdout.WriteString("libraries linked\n") }
