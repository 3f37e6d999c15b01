package firewall

import (
	"errors"
	"fmt"
	"net"
	"slices"
	"strings"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/flatcni/plugins/pkg/rtnl"
)

// Isolation says which other networks a network exchanges no forwarded
// traffic with (docs/isolation.md).
type Isolation string

// Isolation values, as the isolation configuration key spells them.
const (
	// IsolationNone isolates nothing (the default; "" means the same).
	IsolationNone Isolation = "none"
	// IsolationIsolated: no traffic with the other isolated networks of
	// this plugin on the node.
	IsolationIsolated Isolation = "isolated"
	// IsolationStrict: no traffic with any other bridge on the node, ours
	// or not, except bridges the node's default routes leave through.
	IsolationStrict Isolation = "strict"
)

// isolates reports whether the network needs isolation rules.
func (n Network) isolates() bool {
	return (n.Isolation != "" && n.Isolation != IsolationNone) || n.Internal || n.NoICC
}

// normalizeIsolation validates the isolation fields and fills the default.
func (n *Network) normalizeIsolation() error {
	switch n.Isolation {
	case "":
		n.Isolation = IsolationNone
	case IsolationNone, IsolationIsolated, IsolationStrict:
	default:
		return fmt.Errorf("network %q: unknown isolation %q: must be %q, %q or %q", n.Name, n.Isolation, IsolationNone, IsolationIsolated, IsolationStrict)
	}
	if n.Internal && n.Masquerade {
		return fmt.Errorf("network %q: an internal network cannot be masqueraded", n.Name)
	}
	return nil
}

// isolationFingerprint adds the isolation fields to a fingerprint; nothing
// for a network without isolation, whose fingerprint stays as it was before
// isolation existed (no rewrite of its rules on upgrade).
func (n Network) isolationFingerprint(b *strings.Builder) {
	if !n.isolates() {
		return
	}
	fmt.Fprintf(b, "|iso=%s,internal=%t,noicc=%t|%s|%s", n.Isolation, n.Internal, n.NoICC,
		strings.Join(n.strictPeers, ","), strings.Join(n.strictExempt, ","))
}

// ruleFamilies returns the families that get rules: those of the subnets,
// and both when the network isolates (forwarded traffic of a family the
// network has no subnet of must not pass either).
func (n Network) ruleFamilies() []family {
	if n.isolates() {
		return allFamilies()
	}
	return n.families()
}

// withNodeBridges fills in what a strict network needs to know of the
// node's other bridges; nothing for other networks. "Any other bridge"
// leaves out the bridges a default route leaves through: a node whose uplink
// is a bridge keeps its way out. A backend that can match an interface's
// kind in the packet path (nftables, kindMatch) needs only those exceptions
// (strictExempt); one that cannot (iptables) needs the list of bridges
// (strictPeers), which then holds the bridges present when the rules were
// written.
func (n Network) withNodeBridges(kindMatch bool) (Network, error) {
	if n.Isolation != IsolationStrict {
		return n, nil
	}
	bridges, err := nodeBridges()
	if err != nil {
		return n, fmt.Errorf("network %q: isolation %q: list the node's bridges: %w", n.Name, n.Isolation, err)
	}
	n.strictPeers, n.strictExempt = nil, nil
	for name, uplink := range bridges {
		switch {
		case name == n.Bridge:
		case uplink && kindMatch:
			n.strictExempt = append(n.strictExempt, name)
		case !uplink && !kindMatch:
			n.strictPeers = append(n.strictPeers, name)
		}
	}
	slices.Sort(n.strictPeers)
	slices.Sort(n.strictExempt)
	return n, nil
}

// nodeBridges returns the node's bridges, each with whether a default route
// (main table, IPv4 or IPv6) leaves through it.
func nodeBridges() (map[string]bool, error) {
	// The bridges only: a dump of every link would bring the node's
	// thousands of container veths too.
	bridges, err := retryInterrupted(rtnl.Bridges)
	if err != nil {
		return nil, fmt.Errorf("list bridges: %w", err)
	}
	out := map[string]bool{}
	for _, name := range bridges {
		out[name] = false
	}
	if len(bridges) == 0 {
		return out, nil
	}
	routes, err := retryInterrupted(func() ([]netlink.Route, error) {
		return netlink.RouteListFiltered(netlink.FAMILY_ALL, &netlink.Route{Table: unix.RT_TABLE_MAIN}, netlink.RT_FILTER_TABLE)
	})
	if err != nil {
		return nil, fmt.Errorf("list routes: %w", err)
	}
	for _, r := range routes {
		if !isDefaultRoute(r.Dst) {
			continue
		}
		idx := []int{r.LinkIndex}
		for _, hop := range r.MultiPath {
			idx = append(idx, hop.LinkIndex)
		}
		for _, i := range idx {
			if name, ok := bridges[int32(i)]; ok {
				out[name] = true
			}
		}
	}
	return out, nil
}

func isDefaultRoute(dst *net.IPNet) bool {
	if dst == nil {
		return true
	}
	ones, _ := dst.Mask.Size()
	return ones == 0
}

// retryInterrupted repeats a netlink dump the kernel interrupted because
// the table changed underneath it.
func retryInterrupted[T any](f func() (T, error)) (T, error) {
	var (
		v   T
		err error
	)
	for range 5 {
		if v, err = f(); !errors.Is(err, netlink.ErrDumpInterrupted) && !errors.Is(err, rtnl.ErrDumpInterrupted) {
			break
		}
	}
	return v, err
}
