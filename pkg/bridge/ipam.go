package bridge

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"

	"github.com/containernetworking/cni/pkg/invoke"
	"github.com/containernetworking/cni/pkg/types"
	current "github.com/containernetworking/cni/pkg/types/100"
	"github.com/containernetworking/cni/pkg/types/create"

	"github.com/flatcni/plugins/pkg/config"
	"github.com/flatcni/plugins/pkg/delegate"
	"github.com/flatcni/plugins/pkg/link"
)

// findIPAM checks that the IPAM binary exists in CNI_PATH before anything
// changes on the node, and returns its path.
func findIPAM(c *config.Bridge) (string, error) {
	paths := filepath.SplitList(os.Getenv("CNI_PATH"))
	path, err := invoke.FindInPath(c.IPAM.Type, paths)
	if err != nil {
		return "", config.Invalid("ipam.type", "IPAM plugin %q not found in CNI_PATH %q", c.IPAM.Type, os.Getenv("CNI_PATH"))
	}
	return path, nil
}

// ipamError names the IPAM plugin in its error, keeping its CNI code.
func ipamError(c *config.Bridge, verb string, err error) error {
	var te *types.Error
	if errors.As(err, &te) {
		return types.NewError(te.Code, fmt.Sprintf("IPAM plugin %q %s: %s", c.IPAM.Type, verb, te.Msg), te.Details)
	}
	return fmt.Errorf("IPAM plugin %q %s: %w", c.IPAM.Type, verb, err)
}

// ipamAddArgs is the environment of IPAM ADD (the plugin's own, with
// CNI_COMMAND=ADD), as invoke.DelegateAdd makes it.
var ipamAddArgs = &invoke.DelegateArgs{Command: "ADD"}

// ipamAdd runs IPAM ADD (the binary at path) through ex; with ex.Early the
// result may arrive before the plugin has exited, and ex.Settle tells how it
// ended.
func ipamAdd(c *config.Bridge, path string, stdin []byte, ex *delegate.Exec) (*current.Result, error) {
	r, err := invoke.ExecPluginWithResult(context.Background(), path, stdin, ipamAddArgs, ex)
	if err != nil {
		return nil, ipamError(c, "ADD", err)
	}
	res, err := current.NewResultFromResult(r)
	if err != nil {
		return nil, ipamError(c, "ADD", err)
	}
	if len(res.IPs) == 0 {
		return nil, ipamError(c, "ADD", errors.New("returned no addresses"))
	}
	return res, nil
}

// warmResultPath runs, on a made-up result and without output, the code that
// ADD runs on an IPAM result of CNI version 1.x: decoding it (invoke's
// create.Create), taking it as the current version and encoding it (what
// types.PrintResult does). Their first run, page faults and encoding/json's
// per-type set-up, is then off ADD's critical path: measured, ADD 0.7-1 ms
// faster when this runs while IPAM does. Doing more (the conversions to and
// from older versions) took that gain back, by taking the CPU from the IPAM
// process. It reports whether it ran through; other versions are skipped.
func warmResultPath(cniVersion string) bool {
	if !strings.HasPrefix(cniVersion, "1.") {
		return false
	}
	sample := `{"cniVersion":"` + cniVersion + `","ips":[{"address":"10.0.0.2/24","gateway":"10.0.0.1"}],"routes":[{"dst":"0.0.0.0/0"}],"dns":{}}`
	r, err := create.CreateFromBytes([]byte(sample))
	if err != nil {
		return false
	}
	res, err := current.NewResultFromResult(r)
	if err != nil {
		return false
	}
	res.Interfaces = []*current.Interface{{Name: "eth0", Mac: "02:00:00:00:00:01", Sandbox: "/run/netns/x"}}
	_, err = json.MarshalIndent(res, "", "    ")
	return err == nil
}

// ipamDel runs IPAM DEL through ex.
func ipamDel(c *config.Bridge, stdin []byte, ex *delegate.Exec) error {
	if err := invoke.DelegateDel(context.Background(), c.IPAM.Type, stdin, ex); err != nil {
		return ipamError(c, "DEL", err)
	}
	return nil
}

