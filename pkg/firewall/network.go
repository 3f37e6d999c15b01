package firewall

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/netip"
	"slices"
	"strings"
)

// Network describes the firewall needs of one CNI network.
type Network struct {
	// Name is the CNI network name; it identifies the rule set.
	Name string
	// Bridge is the name of the network's bridge interface.
	Bridge string
	// Subnets are the network's container subnets (IPv4 and/or IPv6).
	Subnets []netip.Prefix
	// NonMasquerade lists destinations that are never masqueraded, in
	// addition to the network's own subnets and multicast.
	NonMasquerade []netip.Prefix
	// Masquerade enables masquerading of traffic leaving the subnets.
	Masquerade bool
	// Forward accepts forwarded traffic in from and (established or
	// related) out to the bridge.
	Forward bool
	// Isolation, Internal and NoICC separate the network from others and
	// its containers from each other (isolation.go).
	Isolation Isolation
	Internal  bool
	NoICC     bool

	// strictPeers are the bridges a strict network is kept from, when the
	// backend must list them (iptables); strictExempt the bridges it is not
	// kept from although they are bridges (nftables). Both are found on
	// the node by the backend and are part of the fingerprint.
	strictPeers, strictExempt []string
}

// family is an IP address family.
type family int

const (
	ipv4 family = 4
	ipv6 family = 6
)

// allFamilies returns both address families.
func allFamilies() []family { return []family{ipv4, ipv6} }

func (f family) String() string {
	if f == ipv6 {
		return "IPv6"
	}
	return "IPv4"
}

// multicast returns the family's multicast range.
func (f family) multicast() netip.Prefix {
	if f == ipv6 {
		return netip.MustParsePrefix("ff00::/8")
	}
	return netip.MustParsePrefix("224.0.0.0/4")
}

func familyOf(p netip.Prefix) family {
	if p.Addr().Is4() {
		return ipv4
	}
	return ipv6
}

// maxNameLen bounds network names so that comments and table names stay
// within the limits of iptables (256) and nftables (256, 255 for comments).
const maxNameLen = 200

// validateName checks the network-name syntax the CNI specification allows
// (^[a-zA-Z0-9][a-zA-Z0-9_.\-]*$) and the length limit.
func validateName(name string) error {
	if len(name) > maxNameLen {
		return fmt.Errorf("network name %q is longer than %d characters", name, maxNameLen)
	}
	for i, c := range name {
		alnum := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
		if !alnum && (i == 0 || (c != '_' && c != '.' && c != '-')) {
			return fmt.Errorf("invalid network name %q: only letters, digits, '_', '.' and '-' are allowed, starting with a letter or digit", name)
		}
	}
	if name == "" {
		return fmt.Errorf("empty network name")
	}
	return nil
}

// holdsNone reports whether a network name can have no rules: one that
// validateName refuses (too long for a comment or a table name). What would
// make its rules refuses it, so a removal has nothing to do: DEL and GC of
// such a network succeed instead of failing for ever.
func holdsNone(name string) bool { return validateName(name) != nil }

// ValidateName says why a network name cannot have rules, if it cannot
// (ADD refuses such a network before the node changes when it asks for
// rules or published ports).
func ValidateName(name string) error { return validateName(name) }

// normalize validates n and returns a copy with canonical prefixes (masked,
// unmapped, sorted, deduplicated).
func (n Network) normalize() (Network, error) {
	if err := validateName(n.Name); err != nil {
		return Network{}, err
	}
	if err := n.normalizeIsolation(); err != nil {
		return Network{}, err
	}
	if (n.Forward || n.isolates()) && (n.Bridge == "" || len(n.Bridge) > 15 || strings.ContainsAny(n.Bridge, " /\x00")) {
		return Network{}, fmt.Errorf("network %q: invalid bridge name %q", n.Name, n.Bridge)
	}
	var err error
	if n.Subnets, err = canonicalPrefixes(n.Subnets); err != nil {
		return Network{}, fmt.Errorf("network %q: subnets: %w", n.Name, err)
	}
	if n.NonMasquerade, err = canonicalPrefixes(n.NonMasquerade); err != nil {
		return Network{}, fmt.Errorf("network %q: nonMasqueradeCIDRs: %w", n.Name, err)
	}
	return n, nil
}

func canonicalPrefixes(in []netip.Prefix) ([]netip.Prefix, error) {
	out := make([]netip.Prefix, 0, len(in))
	for _, p := range in {
		if !p.IsValid() {
			return nil, fmt.Errorf("invalid prefix %v", p)
		}
		a := p.Addr()
		bits := p.Bits()
		if a.Is4In6() && bits >= 96 {
			a, bits = a.Unmap(), bits-96
		}
		out = append(out, netip.PrefixFrom(a.WithZone(""), bits).Masked())
	}
	slices.SortFunc(out, func(a, b netip.Prefix) int {
		if c := a.Addr().Compare(b.Addr()); c != 0 {
			return c
		}
		return a.Bits() - b.Bits()
	})
	return slices.Compact(out), nil
}

// families returns the address families used by the network's subnets.
func (n Network) families() []family {
	var fams []family
	for _, f := range allFamilies() {
		if len(n.subnets(f)) > 0 {
			fams = append(fams, f)
		}
	}
	return fams
}

// subnets returns the network's subnets of family f.
func (n Network) subnets(f family) []netip.Prefix {
	return filterFamily(n.Subnets, f)
}

// nonMasquerade returns the destinations of family f that are never
// masqueraded: the network's own subnets, multicast and NonMasquerade.
func (n Network) nonMasquerade(f family) []netip.Prefix {
	out := slices.Clone(n.subnets(f))
	out = append(out, f.multicast())
	return append(out, filterFamily(n.NonMasquerade, f)...)
}

func filterFamily(ps []netip.Prefix, f family) []netip.Prefix {
	var out []netip.Prefix
	for _, p := range ps {
		if familyOf(p) == f {
			out = append(out, p)
		}
	}
	return out
}

// active reports whether the network needs any rules at all.
func (n Network) active() bool {
	return (n.Masquerade || n.Forward) && len(n.Subnets) > 0 || n.isolates()
}

// fingerprint returns a short hash of the whole (normalized) description,
// used to tell whether the installed rules match it.
func (n Network) fingerprint() string {
	var b strings.Builder
	fmt.Fprintf(&b, "v1|%s|%s|%t|%t|", n.Name, n.Bridge, n.Masquerade, n.Forward)
	for _, p := range n.Subnets {
		b.WriteString(p.String() + ",")
	}
	b.WriteString("|")
	for _, p := range n.NonMasquerade {
		b.WriteString(p.String() + ",")
	}
	n.isolationFingerprint(&b)
	sum := sha256.Sum256([]byte(b.String()))
	return hex.EncodeToString(sum[:])[:12]
}
