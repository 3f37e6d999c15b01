package firewall

import (
	"encoding/binary"
	"net/netip"

	"github.com/google/nftables"
	"github.com/google/nftables/binaryutil"
	"github.com/google/nftables/expr"
	"github.com/google/nftables/xt"
	"golang.org/x/sys/unix"
)

// A network's port table, "inet flatcni_ports-<network>", holds four maps
// and five chains:
//
//	map any4  { type inet_proto . inet_service : ipv4_addr . inet_service }
//	map host4 { type ipv4_addr . inet_proto . inet_service : ipv4_addr . inet_service }
//	map any6, host6: the same with ipv6_addr
//	chain publish: dnat ip to ip daddr . meta l4proto . th dport map @host4,
//	               dnat ip to meta l4proto . th dport map @any4 (and IPv6)
//	chain prerouting (nat, dstnat) and output (nat, -100):
//	               fib daddr type local jump publish
//	               (output: ip6 daddr ::1 return first)
//	chain postrouting (nat, srcnat): ct status dnat iifname <br> oifname <br> masquerade (hairpin)
//	               ct status dnat ip saddr 127.0.0.0/8 oifname <br> masquerade (127.0.0.1 on the node)
//	chain raw (filter, prerouting -300): iifname != "lo" ip daddr 127.0.0.0/8 drop
//
// A map element carries its owner's tag ("<containerID>/<ifname>") as its
// comment. The fixed rules carry "flatcni-ports net=<name> cfg=<hash> br=<bridge>".
const (
	nftPortsTablePrefix = "flatcni_ports-"
	nftPublishChain     = "publish"
	nftPortsPrerouting  = "prerouting"
	nftPortsOutput      = "output"
	nftPortsPostrouting = "postrouting"
	nftPortsRaw         = "raw"
)

func nftPortsTable(network string) *nftables.Table {
	return &nftables.Table{Name: nftPortsTablePrefix + network, Family: nftables.TableFamilyINet}
}

// portMap describes one of the four maps.
type portMap struct {
	name string
	fam  family
	host bool // keyed by the host address too
}

func portMaps() []portMap {
	return []portMap{{"host4", ipv4, true}, {"any4", ipv4, false}, {"host6", ipv6, true}, {"any6", ipv6, false}}
}

func mapOf(m Mapping) portMap {
	for _, pm := range portMaps() {
		if pm.fam == m.family() && pm.host == m.HostIP.IsValid() {
			return pm
		}
	}
	panic("unreachable")
}

func (pm portMap) addrType() nftables.SetDatatype {
	if pm.fam == ipv6 {
		return nftables.TypeIP6Addr
	}
	return nftables.TypeIPAddr
}

func (pm portMap) set(t *nftables.Table) *nftables.Set {
	key := nftables.MustConcatSetType(nftables.TypeInetProto, nftables.TypeInetService)
	if pm.host {
		key = nftables.MustConcatSetType(pm.addrType(), nftables.TypeInetProto, nftables.TypeInetService)
	}
	return &nftables.Set{
		Table:    t,
		Name:     pm.name,
		IsMap:    true,
		KeyType:  key,
		DataType: nftables.MustConcatSetType(pm.addrType(), nftables.TypeInetService),
	}
}

// pad4 pads b to a multiple of 4 bytes, as concatenations store it.
func pad4(b []byte) []byte {
	for len(b)%4 != 0 {
		b = append(b, 0)
	}
	return b
}

func portBytes(p uint16) []byte { return binary.BigEndian.AppendUint16(nil, p) }

// element encodes a mapping as its map's element.
func element(m Mapping, owner Attachment) nftables.SetElement {
	proto, _ := protoNumber(m.Protocol)
	var key []byte
	if m.HostIP.IsValid() {
		key = m.HostIP.AsSlice()
	}
	key = append(key, pad4([]byte{proto})...)
	key = append(key, pad4(portBytes(m.HostPort))...)
	val := append(m.ContainerIP.AsSlice(), pad4(portBytes(m.ContainerPort))...)
	return nftables.SetElement{Key: key, Val: val, Comment: owner.tag()}
}

// parseElement decodes an element of map pm.
func parseElement(pm portMap, e nftables.SetElement) (Mapping, Attachment, bool) {
	alen := 4
	if pm.fam == ipv6 {
		alen = 16
	}
	key := e.Key
	var m Mapping
	if pm.host {
		if len(key) < alen {
			return m, Attachment{}, false
		}
		m.HostIP, _ = netip.AddrFromSlice(key[:alen])
		key = key[alen:]
	}
	if len(key) != 8 || len(e.Val) != alen+4 {
		return m, Attachment{}, false
	}
	m.Protocol = protoName(key[0])
	m.HostPort = binary.BigEndian.Uint16(key[4:6])
	m.ContainerIP, _ = netip.AddrFromSlice(e.Val[:alen])
	m.ContainerPort = binary.BigEndian.Uint16(e.Val[alen : alen+2])
	owner, ok := parseTag(e.Comment)
	return m, owner, ok
}

// Registers: NFT_REG_1 is the first 32-bit register NFT_REG32_00 (8).
const (
	reg1    = 1
	reg32_0 = 8
)

