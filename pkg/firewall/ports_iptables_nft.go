package firewall

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"net"
	"slices"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"github.com/google/nftables/xt"
	"github.com/vishvananda/netlink/nl"
	"golang.org/x/sys/unix"
)

// iptNFTHandles reads the network's chain of family f through netlink
// (iptables-nft keeps it as an nftables chain) without decoding the rules,
// and returns the handles of the rules carrying each of comments (a
// comment written twice has two), as the xt comment match stores it
// (NUL-terminated). Decoding every expression
// costs ~30 us a rule; this is a dump of the one chain and a byte search.
// ok is false when the chain cannot be read so (iptables-legacy, no chain);
// an empty chain, which the dump does not tell from none, is asked for by
// name.
func iptNFTHandles(f family, chain string, comments []string) (handles map[string][]uint64, ok bool) {
	fam := uint8(unix.NFPROTO_IPV4)
	if f == ipv6 {
		fam = unix.NFPROTO_IPV6
	}
	req := nl.NewNetlinkRequest(unix.NFNL_SUBSYS_NFTABLES<<8|unix.NFT_MSG_GETRULE, unix.NLM_F_DUMP)
	req.AddData(&nl.Nfgenmsg{NfgenFamily: fam, Version: unix.NFNETLINK_V0})
	req.AddData(nl.NewRtAttr(unix.NFTA_RULE_TABLE, nl.ZeroTerminated(natTable)))
	req.AddData(nl.NewRtAttr(unix.NFTA_RULE_CHAIN, nl.ZeroTerminated(chain)))
	want := make([][]byte, len(comments))
	for i, c := range comments {
		want[i] = append([]byte(c), 0)
	}
	handles = map[string][]uint64{}
	chainZ := append([]byte(chain), 0)
	sawChain := false // a rule of our chain was read: this is iptables-nft
	err := req.ExecuteIter(unix.NETLINK_NETFILTER, unix.NFNL_SUBSYS_NFTABLES<<8|unix.NFT_MSG_NEWRULE, func(msg []byte) bool {
		if len(msg) < nl.SizeofNfgenmsg {
			return true
		}
		// Without decoding: a rule of our chain names it (in case the
		// kernel ignored the dump's filter).
		sawChain = sawChain || bytes.Contains(msg, chainZ)
		if !slices.ContainsFunc(want, func(w []byte) bool { return bytes.Contains(msg, w) }) {
			return true // decode only the rules wanted
		}
		attrs, err := nl.ParseRouteAttr(msg[nl.SizeofNfgenmsg:])
		if err != nil {
			return true
		}
		var handle uint64
		inChain := false
		for _, a := range attrs {
			switch a.Attr.Type &^ (unix.NLA_F_NESTED | unix.NLA_F_NET_BYTEORDER) {
			case unix.NFTA_RULE_HANDLE:
				if len(a.Value) == 8 {
					handle = binary.BigEndian.Uint64(a.Value)
				}
			case unix.NFTA_RULE_CHAIN:
				inChain = string(bytes.TrimRight(a.Value, "\x00")) == chain
			}
		}
		if !inChain || handle == 0 {
			return true
		}
		for i, w := range want {
			if bytes.Contains(msg, w) {
				handles[comments[i]] = append(handles[comments[i]], handle)
			}
		}
		return true
	})
	if err != nil {
		return nil, false
	}
	return handles, sawChain || len(handles) > 0 || iptNFTChainHere(f, chain)
}

// iptNFTChainHere reports whether the network's chain chain of family f is
// iptables-nft's: netlink shows it, and the namespace has no iptables-legacy
// table (whose chains netlink does not show).
func iptNFTChainHere(f family, chain string) bool {
	if legacyIPTablesIn(f) {
		return false
	}
	ch, err := findChain(iptNFTTable(f, natTable).Family, natTable, chain)
	return err == nil && ch != nil
}

