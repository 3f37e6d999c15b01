package firewall

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"
)

// Ports publishes container ports on the node (DNAT, as Docker's -p), one
// rule set per network whatever the number of containers and mappings. The
// rule set itself records which attachment owns which mapping (see
// Attachment.tag): it is the truth. A claims index next to the lock
// (ports_index.go) is a cache of it that may claim more, never less, so
// that the conflict check of an ADD and the removal of a DEL cost what
// their own mappings cost, not what the node holds.
//
// Every operation takes one node-wide lock (LockDir/ports.lock): a host port
// is checked free across all networks and published under the same lock.
type Ports interface {
	// Name returns "iptables", "nftables" or "fake".
	Name() string
	// Publish replaces the mappings of owner in network n by maps. A host
	// port already published by another attachment (of any network of ours,
	// in either backend, same family and protocol, same host address or
	// either one the wildcard) fails it with a *PortConflictError before
	// anything changes.
	Publish(n PortNetwork, owner Attachment, maps []Mapping) error
	// Unpublish removes the mappings of owner; the network's rule set goes
	// with its last mapping (after the WithUnguard function when the rule
	// set holds its drop of packets to 127.0.0.0/8). Unpublishing what is
	// not published is no error.
	Unpublish(network string, owner Attachment) error
	// Retain removes the network's mappings whose owner keep rejects (all
	// of them for keep == nil), and the rule set when none is left.
	Retain(network string, keep func(Attachment) bool) error
	// Conflict is Publish's conflict check alone, without the lock and
	// before anything changes: a *PortConflictError when one of maps
	// claims a host port another attachment holds, in either backend. It
	// reads the claims indexes (ports_index.go): the cost is that of maps,
	// not of the node.
	Conflict(network string, owner Attachment, maps []Mapping) error
	// List returns every mapping published by any network of ours.
	List() ([]Published, error)
	// Holds reports, from netlink alone (no process started), whether the
	// network has a rule set in this backend (nftables: its table;
	// iptables: its chain in iptables-nft). Rules of iptables-legacy are
	// not seen.
	Holds(network string) bool
	// Recorded reports whether this backend's claims index records an
	// attachment of the network (a stat or two, no netlink): its rule set
	// may be there unseen (iptables-legacy's) or gone without us (a
	// firewall reload), either way something a DEL should look at.
	Recorded(network string) bool
	// Guarding returns, from netlink alone, the networks whose rule set in
	// this backend holds their drop of packets to 127.0.0.0/8 (which
	// route_localnet on a bridge needs beside it), each with the bridge its
	// mappings use ("" for a rule set written by a version that did not
	// record it). Rules of iptables-legacy are not seen.
	Guarding() map[string]string
	// Refresh puts back, when network n publishes ports, what its rules
	// need outside its own rule set and another program may have removed
	// or overridden since (nftables: the accepts in iptables-nft's FORWARD
	// chains, which a DROP policy set later makes necessary); for an ADD
	// that publishes nothing itself.
	Refresh(n PortNetwork) error
}

// Attachment is one container interface, the owner of its mappings.
type Attachment struct {
	ContainerID string
	IfName      string
}

// tag is how rule sets record an owner: "<containerID>/<ifname>". Neither
// part can hold a '/' (CNI names).
func (a Attachment) tag() string { return a.ContainerID + "/" + a.IfName }

func (a Attachment) String() string {
	return fmt.Sprintf("container %q interface %q", a.ContainerID, a.IfName)
}

func parseTag(s string) (Attachment, bool) {
	id, ifname, ok := strings.Cut(s, "/")
	if !ok || id == "" || ifname == "" {
		return Attachment{}, false
	}
	return Attachment{ContainerID: id, IfName: ifname}, true
}

// maxTagLen keeps an owner tag within nftables' element comments and
// iptables' comments together with the rest of the comment.
const maxTagLen = 200

func (a Attachment) validate() error {
	if a.ContainerID == "" || a.IfName == "" {
		return fmt.Errorf("port mappings need a container ID and an interface name")
	}
	// The tag is written into rule comments and read back from them: no
	// separator, quote or control character (skel checks CNI's character
	// set on the way in; this holds for any other caller).
	bad := func(r rune) bool { return r == '/' || r == ' ' || r == '"' || r < 0x20 || r == 0x7f }
	if strings.ContainsFunc(a.ContainerID, bad) || strings.ContainsFunc(a.IfName, bad) {
		return fmt.Errorf("%v: invalid character in container ID or interface name", a)
	}
	if len(a.tag()) > maxTagLen {
		return fmt.Errorf("%v: container ID and interface name longer than %d characters together", a, maxTagLen)
	}
	return nil
}

