package bridge

import (
	"strings"

	current "github.com/containernetworking/cni/pkg/types/100"

	"github.com/flatcni/plugins/pkg/config"
	"github.com/flatcni/plugins/pkg/firewall"
)

// needsFirewall reports whether the network has firewall rules: masquerade
// (ipMasq with IPAM) or isolation (isolation, internal, icc false); or,
// for a teardown whose configuration has one of those keys unreadable
// (RulesUnknown), may have.
func needsFirewall(c *config.Bridge) bool {
	return c.IPMasq && c.IsLayer3() || c.Isolates() || c.RulesUnknown
}

// withIsolation adds the isolation keys to the network's rule description.
func withIsolation(c *config.Bridge, n firewall.Network) firewall.Network {
	n.Isolation = firewall.Isolation(c.Mode())
	n.Internal = c.Internal
	n.NoICC = c.NoICC()
	return n
}

// dropDefaultRoutes removes the default routes from the IPAM result of an
// internal network: it has no way out, so no route may point there.
func dropDefaultRoutes(c *config.Bridge, res *current.Result) {
	if !c.Internal {
		return
	}
	kept := res.Routes[:0]
	for _, r := range res.Routes {
		if ones, _ := r.Dst.Mask.Size(); ones != 0 {
			kept = append(kept, r)
		}
	}
	res.Routes = kept
}

// portIsolated reports whether the container's port gets the kernel's port
// isolation: with portIsolation, and with icc false (whose L3 rule covers
// what is routed through the gateway, the port flag what is bridged).
func portIsolated(c *config.Bridge) bool {
	return c.PortIsolation || c.NoICC()
}

// firewallKeys names the configuration keys behind the network's rules,
// for error messages.
func firewallKeys(c *config.Bridge) string {
	var keys []string
	if c.IPMasq {
		keys = append(keys, "ipMasq")
	}
	if c.Mode() != config.IsolationNone {
		keys = append(keys, "isolation")
	}
	if c.Internal {
		keys = append(keys, "internal")
	}
	if c.NoICC() {
		keys = append(keys, "icc")
	}
	if len(keys) == 0 {
		return "ipMasq"
	}
	return strings.Join(keys, "/")
}