// plan is what ADD derives from the IPAM result: addresses and routes for the
// container, gateway addresses for the bridge.
type plan struct {
	addrs    []netip.Prefix
	routes   []link.Route
	gateways []netip.Prefix // gateway address with the subnet's length, for the bridge
	v4, v6   bool
}

// makePlan fills in gateways (first address of the subnet when IPAM gave none
// and the bridge is the gateway) and default routes (isDefaultGateway), and
// points every IP at the container interface (index 2 in the result).
func makePlan(c *config.Bridge, res *current.Result) (plan, error) {
	var p plan
	defaultFound := map[bool]bool{}
	for _, r := range res.Routes {
		if d, ok := prefixOf(r.Dst); ok && d.Bits() == 0 && r.GW != nil {
			defaultFound[d.Addr().Is4()] = true
		}
	}
	gw := map[bool]netip.Addr{}
	for _, ipc := range res.IPs {
		addr, ok := prefixOf(ipc.Address)
		if !ok {
			return p, fmt.Errorf("IPAM plugin %q returned an invalid address %v", c.IPAM.Type, ipc.Address)
		}
		is4 := addr.Addr().Is4()
		ipc.Interface = current.Int(2)
		if ipc.Gateway == nil && c.IsGW {
			ipc.Gateway = net.IP(addr.Masked().Addr().Next().AsSlice())
		}
		g, _ := netip.AddrFromSlice(ipc.Gateway)
		g = g.Unmap()
		if g.IsValid() && !gw[is4].IsValid() {
			gw[is4] = g
		}
		if c.IsDefaultGW && !defaultFound[is4] && g.IsValid() {
			dst := net.IPNet{IP: net.IPv4zero.To4(), Mask: net.CIDRMask(0, 32)}
			if !is4 {
				dst = net.IPNet{IP: net.IPv6zero, Mask: net.CIDRMask(0, 128)}
			}
			res.Routes = append(res.Routes, &types.Route{Dst: dst, GW: ipc.Gateway})
			defaultFound[is4] = true
		}
		if c.IsGW && g.IsValid() {
			p.gateways = append(p.gateways, netip.PrefixFrom(g, addr.Bits()))
		}
		p.addrs = append(p.addrs, addr)
		p.v4, p.v6 = p.v4 || is4, p.v6 || !is4
	}
	for _, r := range res.Routes {
		rt, ok := containerRoute(r, gw)
		if !ok {
			return p, fmt.Errorf("IPAM plugin %q returned an invalid route %v", c.IPAM.Type, r.Dst)
		}
		p.routes = append(p.routes, rt)
	}
	return p, nil
}

// containerRoute converts a result's route for the container interface. As
// the reference plugin does, a route without gw goes via its family's
// gateway (familyGW, keyed by "is IPv4"), and its priority, table and scope
// are kept (MTU and advmss are not applied).
func containerRoute(r *types.Route, familyGW map[bool]netip.Addr) (link.Route, bool) {
	dst, ok := prefixOf(r.Dst)
	if !ok {
		return link.Route{}, false
	}
	rt := link.Route{Dst: dst, GW: familyGW[dst.Addr().Is4()], Priority: r.Priority}
	if g, ok := netip.AddrFromSlice(r.GW); ok {
		rt.GW = g.Unmap()
	}
	if r.Table != nil {
		rt.Table = *r.Table
	}
	if r.Scope != nil {
		rt.Scope = *r.Scope
	}
	return rt, true
}

func prefixOf(n net.IPNet) (netip.Prefix, bool) {
	a, ok := netip.AddrFromSlice(n.IP)
	if !ok {
		return netip.Prefix{}, false
	}
	ones, bits := n.Mask.Size()
	a = a.Unmap()
	if bits == 128 && a.Is4() {
		ones -= 96
	}
	if bits == 0 {
		return netip.Prefix{}, false
	}
	return netip.PrefixFrom(a, ones), true
}

// subnets returns the masked subnets of the addresses (for firewall rules).
func subnets(addrs []netip.Prefix) []netip.Prefix {
	var out []netip.Prefix
	seen := map[netip.Prefix]bool{}
	for _, a := range addrs {
		m := a.Masked()
		if !seen[m] {
			seen[m] = true
			out = append(out, m)
		}
	}
	return out
}