// nftPublishRules returns the rules of chain publish: per family, the
// lookup in the host-address map, then in the wildcard map, each a DNAT to
// the address and port found.
func nftPublishRules(sets map[string]*nftables.Set) [][]expr.Any {
	var rules [][]expr.Any
	for _, pm := range portMaps() {
		alen := uint32(4)
		daddr := uint32(16)
		nfproto := uint32(unix.NFPROTO_IPV4)
		if pm.fam == ipv6 {
			alen, daddr, nfproto = 16, 24, unix.NFPROTO_IPV6
		}
		e := nfprotoMatch(pm.fam)
		next := uint32(reg32_0)
		if pm.host {
			e = append(e, &expr.Payload{DestRegister: reg1, Base: expr.PayloadBaseNetworkHeader, Offset: daddr, Len: alen})
			next += alen / 4
		}
		e = append(e,
			&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: next},
			&expr.Payload{DestRegister: next + 1, Base: expr.PayloadBaseTransportHeader, Offset: 2, Len: 2},
		)
		s := sets[pm.name]
		e = append(e,
			&expr.Lookup{SourceRegister: reg1, DestRegister: reg1, IsDestRegSet: true, SetName: s.Name, SetID: s.ID},
			&expr.NAT{Type: expr.NATTypeDestNAT, Family: nfproto, RegAddrMin: reg1, RegProtoMin: reg32_0 + alen/4},
		)
		rules = append(rules, e)
	}
	return rules
}

// nftLocalJump is "fib daddr type local jump publish".
func nftLocalJump() []expr.Any {
	return []expr.Any{
		&expr.Fib{Register: reg1, FlagDADDR: true, ResultADDRTYPE: true},
		&expr.Cmp{Op: expr.CmpOpEq, Register: reg1, Data: binaryutil.NativeEndian.PutUint32(unix.RTN_LOCAL)},
		&expr.Verdict{Kind: expr.VerdictJump, Chain: nftPublishChain},
	}
}

// ipv6Loopback is ::1, which publishing leaves alone: the kernel drops what
// is redirected from it to another host (IPv6 has no route_localnet).
var ipv6Loopback = netip.MustParsePrefix("::1/128")

// nftLoopback6Return is "ip6 daddr ::1 return", before the output chain's
// jump.
func nftLoopback6Return() []expr.Any {
	e := append(nfprotoMatch(ipv6), prefixMatch(ipv6Loopback, false)...)
	return append(e, &expr.Verdict{Kind: expr.VerdictReturn})
}

// ctDNAT matches connections whose destination was translated ("ct status dnat").
func ctDNAT() []expr.Any {
	const ipsDstNAT = 1 << 5
	return []expr.Any{
		&expr.Ct{Key: expr.CtKeySTATUS, Register: reg1},
		&expr.Bitwise{SourceRegister: reg1, DestRegister: reg1, Len: 4,
			Mask: binaryutil.NativeEndian.PutUint32(ipsDstNAT), Xor: make([]byte, 4)},
		&expr.Cmp{Op: expr.CmpOpNeq, Register: reg1, Data: make([]byte, 4)},
	}
}

func ifname(key expr.MetaKey, op expr.CmpOp, name string) []expr.Any {
	return []expr.Any{
		&expr.Meta{Key: key, Register: reg1},
		&expr.Cmp{Op: op, Register: reg1, Data: append([]byte(name), 0)},
	}
}

// nftPortsPostroutingRules masquerade published traffic that would not find
// its way back otherwise: from the network's subnets back to its bridge
// (hairpin: also when br_netfilter bridges the DNAT'd packet, which then has
// no input interface here), and from the node's 127.0.0.0/8.
func nftPortsPostroutingRules(n PortNetwork) [][]expr.Any {
	var rules [][]expr.Any
	for _, s := range portsMasqSources(n) {
		e := append(nfprotoMatch(familyOf(s)), ctDNAT()...)
		e = append(e, prefixMatch(s, true)...)
		e = append(e, ifname(expr.MetaKeyOIFNAME, expr.CmpOpEq, n.Bridge)...)
		rules = append(rules, append(e, &expr.Masq{}))
	}
	return rules
}

// nftLocalnetDrop drops packets to 127.0.0.0/8 that did not come from the
// loopback interface: route_localnet on the bridge would otherwise let
// containers (and whoever reaches the bridge) talk to the node's loopback
// services.
func nftLocalnetDrop() []expr.Any {
	e := append(nfprotoMatch(ipv4), ifname(expr.MetaKeyIIFNAME, expr.CmpOpNeq, "lo")...)
	e = append(e, prefixMatch(localnet, false)...)
	return append(e, &expr.Verdict{Kind: expr.VerdictDrop})
}

// xtStateDNAT is the xt conntrack match's bit for "--ctstate DNAT".
const xtStateDNAT = 1 << 7

// nftPortsForwardRules returns the rules put in iptables-nft's FORWARD chain
// so that published traffic passes a DROP policy, as iptables-nft writes
// "-o <br> -m conntrack --ctstate DNAT -j ACCEPT" and the same with -i (the
// replies).
func nftPortsForwardRules(n PortNetwork) [][]expr.Any {
	var rules [][]expr.Any
	for _, key := range []expr.MetaKey{expr.MetaKeyOIFNAME, expr.MetaKeyIIFNAME} {
		e := ifname(key, expr.CmpOpEq, n.Bridge)
		e = append(e,
			&expr.Match{Name: "conntrack", Rev: 3, Info: &xt.ConntrackMtinfo3{
				ConntrackMtinfo2: xt.ConntrackMtinfo2{
					ConntrackMtinfoBase: xt.ConntrackMtinfoBase{MatchFlags: uint16(xt.ConntrackState)},
					StateMask:           xtStateDNAT,
				},
			}},
			&expr.Counter{},
			&expr.Verdict{Kind: expr.VerdictAccept},
		)
		rules = append(rules, e)
	}
	return rules
}