// deleteOwned deletes owner's rules for maps on network: through netlink
// by the handles iptNFTHandles finds (iptables-nft), else by their
// specification with the commands. The netlink connection stays open until
// closeConn: closing a socket that committed waits for the kernel's grace
// period, which the caller's index update and unlock need not wait for.
func (b *iptPorts) deleteOwned(network string, owner Attachment, maps []Mapping) (closeConn func(), err error) {
	chain := iptPortsChain(network)
	var byCmd []iptFound
	var c *nftables.Conn
	// The families deleted through netlink, with their comments, to tell
	// whether a failed Flush committed after all (inChain).
	deleted := map[family][]string{}
	closeConn = func() {
		if c != nil {
			_ = c.CloseLasting()
		}
	}
	for _, f := range allFamilies() {
		var comments []string
		var ms []Mapping
		for _, m := range maps {
			if m.family() == f {
				ms = append(ms, m)
				comments = append(comments, portsMappingComment(network, owner, m))
			}
		}
		if len(ms) == 0 {
			continue
		}
		handles, ok := iptNFTHandles(f, chain, comments)
		if !ok {
			byCmd = append(byCmd, ownedFound(network, owner, ms)...)
			continue
		}
		if len(handles) == 0 {
			continue // none of them in the chain: nothing to delete
		}
		if c == nil {
			if c, err = iptNFTWriteConn(); err != nil {
				return closeConn, err
			}
		}
		deleted[f] = comments
		t := iptNFTTable(f, natTable)
		for _, hs := range handles {
			for _, h := range hs {
				if err := c.DelRule(&nftables.Rule{Table: t, Chain: &nftables.Chain{Name: chain, Table: t}, Handle: h}); err != nil {
					return closeConn, err
				}
			}
		}
	}
	if c != nil {
		if err := c.Flush(); err != nil {
			if _, none := inChain(deleted, network); !none {
				return closeConn, err
			}
		}
	}
	return closeConn, b.deleteMappings(byCmd)
}

// iptNFTConnOptions are added to the connections that write or delete
// iptables-nft's rules (iptNFTWriteConn): the tests shrink their receive
// buffer, so that the kernel's answers overflow it whatever the number of
// rules (inChain, removeIPTNFT).
var iptNFTConnOptions []nftables.ConnOption

// iptNFTWriteConn opens a lasting connection to change iptables-nft's
// rules through.
func iptNFTWriteConn() (*nftables.Conn, error) {
	return nftables.New(append([]nftables.ConnOption{nftables.AsLasting()}, iptNFTConnOptions...)...)
}

// inChain tells, after a Flush of one transaction that returned an
// error, whether it committed all the same: the kernel acknowledges (and
// echoes a new rule) message by message, and a few hundred answers
// overflow the socket's buffer (ENOBUFS) after the commit. It reads the
// network's chain of each family in byFamily once: all is true when a rule
// carries each of those comments (they were added), none when no rule
// carries any (deleted, or never added); neither when the chain could not
// be read. (Rules carrying them before the transaction would pass for
// added: the claims index keeps an owner's mappings from being written
// twice.)
func inChain(byFamily map[family][]string, network string) (all, none bool) {
	all, none = true, true
	for f, comments := range byFamily {
		// nil: not read. A chain that is gone (ok false) holds none of
		// the rules either.
		handles, _ := iptNFTHandles(f, iptPortsChain(network), comments)
		if handles == nil {
			return false, false
		}
		for _, c := range comments {
			if len(handles[c]) > 0 {
				none = false
			} else {
				all = false
			}
		}
	}
	return all, none
}

