package firewall

import (
	"crypto/sha512"
	"encoding/hex"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"

	"github.com/coreos/go-iptables/iptables"
	"github.com/google/nftables"
	"github.com/google/nftables/expr"
)

// The reference portmap plugin's per-container rules, left on a node whose
// conflist [bridge, portmap] became [bridge with the portMappings
// capability] while containers ran: their DEL no longer reaches portmap,
// and its DNAT rules, matched before ours, keep their host ports.
//
// Its iptables backend (nat table, each family) keeps, per container, a
// chain CNI-DN-<hash> (hash: the SHA-512 of network name and container ID,
// hex, cut so the name has 28 characters) holding the DNAT and mark rules,
// and in the shared chain CNI-HOSTPORT-DNAT the jumps to it, commented
//
//	dnat name: "<network>" id: "<containerID>"
//
// Its shared chains (CNI-HOSTPORT-DNAT, -SETMARK, -MASQ and their jumps
// from the hooks) hold nothing per container and stay. Its nftables
// backend keeps, in table cni_hostport of family ip and ip6, rules in the
// chains hostports (hostip_hostports in older versions) and masquerading
// whose comment is the container ID alone: which network such a rule is
// of is told by its address (the DNAT target, or the masqueraded
// destination), which must be in one of the network's subnets.
const (
	portmapDNATChain   = "CNI-HOSTPORT-DNAT"
	portmapChainPrefix = "CNI-DN-"
	portmapChainLen    = 28
	portmapNFTTable    = "cni_hostport"
)

// portmapNFTChains are the chains of table cni_hostport holding
// per-container rules.
var portmapNFTChains = []string{"hostports", "hostip_hostports", "masquerading"}

// PortmapSelection chooses the reference portmap's per-container rules of
// one network: those of ContainerID (DEL), or, when ContainerID is empty,
// of every container not in Keep (GC).
type PortmapSelection struct {
	Network     string
	ContainerID string
	Keep        map[string]bool
	// Subnets are the network's: its nftables rules, which name no
	// network, are chosen by address. None known: they all stay.
	Subnets []netip.Prefix
}

func (s PortmapSelection) stale(id string) bool {
	if s.ContainerID != "" {
		return id == s.ContainerID
	}
	return id != "" && !s.Keep[id]
}

// portmapChainName is the name of the reference portmap's per-container
// iptables chain.
func portmapChainName(network, containerID string) string {
	sum := sha512.Sum512([]byte(network + containerID))
	return (portmapChainPrefix + hex.EncodeToString(sum[:]))[:portmapChainLen]
}

// parsePortmapComment parses the comment of portmap's jumps.
func parsePortmapComment(c string) (network, containerID string, ok bool) {
	rest, ok := strings.CutPrefix(c, "dnat ")
	if !ok {
		return "", "", false
	}
	return parseLegacyComment(rest)
}

// ReferencePortmapSeen reports, from one netlink dump of the node's chains
// (no process started), whether the reference portmap has rules that
// netlink shows: iptables-nft's chain CNI-HOSTPORT-DNAT, or table
// cni_hostport. Those of iptables-legacy are not seen.
func ReferencePortmapSeen() bool {
	c, err := nftables.New()
	if err != nil {
		return false
	}
	chains, err := c.ListChains()
	if err != nil {
		return false
	}
	return slices.ContainsFunc(chains, portmapChain)
}

func portmapChain(ch *nftables.Chain) bool {
	if ch.Table == nil || ch.Table.Family != nftables.TableFamilyIPv4 && ch.Table.Family != nftables.TableFamilyIPv6 {
		return false
	}
	return ch.Table.Name == natTable && ch.Name == portmapDNATChain || ch.Table.Name == portmapNFTTable
}

// RemoveReferencePortmap deletes the reference portmap's rules that sel
// chooses, from both of its backends: through netlink where netlink shows
// them (iptables-nft, nftables); with commands also from iptables-legacy
// when commands is set (GC: DEL asks netlink only).
func RemoveReferencePortmap(sel PortmapSelection, commands bool) error {
	var errs []error
	for _, f := range removeIPTNFT(planIPTNFTRemovePortmap(sel)) {
		if !commands {
			continue
		}
		ipt, err := newIPTablesHandle(f)
		if err != nil {
			continue
		}
		if err := removePortmapIPT(ipt, sel); err != nil {
			errs = append(errs, fmt.Errorf("remove reference portmap rules of network %q: %s: %w", sel.Network, iptCommand(f), err))
		}
	}
	if err := removePortmapNFT(sel); err != nil {
		errs = append(errs, fmt.Errorf("remove reference portmap rules of network %q: nftables: %w", sel.Network, err))
	}
	return errors.Join(errs...)
}

func newIPTablesHandle(f family) (*iptables.IPTables, error) {
	return newIPTables(buildOptions(nil)).handle(f)
}

