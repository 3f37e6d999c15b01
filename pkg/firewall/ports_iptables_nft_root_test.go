package firewall

import (
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
)

// TestIPTablesPortsNetlinkAppend: on iptables-nft, a Publish into a
// network's existing chain appends its tcp and udp mappings through netlink,
// starting no process, and writes what iptables-restore writes for the same
// specs (compared in iptables-save's output and expression by expression);
// an sctp mapping is left to iptables-restore; Unpublish deletes the
// appended rules.
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
	for _, f := range allFamilies() {
		got, want := chainExprs(t, byNL, f, iptPortsChain(n.Name)), chainExprs(t, byCmd, f, iptPortsChain(n.Name))
		if len(got) != len(want) {
			t.Fatalf("family %v: %d rules through netlink, %d with iptables-restore", f, len(got), len(want))
		}
		for i := range got {
			if !reflect.DeepEqual(got[i], want[i]) {
				t.Errorf("family %v rule %d through netlink:\n%s\nwith iptables-restore:\n%s", f, i, showExprs(got[i]), showExprs(want[i]))
			}
		}
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

// chainExprs reads the rules of an iptables-nft chain of the nat table in
// ns: each rule's expressions.
func chainExprs(t *testing.T, ns *testNS, f family, chain string) [][]any {
	t.Helper()
	var out [][]any
	if err := ns.do(t, func() error {
		c, err := nftables.New()
		if err != nil {
			return err
		}
		tbl := iptNFTTable(f, natTable)
		rules, err := c.GetRules(tbl, &nftables.Chain{Name: chain, Table: tbl})
		if err != nil {
			return err
		}
		for _, r := range rules {
			var es []any
			for _, e := range r.Exprs {
				es = append(es, e)
			}
			es = append(es, r.UserData, r.Flags)
			out = append(out, es)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return out
}

// showExprs formats a rule's expressions for a failure message.
func showExprs(es []any) string {
	var b strings.Builder
	for _, e := range es {
		switch x := e.(type) {
		case *expr.Match:
			fmt.Fprintf(&b, "  match %s rev %d %+v\n", x.Name, x.Rev, reflect.ValueOf(x.Info).Elem())
		case *expr.Target:
			fmt.Fprintf(&b, "  target %s rev %d %+v\n", x.Name, x.Rev, reflect.ValueOf(x.Info).Elem())
		default:
			fmt.Fprintf(&b, "  %T %+v\n", e, e)
		}
	}
	return b.String()
}