// iptNFTAppend appends owner's mapping rules of family f to the network's
// chain through netlink, in one transaction, encoded so that iptables-nft
// reads them back as iptMappingRule's spec (iptNFTMappingRule):
// no iptables-restore process on a publishing ADD. It does so only where
// that chain is iptables-nft's (netlink shows it, and the namespace has no
// iptables-legacy table) and every mapping is tcp or udp (sctp needs the
// sctp match's binary layout: the command writes it). done is false when
// the command must append them; nothing was written then. The connection,
// which committed, is closed by closeConn (see deleteOwned).
func iptNFTAppend(f family, network string, owner Attachment, maps []Mapping) (done bool, closeConn func(), err error) {
	closeConn = func() {}
	for _, m := range maps {
		if m.Protocol != "tcp" && m.Protocol != "udp" {
			return false, closeConn, nil
		}
	}
	t := iptNFTTable(f, natTable)
	chain := iptPortsChain(network)
	if !iptNFTChainHere(f, chain) {
		return false, closeConn, nil
	}
	c, err := iptNFTWriteConn()
	if err != nil {
		return false, closeConn, nil
	}
	closeConn = func() { _ = c.CloseLasting() }
	ch := &nftables.Chain{Name: chain, Table: t}
	comments := make([]string, len(maps))
	for i, m := range maps {
		c.AddRule(&nftables.Rule{Table: t, Chain: ch, Exprs: iptNFTMappingRule(network, owner, m)})
		comments[i] = portsMappingComment(network, owner, m)
	}
	ferr := c.Flush()
	if ferr == nil {
		return true, closeConn, nil
	}
	switch all, none := inChain(map[family][]string{f: comments}, network); {
	case all:
		return true, closeConn, nil
	case none:
		return false, closeConn, nil // nothing written: the command's turn
	}
	return true, closeConn, fmt.Errorf("append mappings through netlink: %w", ferr)
}

// iptNFTMappingRule returns the expressions of iptMappingRule's spec for
// a tcp or udp mapping in the encoding iptables-nft reads back as that spec
// from release 1.8.1 on (1.8.0 did not read ip6tables' meta l4proto): the
// protocol as IPv4's header field (ip6tables: meta l4proto), the port as
// the xt tcp or udp match, the comment as the xt comment match, a counter,
// and the xt DNAT target (revision 2). iptables-nft 1.8.8 and later write
// the port as a native payload match instead, which the releases before
// cannot read (they would list, save and restore the rule without its
// port); every release reads the xt match, as rules written by the older
// ones must stay readable. TestIPTablesPortsNetlinkAppend compares what
// iptables-save shows with what iptables-restore writes.
func iptNFTMappingRule(network string, owner Attachment, m Mapping) []expr.Any {
	proto := byte(unix.IPPROTO_TCP)
	if m.Protocol == "udp" {
		proto = unix.IPPROTO_UDP
	}
	var exprs []expr.Any
	if m.ContainerIP.Is4() {
		exprs = append(exprs, &expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: 9, Len: 1})
	} else {
		exprs = append(exprs, &expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1})
	}
	exprs = append(exprs, &expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{proto}})
	if m.HostIP.IsValid() {
		daddr := uint32(16) // offset of the destination in the IPv4 header
		if !m.HostIP.Is4() {
			daddr = 24
		}
		exprs = append(exprs,
			&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: daddr, Len: uint32(m.HostIP.BitLen() / 8)},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: m.HostIP.AsSlice()})
	}
	anySource, port := [2]uint16{0, 65535}, [2]uint16{m.HostPort, m.HostPort}
	match := &expr.Match{Name: "tcp", Info: &xt.Tcp{SrcPorts: anySource, DstPorts: port}}
	if m.Protocol == "udp" {
		match = &expr.Match{Name: "udp", Info: &xt.Udp{SrcPorts: anySource, DstPorts: port}}
	}
	comment := xt.Comment(portsMappingComment(network, owner, m))
	to := net.IP(m.ContainerIP.AsSlice())
	return append(exprs,
		match,
		&expr.Match{Name: "comment", Info: &comment},
		&expr.Counter{},
		&expr.Target{Name: "DNAT", Rev: 2, Info: &xt.NatRange2{NatRange: xt.NatRange{
			Flags: uint(xt.NatRangeMapIPs | xt.NatRangeProtoSpecified),
			MinIP: to, MaxIP: to, MinPort: m.ContainerPort, MaxPort: m.ContainerPort,
		}}})
}
