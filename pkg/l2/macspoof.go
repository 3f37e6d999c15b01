package l2

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"strings"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"github.com/google/nftables/userdata"
	"golang.org/x/sys/unix"
)

// Where the MAC spoof checks live: one bridge-family table with one base
// chain that sees every frame entering the bridge before anything else, and
// one rule per attachment in that chain.
const (
	spoofTable    = "flatcni-macspoof"
	spoofChain    = "prerouting"
	spoofPriority = -300
	// spoofTag starts the comment of every rule this package makes.
	spoofTag = "flatcni-macspoofchk"
	// maxCommentLen is what fits in the kernel's 256 bytes of rule userdata
	// once the comment's type, length and terminating NUL are added.
	maxCommentLen = 253
	// flushAttempts bounds the retries of an update that raced with another
	// plugin invocation changing the same chain.
	flushAttempts = 3
)

// Attachment identifies one container interface whose host-side veth has a
// MAC spoof check, as found in the kernel by MacSpoofChecks.
type Attachment struct {
	Network     string
	ContainerID string
	IfName      string
	// HostVeth is the bridge port the rule matches on.
	HostVeth string
	// MAC is the only Ethernet source address let through from HostVeth.
	MAC net.HardwareAddr
}

// spoofRule is a rule of the spoof check chain together with the attachment
// read back from it.
type spoofRule struct {
	rule *nftables.Rule
	att  Attachment
}

// SetupMacSpoofCheck makes the bridge drop every frame arriving from the
// bridge port hostVeth whose Ethernet source address is not mac, the MAC of
// the container's interface (the macspoofchk key). The rule is labelled with
// network, containerID and ifname; calling it again for the same labels
// replaces the rule, and a stale rule of another attachment on the same
// hostVeth is removed too. Acts in the current network namespace over
// netlink, without starting any process.
func SetupMacSpoofCheck(network, containerID, ifname, hostVeth string, mac net.HardwareAddr) error {
	comment, err := spoofComment(network, containerID, ifname)
	if err != nil {
		return fmt.Errorf("set up MAC spoof check: %w", err)
	}
	if hostVeth == "" || len(hostVeth) >= unix.IFNAMSIZ || strings.ContainsAny(hostVeth, " \t\n/") {
		return fmt.Errorf("set up MAC spoof check for container %s interface %s: invalid host veth name %q", containerID, ifname, hostVeth)
	}
	if len(mac) != 6 {
		return fmt.Errorf("set up MAC spoof check for container %s interface %s: %q is not a 6-byte Ethernet MAC address", containerID, ifname, mac.String())
	}
	want := Attachment{Network: network, ContainerID: containerID, IfName: ifname}
	_, err = updateSpoofRules(func(conn *nftables.Conn, s *spoofState) error {
		conn.AddTable(s.table)
		conn.AddChain(s.chain)
		for _, r := range s.rules {
			if sameAttachment(r.att, want) || r.att.HostVeth == hostVeth {
				if err := conn.DelRule(r.rule); err != nil {
					return err
				}
			}
		}
		conn.AddRule(&nftables.Rule{
			Table:    s.table,
			Chain:    s.chain,
			Exprs:    spoofExprs(hostVeth, mac),
			UserData: userdata.AppendString(nil, userdata.TypeComment, comment),
		})
		return nil
	})
	if err != nil {
		return fmt.Errorf("set up MAC spoof check for container %s interface %s on %s (network %s): %w", containerID, ifname, hostVeth, network, err)
	}
	return nil
}

// TeardownMacSpoofCheck removes the MAC spoof check of the given attachment
// in the current network namespace. Removing one that does not exist is not
// an error. The table and its base chain stay for the other attachments;
// removing the last rule removes them too (see teardownSpoofRules).
func TeardownMacSpoofCheck(network, containerID, ifname string) error {
	want := Attachment{Network: network, ContainerID: containerID, IfName: ifname}
	err := teardownSpoofRules(func(conn *nftables.Conn, s *spoofState) error {
		return s.deleteRulesOf(conn, want)
	})
	if err != nil {
		return fmt.Errorf("tear down MAC spoof check for container %s interface %s (network %s): %w", containerID, ifname, network, err)
	}
	return nil
}

