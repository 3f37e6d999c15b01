package firewall

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/google/nftables"
	"github.com/mdlayher/netlink"
)

// TestIPTablesPortsNetlinkAppend: on iptables-nft, a Publish into a
// network's existing chain appends its tcp and udp mappings through netlink,
// starting no process; iptables reads them back as the specs that
// iptables-restore writes (iptables-save's output compared) and deletes
// them by those specs; an sctp mapping is left to iptables-restore;
// Unpublish deletes the appended rules.
func TestIPTablesPortsNetlinkAppend(t *testing.T) {
	requireRoot(t)
	requireIPTablesNFT(t, "")
	n := PortNetwork{Name: "pnl", Bridge: "brn", Subnets: pfx("10.46.0.0/24", "fd46::/64")}
	first := Attachment{ContainerID: "c0", IfName: "eth0"}
	firstMaps := []Mapping{mp("tcp", "", 8000, "10.46.0.2", 80), mp("tcp", "", 8000, "fd46::2", 80)}
	owner := Attachment{ContainerID: "c1", IfName: "eth0"}
	maps := []Mapping{
		mp("tcp", "", 8080, "10.46.0.3", 80),
		mp("udp", "", 5353, "10.46.0.3", 53),
		mp("tcp", "192.0.2.7", 8443, "10.46.0.3", 443),
		mp("tcp", "", 8080, "fd46::3", 80),
		mp("udp", "2001:db8::7", 5353, "fd46::3", 53),
	}
	byNL, byCmd := newTestNS(t, "pnl"), newTestNS(t, "pnlcmd")
	commands := logCommands(t)
	b, err := NewPorts(IPTablesName, WithLockDir(t.TempDir()))
	if err != nil {
		t.Fatal(err)
	}
	for _, ns := range []*testNS{byNL, byCmd} {
		if err := ns.do(t, func() error { return b.Publish(n, first, firstMaps) }); err != nil {
			t.Fatal(err)
		}
	}
	commands()
	if err := byNL.do(t, func() error { return b.Publish(n, owner, maps) }); err != nil {
		t.Fatal(err)
	}
	if got := commands(); len(got) != 0 {
		t.Errorf("Publish into the network's chain started %v, want no process", got)
	}
	for _, f := range allFamilies() {
		var rules [][]string
		for _, m := range maps {
			if m.family() == f {
				rules = append(rules, iptMappingRule(n.Name, owner, m))
			}
		}
		if err := byCmd.do(t, func() error { return iptRestoreAppend(f, natTable, iptPortsChain(n.Name), rules) }); err != nil {
			t.Fatal(err)
		}
	}
	if a, c := savedRules(t, byNL), savedRules(t, byCmd); a != c {
		t.Errorf("mappings appended through netlink:\n%s\nwith iptables-restore:\n%s", a, c)
	}
	// The commands find them by their specification (iptables-nft compares
	// rules as it reads them back): deleted, then written back.
	for _, m := range []Mapping{maps[2], maps[4]} {
		cmd := []string{iptCommand(m.family()), "-t", "nat", "", iptPortsChain(n.Name)}
		spec := iptMappingRule(n.Name, owner, m)
		cmd[3] = "-D"
		byNL.exec(t, append(cmd, spec...)...)
		if got := savedRules(t, byNL); strings.Contains(got, portsMappingComment(n.Name, owner, m)) {
			t.Errorf("%s by specification left the mapping:\n%s", strings.Join(cmd, " "), got)
		}
		cmd[3] = "-A"
		byNL.exec(t, append(cmd, spec...)...)
	}
	commands()
	if err := byNL.do(t, func() error { return b.Unpublish(n.Name, owner) }); err != nil {
		t.Fatal(err)
	}
	if got := commands(); len(got) != 0 {
		t.Errorf("Unpublish started %v, want no process", got)
	}
	if all := savedRules(t, byNL); strings.Contains(all, "own="+owner.tag()) {
		t.Errorf("the owner's mappings left after Unpublish:\n%s", all)
	}
	// Many mappings in one Publish, with a receive buffer the kernel's
	// answers overflow after the commit: one transaction, each rule once;
	// its Unpublish (the chain stays: other owners' rules are in it)
	// leaves none of them.
	overflowAnswers(t)
	big := Attachment{ContainerID: "c3", IfName: "eth0"}
	var bigMaps []Mapping
	for p := uint16(20000); p < 20100; p++ {
		bigMaps = append(bigMaps, mp("tcp", "", p, "10.46.0.5", 80), mp("udp", "", p, "10.46.0.5", 80), mp("tcp", "", p, "fd46::5", 80))
	}
	if err := byNL.do(t, func() error { return b.Publish(n, big, bigMaps) }); err != nil {
		t.Fatal(err)
	}
	if got := commands(); len(got) != 0 {
		t.Errorf("Publish of %d mappings started %v, want no process", len(bigMaps), got)
	}
	all := savedRules(t, byNL)
	for _, m := range bigMaps {
		if c := strings.Count(all, portsMappingComment(n.Name, big, m)+`"`); c != 1 {
			t.Fatalf("mapping %s written %d times", m, c)
		}
	}
	if err := byNL.do(t, func() error { return b.Unpublish(n.Name, big) }); err != nil {
		t.Fatal(err)
	}
	if all := savedRules(t, byNL); strings.Contains(all, "own="+big.tag()) || !strings.Contains(all, "own="+first.tag()) {
		t.Errorf("after Unpublish of %d mappings, want none of them and the first owner's:\n%s", len(bigMaps), all)
	}

	// sctp: the command's way, for its family only.
	sctp := Attachment{ContainerID: "c2", IfName: "eth0"}
	if err := byNL.do(t, func() error {
		return b.Publish(n, sctp, []Mapping{mp("sctp", "", 9000, "10.46.0.4", 90), mp("tcp", "", 9000, "fd46::4", 90)})
	}); err != nil {
		t.Fatal(err)
	}
	if got := commands(); !slices.Equal(got, []string{"iptables-restore"}) {
		t.Errorf("Publish of an sctp (IPv4) and a tcp (IPv6) mapping started %v, want iptables-restore only", got)
	}
	if got := byNL.exec(t, "iptables", "-t", "nat", "-S", iptPortsChain(n.Name)); !strings.Contains(got, "-p sctp -m sctp --dport 9000") {
		t.Errorf("sctp mapping missing:\n%s", got)
	}

	for _, a := range []Attachment{first, sctp} {
		if err := byNL.do(t, func() error { return b.Unpublish(n.Name, a) }); err != nil {
			t.Fatal(err)
		}
	}
	if all := savedRules(t, byNL); strings.Contains(all, "flatcni") {
		t.Errorf("rules left after the last Unpublish:\n%s", all)
	}
}

