package firewall

import (
	"net/netip"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"github.com/google/nftables/xt"
	"golang.org/x/sys/unix"
)

// nftMasqChain is the nat chain in a network's table.
const nftMasqChain = "postrouting"

// nftMasqueradeRules returns the expressions of the masquerade rules of
// family f: return for every destination never masqueraded, then masquerade
// for every source subnet.
func nftMasqueradeRules(n Network, f family) [][]expr.Any {
	var rules [][]expr.Any
	for _, d := range n.nonMasquerade(f) {
		e := append(nfprotoMatch(f), prefixMatch(d, false)...)
		rules = append(rules, append(e, &expr.Verdict{Kind: expr.VerdictReturn}))
	}
	for _, s := range n.subnets(f) {
		e := append(nfprotoMatch(f), prefixMatch(s, true)...)
		rules = append(rules, append(e, &expr.Masq{}))
	}
	return rules
}

// nfprotoMatch restricts a rule of an inet table to family f.
func nfprotoMatch(f family) []expr.Any {
	proto := byte(unix.NFPROTO_IPV4)
	if f == ipv6 {
		proto = unix.NFPROTO_IPV6
	}
	return []expr.Any{
		&expr.Meta{Key: expr.MetaKeyNFPROTO, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{proto}},
	}
}

// prefixMatch matches the source (or destination) address against p.
func prefixMatch(p netip.Prefix, source bool) []expr.Any {
	addr := p.Addr().AsSlice()
	var offset uint32
	switch {
	case p.Addr().Is4() && source:
		offset = 12
	case p.Addr().Is4():
		offset = 16
	case source:
		offset = 8
	default:
		offset = 24
	}
	if p.Bits() == 0 {
		return nil
	}
	e := []expr.Any{&expr.Payload{
		DestRegister: 1,
		Base:         expr.PayloadBaseNetworkHeader,
		Offset:       offset,
		Len:          uint32(len(addr)),
	}}
	if p.Bits() < len(addr)*8 {
		e = append(e, &expr.Bitwise{
			SourceRegister: 1,
			DestRegister:   1,
			Len:            uint32(len(addr)),
			Mask:           prefixMask(p.Bits(), len(addr)),
			Xor:            make([]byte, len(addr)),
		})
	}
	return append(e, &expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: addr})
}

func prefixMask(bits, size int) []byte {
	m := make([]byte, size)
	for i := 0; i < bits; i++ {
		m[i/8] |= 0x80 >> (i % 8)
	}
	return m
}

// Conntrack states as the xt conntrack match encodes them.
const (
	xtStateEstablished = 1 << 1
	xtStateRelated     = 1 << 2
)

// nftForwardRules returns the two rules put in iptables-nft's FORWARD
// chain, in the form iptables-nft itself writes
// "-i <br> -j ACCEPT" and "-o <br> -m conntrack --ctstate
// RELATED,ESTABLISHED -j ACCEPT", so that iptables-nft keeps working on the
// chain. The comment goes in the user data.
func nftForwardRules(n Network, comment string) [][]expr.Any {
	name := append([]byte(n.Bridge), 0)
	in := []expr.Any{
		&expr.Meta{Key: expr.MetaKeyIIFNAME, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: name},
		&expr.Counter{},
		&expr.Verdict{Kind: expr.VerdictAccept},
	}
	out := []expr.Any{
		&expr.Meta{Key: expr.MetaKeyOIFNAME, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: name},
		&expr.Match{Name: "conntrack", Rev: 3, Info: &xt.ConntrackMtinfo3{
			ConntrackMtinfo2: xt.ConntrackMtinfo2{
				ConntrackMtinfoBase: xt.ConntrackMtinfoBase{MatchFlags: uint16(xt.ConntrackState)},
				StateMask:           xtStateEstablished | xtStateRelated,
			},
		}},
		&expr.Counter{},
		&expr.Verdict{Kind: expr.VerdictAccept},
	}
	return [][]expr.Any{in, out}
}

// commentUserData encodes a rule comment as nft(8) and iptables-nft do.
func commentUserData(comment string) []byte {
	const ruleCommentType = 0 // NFTNL_UDATA_RULE_COMMENT
	b := []byte(comment)
	if len(b) > 254 {
		b = b[:254]
	}
	return append([]byte{ruleCommentType, byte(len(b) + 1)}, append(b, 0)...)
}

// userDataComment returns the comment stored in a rule's user data.
func userDataComment(ud []byte) string {
	for len(ud) >= 2 {
		typ, l := ud[0], int(ud[1])
		if len(ud) < 2+l {
			return ""
		}
		if typ == 0 {
			v := ud[2 : 2+l]
			for len(v) > 0 && v[len(v)-1] == 0 {
				v = v[:len(v)-1]
			}
			return string(v)
		}
		ud = ud[2+l:]
	}
	return ""
}

// iptablesNFTChain identifies iptables-nft's FORWARD chain of family f.
func iptablesNFTForward(f family) (*nftables.Table, *nftables.Chain) {
	fam := nftables.TableFamilyIPv4
	if f == ipv6 {
		fam = nftables.TableFamilyIPv6
	}
	t := &nftables.Table{Name: filterTable, Family: fam}
	return t, &nftables.Chain{Name: forwardChain, Table: t}
}