// Protocols a mapping can publish.
const (
	ProtoTCP  = "tcp"
	ProtoUDP  = "udp"
	ProtoSCTP = "sctp"
)

// protoNumber returns the IP protocol number of a mapping protocol.
func protoNumber(p string) (uint8, bool) {
	switch p {
	case ProtoTCP:
		return 6, true
	case ProtoUDP:
		return 17, true
	case ProtoSCTP:
		return 132, true
	}
	return 0, false
}

func protoName(n uint8) string {
	for _, p := range []string{ProtoTCP, ProtoUDP, ProtoSCTP} {
		if m, _ := protoNumber(p); m == n {
			return p
		}
	}
	return fmt.Sprint(n)
}

// Mapping is one published port of one family: traffic to HostIP:HostPort
// (any local address of ContainerIP's family when HostIP is the zero Addr)
// goes to ContainerIP:ContainerPort.
type Mapping struct {
	Protocol      string
	HostIP        netip.Addr
	HostPort      uint16
	ContainerIP   netip.Addr
	ContainerPort uint16
}

func (m Mapping) family() family {
	if m.ContainerIP.Is4() {
		return ipv4
	}
	return ipv6
}

// String is the mapping as messages show it: "hostIP:port/proto (family)
// to containerIP:port".
func (m Mapping) String() string {
	return m.host() + " to " + netip.AddrPortFrom(m.ContainerIP, m.ContainerPort).String()
}

// host returns "hostIP:port/proto" or "*:port/proto" (with the family), as
// error messages show it.
func (m Mapping) host() string {
	ip := "*"
	if m.HostIP.IsValid() {
		ip = m.HostIP.String()
		if m.HostIP.Is6() {
			ip = "[" + ip + "]"
		}
	}
	return fmt.Sprintf("%s:%d/%s (%s)", ip, m.HostPort, m.Protocol, m.family())
}

func (m Mapping) validate() error {
	if _, ok := protoNumber(m.Protocol); !ok {
		return fmt.Errorf("port mapping %d: unknown protocol %q", m.HostPort, m.Protocol)
	}
	if m.HostPort == 0 || m.ContainerPort == 0 {
		return fmt.Errorf("port mapping %d to %d/%s: ports must be 1-65535", m.HostPort, m.ContainerPort, m.Protocol)
	}
	if !m.ContainerIP.IsValid() || m.ContainerIP.Is4In6() || m.ContainerIP.Zone() != "" {
		return fmt.Errorf("port mapping %s: invalid container address %v", m.host(), m.ContainerIP)
	}
	if m.HostIP.IsValid() && (m.HostIP.Is4() != m.ContainerIP.Is4() || m.HostIP.Is4In6() || m.HostIP.Zone() != "") {
		return fmt.Errorf("port mapping %s: host address and container address %s differ in family", m.host(), m.ContainerIP)
	}
	return nil
}

// overlaps reports whether m and o claim the same host port.
func (m Mapping) overlaps(o Mapping) bool {
	return m.family() == o.family() && m.Protocol == o.Protocol && m.HostPort == o.HostPort &&
		(!m.HostIP.IsValid() || !o.HostIP.IsValid() || m.HostIP == o.HostIP)
}

// Published is a mapping in a rule set, with its network and owner.
type Published struct {
	Network string
	Owner   Attachment
	Mapping
}

// PortConflictError says that a host port is held by another attachment.
type PortConflictError struct {
	Want   Mapping
	Holder Published
	// Backend is the backend whose rules hold the port when it is not the
	// one asked to publish ("": that one).
	Backend string
}

func (e *PortConflictError) Error() string {
	in := ""
	if e.Backend != "" {
		in = ", ipMasqBackend " + e.Backend
	}
	return fmt.Sprintf("host port %s is already published by %v on network %q (as %s%s)",
		e.Want.host(), e.Holder.Owner, e.Holder.Network, e.Holder.host(), in)
}

