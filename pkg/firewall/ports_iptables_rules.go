package firewall

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/netip"
	"strconv"
)

// The iptables backend keeps, per family, one chain per network in the nat
// table, FLATCNIP-<19 hex digits of the SHA-256 of the network name>, with
// one DNAT rule per mapping, commented "flatcni-ports net=<name>
// own=<containerID>/<ifname>". The network's fixed rules carry
// "flatcni-ports net=<name> cfg=<hash> br=<bridge>":
//
//	nat PREROUTING, OUTPUT: -m addrtype --dst-type LOCAL -j FLATCNIP-…
//	                 (ip6tables OUTPUT: ! -d ::1/128 first)
//	nat POSTROUTING: -s <subnet> -o <br> -m conntrack --ctstate DNAT -j MASQUERADE (hairpin),
//	                 -s 127.0.0.0/8 -o <br> … -j MASQUERADE (IPv4: 127.0.0.1 on the node)
//	filter FORWARD (first): -o <br> / -i <br> -m conntrack --ctstate DNAT -j ACCEPT
//	raw PREROUTING (IPv4): ! -i lo -d 127.0.0.0/8 -j DROP
//
// The PREROUTING jump is written last (nothing is redirected before the
// rest is in place); a reload may flush any of these chains, so each is
// checked (ensureFixed).
const (
	iptPortsChainPrefix = "FLATCNIP-"
	rawTable            = "raw"
	preroutingChain     = "PREROUTING"
	outputChain         = "OUTPUT"
)

func iptPortsChain(network string) string {
	sum := sha256.Sum256([]byte(network))
	return iptPortsChainPrefix + hex.EncodeToString(sum[:])[:iptChainMaxLen-len(iptPortsChainPrefix)]
}

// iptFixedRule is one fixed rule and where it goes.
type iptFixedRule struct {
	table, chain string
	insert       bool
	spec         []string
}

// iptPortsFixed returns the network's fixed rules of family f, in the order
// they are written (the PREROUTING jump last).
func iptPortsFixed(n PortNetwork, f family, fp string) []iptFixedRule {
	c := []string{"-m", "comment", "--comment", portsFixedComment(n, fp)}
	dnat := []string{"-m", "conntrack", "--ctstate", "DNAT"}
	var rules []iptFixedRule
	for _, s := range filterFamily(portsMasqSources(n), f) {
		spec := append([]string{"-s", s.String(), "-o", n.Bridge}, dnat...)
		rules = append(rules, iptFixedRule{natTable, postroutingChain, false, append(append(spec, c...), "-j", "MASQUERADE")})
	}
	for _, dir := range []string{"-i", "-o"} {
		spec := append([]string{dir, n.Bridge}, dnat...)
		rules = append(rules, iptFixedRule{filterTable, forwardChain, true, append(append(spec, c...), "-j", "ACCEPT")})
	}
	if f == ipv4 {
		spec := append([]string{"!", "-i", "lo", "-d", localnet.String()}, c...)
		rules = append(rules, iptFixedRule{rawTable, preroutingChain, false, append(spec, "-j", "DROP")})
	}
	jump := append([]string{"-m", "addrtype", "--dst-type", "LOCAL"}, c...)
	jump = append(jump, "-j", iptPortsChain(n.Name))
	out := jump
	if f == ipv6 {
		// The node's ::1 is left alone: what is redirected from it to
		// another host the kernel drops (no route_localnet for IPv6).
		out = append([]string{"!", "-d", ipv6Loopback.String()}, jump...)
	}
	rules = append(rules, iptFixedRule{natTable, outputChain, false, out}, iptFixedRule{natTable, preroutingChain, false, jump})
	return rules
}

// iptFixedHooks lists the built-in chains that can hold fixed rules, the
// one of the 127.0.0.0/8 drop first (see iptDeleteFixed).
func iptFixedHooks() [][2]string {
	return [][2]string{{rawTable, preroutingChain}, {natTable, preroutingChain}, {natTable, outputChain}, {natTable, postroutingChain}, {filterTable, forwardChain}}
}

// iptMappingRule returns a mapping's rule in the network's chain.
func iptMappingRule(network string, owner Attachment, m Mapping) []string {
	var spec []string
	if m.HostIP.IsValid() {
		spec = append(spec, "-d", netip.PrefixFrom(m.HostIP, m.HostIP.BitLen()).String())
	}
	spec = append(spec, "-p", m.Protocol, "-m", m.Protocol, "--dport", strconv.Itoa(int(m.HostPort)),
		"-m", "comment", "--comment", portsMappingComment(network, owner, m),
		"-j", "DNAT", "--to-destination", netip.AddrPortFrom(m.ContainerIP, m.ContainerPort).String())
	return spec
}

// iptMaxComment is the longest comment iptables stores.
const iptMaxComment = 255

func (r iptFixedRule) String() string {
	return fmt.Sprintf("%s %s %v", r.table, r.chain, r.spec)
}