// TestIPTablesPortsRetainMany: Retain (GC) deleting hundreds of mappings in
// one netlink transaction succeeds although the kernel's acknowledgements
// overflow the socket, and leaves nothing of the network.
func TestIPTablesPortsRetainMany(t *testing.T) {
	requireRoot(t)
	requireIPTablesNFT(t, "")
	n := PortNetwork{Name: "pmany", Bridge: "brm", Subnets: pfx("10.48.0.0/24", "fd48::/64")}
	ns := newTestNS(t, "pmany")
	b, err := NewPorts(IPTablesName, WithLockDir(t.TempDir()))
	if err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		owner := Attachment{ContainerID: fmt.Sprintf("c%d", i), IfName: "eth0"}
		var maps []Mapping
		for p := range 100 {
			port := uint16(20000 + 100*i + p)
			maps = append(maps, mp("tcp", "", port, fmt.Sprintf("10.48.0.%d", i+2), 80), mp("udp", "", port, fmt.Sprintf("fd48::%d", i+2), 80))
		}
		if err := ns.do(t, func() error { return b.Publish(n, owner, maps) }); err != nil {
			t.Fatal(err)
		}
	}
	// GC keeping c0: c1's and c2's 400 rules go in one transaction, whose
	// answers overflow the receive buffer after the commit.
	overflowAnswers(t)
	keep := func(a Attachment) bool { return a.ContainerID == "c0" }
	if err := ns.do(t, func() error { return b.Retain(n.Name, keep) }); err != nil {
		t.Fatalf("Retain deleting 400 mappings: %v", err)
	}
	all := savedRules(t, ns)
	for _, gone := range []string{"c1", "c2"} {
		if strings.Contains(all, "own="+gone+"/") {
			t.Errorf("%s's mappings left after Retain:\n%s", gone, all)
		}
	}
	if kept := strings.Count(all, "own=c0/"); kept != 200 {
		t.Errorf("%d rules of c0 after Retain, want 200", kept)
	}
	if err := ns.do(t, func() error { return b.Retain(n.Name, nil) }); err != nil {
		t.Fatalf("Retain(nil): %v", err)
	}
	if all := savedRules(t, ns); strings.Contains(all, "flatcni") {
		t.Errorf("rules left after Retain(nil):\n%s", all)
	}
}

// overflowAnswers gives the connections that write mapping rules a receive
// buffer of the kernel's minimum, which the answers to a transaction of a
// few rules overflow (ENOBUFS, after the commit), for the rest of the test.
func overflowAnswers(t *testing.T) {
	t.Helper()
	iptNFTConnOptions = []nftables.ConnOption{nftables.WithSockOptions(func(c *netlink.Conn) error { return c.SetReadBuffer(1) })}
	t.Cleanup(func() { iptNFTConnOptions = nil })
}

// TestIPTablesPortsUnpublishEmptyChain: an owner whose rules went by hand
// (the network's chain emptied) is unpublished through netlink, which
// shows the empty chain, without a command per mapping; its record goes.
func TestIPTablesPortsUnpublishEmptyChain(t *testing.T) {
	requireRoot(t)
	requireIPTablesNFT(t, "")
	n := PortNetwork{Name: "pempty", Bridge: "bre", Subnets: pfx("10.49.0.0/24", "fd49::/64")}
	owner := Attachment{ContainerID: "c1", IfName: "eth0"}
	ns := newTestNS(t, "pempty")
	lockDir := t.TempDir()
	b, err := NewPorts(IPTablesName, WithLockDir(lockDir))
	if err != nil {
		t.Fatal(err)
	}
	maps := []Mapping{mp("tcp", "", 8080, "10.49.0.2", 80), mp("tcp", "", 8080, "fd49::2", 80)}
	if err := ns.do(t, func() error { return b.Publish(n, owner, maps) }); err != nil {
		t.Fatal(err)
	}
	ns.exec(t, "iptables", "-t", "nat", "-F", iptPortsChain(n.Name))
	ns.exec(t, "ip6tables", "-t", "nat", "-F", iptPortsChain(n.Name))
	commands := logCommands(t)
	if err := ns.do(t, func() error { return b.Unpublish(n.Name, owner) }); err != nil {
		t.Fatal(err)
	}
	if got := commands(); len(got) != 0 {
		t.Errorf("Unpublish of mappings gone from an empty chain started %v, want no process", got)
	}
	if _, recorded := PortsIndexed(lockDir, n.Name); recorded {
		t.Error("the owner's record is left after its Unpublish")
	}
}