// PortNetwork is the network a container's ports are published on.
type PortNetwork struct {
	Name   string
	Bridge string
	// Subnets are the network's container subnets; the iptables backend
	// masquerades DNAT'd traffic from them back to the bridge (hairpin).
	Subnets []netip.Prefix
}

func (n PortNetwork) normalize() (PortNetwork, error) {
	if err := validateName(n.Name); err != nil {
		return PortNetwork{}, err
	}
	if n.Bridge == "" || len(n.Bridge) > 15 || strings.ContainsAny(n.Bridge, " /\"\x00") {
		return PortNetwork{}, fmt.Errorf("network %q: invalid bridge name %q", n.Name, n.Bridge)
	}
	var err error
	if n.Subnets, err = canonicalPrefixes(n.Subnets); err != nil {
		return PortNetwork{}, fmt.Errorf("network %q: subnets: %w", n.Name, err)
	}
	return n, nil
}

// fingerprint identifies the network's fixed rules (all but the mappings).
func (n PortNetwork) fingerprint() string {
	var b strings.Builder
	// v2: ::1 left alone (written again on nodes with v1's rules).
	fmt.Fprintf(&b, "ports-v2|%s|%s|", n.Name, n.Bridge)
	for _, p := range n.Subnets {
		b.WriteString(p.String() + ",")
	}
	sum := sha256.Sum256([]byte(b.String()))
	return hex.EncodeToString(sum[:])[:12]
}

// checkPublish validates a Publish request and finds conflicts with what is
// published (existing) by other owners. It returns the normalized network.
func checkPublish(n PortNetwork, owner Attachment, maps []Mapping, existing []Published) (PortNetwork, error) {
	n, err := n.normalize()
	if err != nil {
		return n, err
	}
	if err := owner.validate(); err != nil {
		return n, err
	}
	for i, m := range maps {
		if err := m.validate(); err != nil {
			return n, fmt.Errorf("network %q: %w", n.Name, err)
		}
		for _, o := range maps[:i] {
			if m.overlaps(o) {
				return n, fmt.Errorf("network %q: host port %s is mapped twice", n.Name, m.host())
			}
		}
	}
	return n, FindConflict(existing, n.Name, owner, maps)
}

// FindConflict returns a *PortConflictError when one of maps claims a host
// port that another attachment holds in existing (the attachment itself,
// on the same network, holds nothing against its new mappings).
func FindConflict(existing []Published, network string, owner Attachment, maps []Mapping) error {
	for _, m := range maps {
		for _, p := range existing {
			if (p.Network != network || p.Owner != owner) && m.overlaps(p.Mapping) {
				return &PortConflictError{Want: m, Holder: p}
			}
		}
	}
	return nil
}

// udpPorts returns the UDP mappings among ps (whose conntrack entries are
// flushed when they are published or unpublished).
func udpMappings(ps []Mapping) []Mapping {
	var out []Mapping
	for _, m := range ps {
		if m.Protocol == ProtoUDP {
			out = append(out, m)
		}
	}
	return out
}

func mappingsOf(ps []Published) []Mapping {
	out := make([]Mapping, len(ps))
	for i, p := range ps {
		out[i] = p.Mapping
	}
	return out
}

// sortPublished orders mappings for stable listings.
func sortPublished(ps []Published) { slices.SortFunc(ps, comparePublished) }

func comparePublished(a, b Published) int {
	if c := strings.Compare(a.Network, b.Network); c != 0 {
		return c
	}
	if c := strings.Compare(a.Owner.tag(), b.Owner.tag()); c != 0 {
		return c
	}
	if c := int(a.HostPort) - int(b.HostPort); c != 0 {
		return c
	}
	if c := strings.Compare(a.Protocol, b.Protocol); c != 0 {
		return c
	}
	return a.ContainerIP.Compare(b.ContainerIP)
}

// portsLockName is the node-wide lock file of port publishing.
const portsLockName = "ports.lock"

// NewPorts returns the port publisher of backend name ("iptables",
// "nftables", or "" for the same default as New).
func NewPorts(name string, opts ...Option) (Ports, error) {
	o := buildOptions(opts)
	switch name {
	case IPTablesName:
		return &iptPorts{opts: o}, nil
	case NFTablesName:
		return &nftPorts{opts: o}, nil
	case "":
		if !supportsIPTables() && supportsNFTables() {
			return &nftPorts{opts: o}, nil
		}
		return &iptPorts{opts: o}, nil
	default:
		return nil, fmt.Errorf("unknown ipMasqBackend %q: must be %q or %q", name, IPTablesName, NFTablesName)
	}
}

