package firewall

import (
	"bytes"
	"encoding/binary"
	"slices"

	"github.com/google/nftables"
	"github.com/vishvananda/netlink/nl"
	"golang.org/x/sys/unix"
)

// iptNFTHandles reads the network's chain of family f through netlink
// (iptables-nft keeps it as an nftables chain) without decoding the rules,
// and returns the handle of each rule carrying one of comments, as the xt
// comment match stores it (NUL-terminated). Decoding every expression
// costs ~30 us a rule; this is a dump of the one chain and a byte search.
// ok is false when the chain cannot be read so (iptables-legacy, no chain).
func iptNFTHandles(f family, chain string, comments []string) (handles map[string]uint64, ok bool) {
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
	handles = map[string]uint64{}
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
				handles[comments[i]] = handle
			}
		}
		return true
	})
	if err != nil {
		return nil, false
	}
	return handles, sawChain || len(handles) > 0
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
		if c == nil {
			if c, err = nftables.New(nftables.AsLasting()); err != nil {
				return closeConn, err
			}
		}
		t := iptNFTTable(f, natTable)
		for _, h := range handles {
			if err := c.DelRule(&nftables.Rule{Table: t, Chain: &nftables.Chain{Name: chain, Table: t}, Handle: h}); err != nil {
				return closeConn, err
			}
		}
	}
	if c != nil {
		if err := c.Flush(); err != nil {
			return closeConn, err
		}
	}
	return closeConn, b.deleteMappings(byCmd)
}