// TeardownMacSpoofChecks removes the MAC spoof checks of the given
// attachments (by network, container ID and interface name) in the current
// network namespace, from one reading of the rules and in one atomic batch:
// garbage collection of many attachments reads the chain once, not once
// each. Removing one that does not exist is not an error. Removing the
// last rule removes the table too, as TeardownMacSpoofCheck does.
func TeardownMacSpoofChecks(atts []Attachment) error {
	if len(atts) == 0 {
		// GC with nothing stale: an empty table left by an earlier
		// teardown (one that failed, or an older flatcni) goes; the
		// kernel keeps one that holds anything (one netlink round
		// trip).
		_ = removeEmptySpoofTable()
		return nil
	}
	type key struct{ network, containerID, ifname string }
	gone := make(map[key]bool, len(atts))
	for _, a := range atts {
		gone[key{a.Network, a.ContainerID, a.IfName}] = true
	}
	err := teardownSpoofRules(func(conn *nftables.Conn, s *spoofState) error {
		for _, r := range s.rules {
			if gone[key{r.att.Network, r.att.ContainerID, r.att.IfName}] {
				if err := s.deleteRule(conn, r); err != nil {
					return err
				}
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("tear down the MAC spoof checks of %d attachments: %w", len(atts), err)
	}
	return nil
}

// MacSpoofChecks lists the MAC spoof checks of network in the current
// network namespace (of every network when network is ""), so that garbage
// collection can remove those of containers that are gone.
func MacSpoofChecks(network string) ([]Attachment, error) {
	conn, err := nftables.New()
	if err != nil {
		return nil, fmt.Errorf("list MAC spoof checks: open nftables netlink: %w", err)
	}
	s, err := readSpoofState(conn)
	if err != nil {
		return nil, fmt.Errorf("list MAC spoof checks: %w", err)
	}
	var atts []Attachment
	for _, r := range s.rules {
		if network == "" || r.att.Network == network {
			atts = append(atts, r.att)
		}
	}
	return atts, nil
}

func sameAttachment(a, b Attachment) bool {
	return a.Network == b.Network && a.ContainerID == b.ContainerID && a.IfName == b.IfName
}

// spoofState is one reading of the kernel: our table and base chain, the
// rules this package made in it, and every chain of the bridge family (the
// reading that tells whether our chain exists also shows the reference
// plugin's chains, see refspoof.go).
type spoofState struct {
	table  *nftables.Table
	chain  *nftables.Chain
	rules  []spoofRule
	chains []*nftables.Chain
	// found says our chain exists; others counts the rules in it that are
	// not ours (no comment of ours).
	found  bool
	others int
	// deleted counts the rules of ours whose deletion edit queued.
	deleted int
}

// deleteRule queues the deletion of one of our rules.
func (s *spoofState) deleteRule(conn *nftables.Conn, r spoofRule) error {
	if err := conn.DelRule(r.rule); err != nil {
		return err
	}
	s.deleted++
	return nil
}

// deleteRulesOf queues the deletion of the rules of attachment want.
func (s *spoofState) deleteRulesOf(conn *nftables.Conn, want Attachment) error {
	for _, r := range s.rules {
		if sameAttachment(r.att, want) {
			if err := s.deleteRule(conn, r); err != nil {
				return err
			}
		}
	}
	return nil
}

// mayBeEmpty reports whether our chain may hold no rule once the deletions
// queued on this reading went through: they deleted one of ours (the rules
// the reading shows left may be going in a teardown running beside this
// one: two DELs of the last two containers each delete one), or the
// reading shows it empty already (left so by an earlier teardown); and our
// table then holds nothing else that the reading shows: no rule of anyone
// else in our chain, no other chain. Whether it is empty the kernel tells
// (removeEmptySpoofTable).
func (s *spoofState) mayBeEmpty() bool {
	if !s.found || (s.deleted == 0 && len(s.rules) > 0) || s.others > 0 {
		return false
	}
	for _, c := range s.chains {
		if c.Table != nil && c.Table.Name == s.table.Name && c.Name != s.chain.Name {
			return false
		}
	}
	return true
}

// teardownSpoofRules is updateSpoofRules for the teardowns. When the batch
// that went through may have left our chain empty (mayBeEmpty), the chain
// and the table go too, in a batch of their own that the kernel runs only
// if they are empty then (removeEmptySpoofTable): a rule another plugin
// process added meanwhile, or one still there, keeps them. That batch
// costs one more netlink round trip on each teardown that deleted a rule
// (of every one teardowns running side by side, the last to commit finds
// the chain empty). Its failure fails nothing: the rules it was about are
// gone, and an empty chain drops no frame.
func teardownSpoofRules(edit func(*nftables.Conn, *spoofState) error) error {
	s, err := updateSpoofRules(edit)
	if err != nil {
		return err
	}
	if s.mayBeEmpty() {
		if beforeSpoofTableRemoval != nil {
			beforeSpoofTableRemoval()
		}
		_ = removeEmptySpoofTable()
	}
	return nil
}

// updateSpoofRules reads the spoof check rules, lets edit queue changes on
// conn and sends them as one atomic batch. A batch that fails (for instance
// because a concurrent invocation deleted a rule it names) is retried on a
// fresh reading. It returns the reading the batch that went through was
// made from.
func updateSpoofRules(edit func(*nftables.Conn, *spoofState) error) (*spoofState, error) {
	var err error
	for range flushAttempts {
		var conn *nftables.Conn
		conn, err = nftables.New()
		if err != nil {
			return nil, fmt.Errorf("open nftables netlink: %w", err)
		}
		var s *spoofState
		s, err = readSpoofState(conn)
		if err != nil {
			return nil, err
		}
		if afterSpoofRead != nil {
			afterSpoofRead()
		}
		if err = edit(conn, s); err != nil {
			return nil, err
		}
		if err = conn.Flush(); err == nil {
			return s, nil
		}
		err = fmt.Errorf("update nftables table bridge %s: %w", spoofTable, err)
	}
	return nil, err
}

func spoofTableChain() (*nftables.Table, *nftables.Chain) {
	table := &nftables.Table{Family: nftables.TableFamilyBridge, Name: spoofTable}
	policy := nftables.ChainPolicyAccept
	chain := &nftables.Chain{
		Name:     spoofChain,
		Table:    table,
		Type:     nftables.ChainTypeFilter,
		Hooknum:  nftables.ChainHookRef(unix.NF_INET_PRE_ROUTING), // same number as NF_BR_PRE_ROUTING
		Priority: nftables.ChainPriorityRef(spoofPriority),
		Policy:   &policy,
	}
	return table, chain
}

// readSpoofState lists the bridge family's chains and, when our base chain
// is among them, the rules of it that this package made, with the
// attachment each belongs to. A missing table or chain means there are no
// rules: one netlink round trip then, two otherwise.
func readSpoofState(conn *nftables.Conn) (*spoofState, error) {
	table, chain := spoofTableChain()
	s := &spoofState{table: table, chain: chain}
	chains, err := conn.ListChainsOfTableFamily(nftables.TableFamilyBridge)
	if err != nil {
		return nil, fmt.Errorf("list nftables bridge chains: %w", err)
	}
	s.chains = chains
	if findChain(chains, table.Name, chain.Name) == nil {
		return s, nil
	}
	s.found = true
	rules, err := conn.GetRules(table, chain)
	if err != nil {
		return nil, fmt.Errorf("list rules of chain %s in table bridge %s: %w", chain.Name, table.Name, err)
	}
	for _, r := range rules {
		att, ok := parseSpoofRule(r)
		if ok {
			s.rules = append(s.rules, spoofRule{rule: r, att: att})
		} else {
			s.others++
		}
	}
	return s, nil
}

// findChain returns the chain of that name in that table of a listing, or
// nil.
func findChain(chains []*nftables.Chain, table, name string) *nftables.Chain {
	for _, c := range chains {
		if c.Table != nil && c.Table.Name == table && c.Name == name {
			return c
		}
	}
	return nil
}

// spoofExprs builds: iifname == hostVeth, ether saddr != mac, count, drop.
func spoofExprs(hostVeth string, mac net.HardwareAddr) []expr.Any {
	return []expr.Any{
		&expr.Meta{Key: expr.MetaKeyIIFNAME, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: append([]byte(hostVeth), 0)},
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseLLHeader, Offset: 6, Len: 6},
		&expr.Cmp{Op: expr.CmpOpNeq, Register: 1, Data: bytes.Clone(mac)},
		&expr.Counter{},
		&expr.Verdict{Kind: expr.VerdictDrop},
	}
}

// parseSpoofRule reads the attachment back from a rule made by
// SetupMacSpoofCheck; ok is false for any other rule.
func parseSpoofRule(r *nftables.Rule) (Attachment, bool) {
	comment, ok := userdata.GetString(r.UserData, userdata.TypeComment)
	if !ok {
		return Attachment{}, false
	}
	att, ok := parseSpoofComment(comment)
	if !ok {
		return Attachment{}, false
	}
	var cmps []*expr.Cmp
	for _, e := range r.Exprs {
		if c, isCmp := e.(*expr.Cmp); isCmp {
			cmps = append(cmps, c)
		}
	}
	if len(cmps) == 2 {
		att.HostVeth = string(bytes.TrimRight(cmps[0].Data, "\x00"))
		att.MAC = net.HardwareAddr(bytes.Clone(cmps[1].Data))
	}
	return att, true
}

// spoofComment labels a rule with its attachment. The network name comes
// last, so it may hold any character; the container ID and interface name
// must not hold white space.
func spoofComment(network, containerID, ifname string) (string, error) {
	switch {
	case network == "":
		return "", errors.New("empty network name")
	case containerID == "" || strings.ContainsAny(containerID, " \t\n"):
		return "", fmt.Errorf("invalid container ID %q", containerID)
	case ifname == "" || strings.ContainsAny(ifname, " \t\n/"):
		return "", fmt.Errorf("invalid interface name %q", ifname)
	}
	c := fmt.Sprintf("%s cid=%s if=%s net=%s", spoofTag, containerID, ifname, network)
	if len(c) > maxCommentLen {
		return "", fmt.Errorf("network name %q and container ID %q are too long together for an nftables rule comment (%d bytes, at most %d)", network, containerID, len(c), maxCommentLen)
	}
	return c, nil
}

func parseSpoofComment(c string) (Attachment, bool) {
	rest, ok := strings.CutPrefix(c, spoofTag+" cid=")
	if !ok {
		return Attachment{}, false
	}
	cid, rest, ok := strings.Cut(rest, " if=")
	if !ok {
		return Attachment{}, false
	}
	ifname, network, ok := strings.Cut(rest, " net=")
	if !ok || cid == "" || ifname == "" || network == "" {
		return Attachment{}, false
	}
	return Attachment{Network: network, ContainerID: cid, IfName: ifname}, true
}