// PortsHolder is Holder for the port rule sets.
func PortsHolder(network string) string {
	for _, name := range Names("") {
		if b, err := NewPorts(name); err == nil && b.Holds(network) {
			return name
		}
	}
	return ""
}

// portsComment is the comment prefix of every port-publishing rule. It
// differs from the masquerade rules' "flatcni net=" so that neither set of
// rules is taken for the other.
const portsCommentPrefix = "flatcni-ports net="

// portsFixedComment marks the network's fixed rules with their fingerprint
// and the bridge whose route_localnet their 127.0.0.0/8 drop guards:
// "flatcni-ports net=<name> cfg=<hash> br=<bridge>".
func portsFixedComment(n PortNetwork, fp string) string {
	return portsCommentPrefix + n.Name + " cfg=" + fp + " br=" + n.Bridge
}

// parseFixed returns the fingerprint and the bridge of the rest of a fixed
// rule's comment (after the network); the bridge is "" in the comments of
// versions that did not record it.
func parseFixed(rest string) (fp, bridge string, ok bool) {
	rest, ok = strings.CutPrefix(rest, "cfg=")
	if !ok {
		return "", "", false
	}
	fp, bridge, _ = strings.Cut(rest, " br=")
	return fp, bridge, true
}

// portsMappingComment marks one mapping's rule (iptables) with its owner and
// the mapping itself, "… own=<tag> map=<proto>,<hostIP or *>,<hostPort>,
// <containerIP>,<containerPort>", so that reading the comments (through
// netlink with iptables-nft) tells everything.
func portsMappingComment(network string, owner Attachment, m Mapping) string {
	host := "*"
	if m.HostIP.IsValid() {
		host = m.HostIP.String()
	}
	return fmt.Sprintf("%s%s own=%s map=%s,%s,%d,%s,%d", portsCommentPrefix, network, owner.tag(),
		m.Protocol, host, m.HostPort, m.ContainerIP, m.ContainerPort)
}

// parseMappingComment reads a comment made by portsMappingComment.
func parseMappingComment(c string) (network string, owner Attachment, m Mapping, ok bool) {
	network, rest, ok := parsePortsComment(c)
	if !ok {
		return "", owner, m, false
	}
	tag, spec, _ := strings.Cut(rest, " ")
	tag, ok1 := strings.CutPrefix(tag, "own=")
	spec, ok2 := strings.CutPrefix(spec, "map=")
	if owner, ok = parseTag(tag); !ok || !ok1 || !ok2 {
		return "", owner, m, false
	}
	f := strings.Split(spec, ",")
	if len(f) != 5 {
		return "", owner, m, false
	}
	hp, err1 := strconv.ParseUint(f[2], 10, 16)
	cp, err2 := strconv.ParseUint(f[4], 10, 16)
	cip, err3 := netip.ParseAddr(f[3])
	if err1 != nil || err2 != nil || err3 != nil {
		return "", owner, m, false
	}
	m = Mapping{Protocol: f[0], HostPort: uint16(hp), ContainerIP: cip, ContainerPort: uint16(cp)}
	if f[1] != "*" {
		if m.HostIP, err1 = netip.ParseAddr(f[1]); err1 != nil {
			return "", owner, m, false
		}
	}
	return network, owner, m, m.validate() == nil
}

// parsePortsComment returns the network and the rest ("cfg=..." or
// "own=...") of a comment of ours.
func parsePortsComment(c string) (network, rest string, ok bool) {
	r, ok := strings.CutPrefix(c, portsCommentPrefix)
	if !ok {
		return "", "", false
	}
	network, rest, _ = strings.Cut(r, " ")
	if validateName(network) != nil {
		return "", "", false
	}
	return network, rest, true
}

// portsMasqSources returns the sources whose DNAT'd traffic to the bridge is
// masqueraded: the network's subnets (hairpin) and 127.0.0.0/8.
func portsMasqSources(n PortNetwork) []netip.Prefix {
	return append(slices.Clone(n.Subnets), localnet)
}

// localnet is IPv4's loopback range: published ports are reachable at
// 127.0.0.1 on the node, and remote packets to it are dropped.
var localnet = netip.MustParsePrefix("127.0.0.0/8")