// planIPTNFTRemovePortmap plans the removal for one family of iptables-nft:
// the chosen jumps of CNI-HOSTPORT-DNAT and the chains they jump to, unless
// a jump kept still does; for DEL also the container's chain whose jump is
// gone (an interrupted DEL).
func planIPTNFTRemovePortmap(sel PortmapSelection) func(*iptNFTView) (iptNFTOps, bool, error) {
	return func(v *iptNFTView) (iptNFTOps, bool, error) {
		var ops iptNFTOps
		gone, inUse := map[string]bool{}, map[string]bool{}
		if top := v.chain(natTable, portmapDNATChain); top != nil {
			rules, err := v.rules(top)
			if err != nil {
				return ops, false, err
			}
			for _, r := range rules {
				target := jumpTarget(r)
				if target == "" {
					continue
				}
				net, id, ok := parsePortmapComment(xtComment(r))
				if !ok || net != sel.Network || !sel.stale(id) {
					inUse[target] = true
					continue
				}
				ops.rules = append(ops.rules, r)
				gone[target] = true
			}
		}
		if sel.ContainerID != "" {
			gone[portmapChainName(sel.Network, sel.ContainerID)] = true
		}
		for _, name := range sortedKeys(gone) {
			if ch := v.chain(natTable, name); ch != nil && !inUse[name] && strings.HasPrefix(name, portmapChainPrefix) {
				ops.chains = append(ops.chains, ch)
			}
		}
		return ops, !ops.empty(), nil
	}
}

// removePortmapIPT is planIPTNFTRemovePortmap with the commands.
func removePortmapIPT(ipt *iptables.IPTables, sel PortmapSelection) error {
	exists, err := ipt.ChainExists(natTable, portmapDNATChain)
	if err != nil || !exists {
		return err
	}
	lines, err := ipt.List(natTable, portmapDNATChain)
	if err != nil {
		return fmt.Errorf("list chain %s in table %s: %w", portmapDNATChain, natTable, err)
	}
	gone, inUse := map[string]bool{}, map[string]bool{}
	for _, line := range lines {
		_, spec, ok := splitRuleLine(line)
		target := specValue(spec, "-j")
		if !ok || target == "" {
			continue
		}
		net, id, ok := parsePortmapComment(specValue(spec, "--comment"))
		if !ok || net != sel.Network || !sel.stale(id) {
			inUse[target] = true
			continue
		}
		if err := ipt.Delete(natTable, portmapDNATChain, spec...); err != nil && !isNotExist(err) {
			return fmt.Errorf("delete jump to %s for container %q: %w", target, id, err)
		}
		gone[target] = true
	}
	if sel.ContainerID != "" {
		gone[portmapChainName(sel.Network, sel.ContainerID)] = true
	}
	for _, name := range sortedKeys(gone) {
		if inUse[name] || !strings.HasPrefix(name, portmapChainPrefix) {
			continue
		}
		if err := ipt.ClearAndDeleteChain(natTable, name); err != nil && !isNotExist(err) {
			return fmt.Errorf("delete chain %s in table %s: %w", name, natTable, err)
		}
	}
	return nil
}

// removePortmapNFT deletes the chosen rules of table cni_hostport (ip and
// ip6), in one transaction; nothing without the network's subnets.
func removePortmapNFT(sel PortmapSelection) error {
	if len(sel.Subnets) == 0 {
		return nil
	}
	c, err := nftables.New()
	if err != nil {
		return err
	}
	chains, err := c.ListChains()
	if err != nil {
		// No nftables to read (as ReferencePortmapSeen): nothing of
		// portmap's can be there; GC must not fail on such a node.
		return nil
	}
	n := 0
	for _, ch := range chains {
		if ch.Table == nil || ch.Table.Name != portmapNFTTable || !slices.Contains(portmapNFTChains, ch.Name) {
			continue
		}
		f := ipv4
		switch ch.Table.Family {
		case nftables.TableFamilyIPv4:
		case nftables.TableFamilyIPv6:
			f = ipv6
		default:
			continue
		}
		rules, err := c.GetRules(ch.Table, ch)
		if err != nil {
			return fmt.Errorf("list chain %s: %w", ch.Name, err)
		}
		for _, r := range rules {
			if !sel.stale(userDataComment(r.UserData)) || !portmapRuleIn(r, f, sel.Subnets) {
				continue
			}
			if err := c.DelRule(r); err != nil {
				return err
			}
			n++
		}
	}
	if n == 0 {
		return nil
	}
	return c.Flush()
}

// portmapRuleIn reports whether a rule of portmap's nftables table is of a
// container in subnets: its DNAT target address (an immediate loaded into
// the register the nat expression takes its address from) or its matched
// destination address (masquerading) is in one of them.
func portmapRuleIn(r *nftables.Rule, f family, subnets []netip.Prefix) bool {
	daddrOff, size := uint32(16), uint32(4)
	if f == ipv6 {
		daddrOff, size = 24, 16
	}
	loaded := map[uint32][]byte{} // register: immediate data
	daddrReg := map[uint32]bool{} // register: holds the destination address
	in := func(b []byte) bool {
		a, ok := netip.AddrFromSlice(b)
		return ok && uint32(len(b)) == size && slices.ContainsFunc(subnets, func(p netip.Prefix) bool { return p.Contains(a) })
	}
	for _, e := range r.Exprs {
		switch e := e.(type) {
		case *expr.Immediate:
			loaded[e.Register] = e.Data
		case *expr.Payload:
			daddrReg[e.DestRegister] = e.Base == expr.PayloadBaseNetworkHeader && e.Offset == daddrOff && e.Len == size
		case *expr.Cmp:
			if e.Op == expr.CmpOpEq && daddrReg[e.Register] && in(e.Data) {
				return true
			}
		case *expr.NAT:
			if e.Type == expr.NATTypeDestNAT && in(loaded[e.RegAddrMin]) {
				return true
			}
		}
	}
	return false
}
