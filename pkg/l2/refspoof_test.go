package l2

import (
	"net"
	"slices"
	"strings"
	"testing"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"github.com/google/nftables/userdata"
	"golang.org/x/sys/unix"
)

var refNat = &nftables.Table{Family: nftables.TableFamilyBridge, Name: refSpoofTable}

// refJumpRule is the PREROUTING rule the reference makes for id, shaped as
// nft stores it (the interface name NUL-padded to IFNAMSIZ).
func refJumpRule(id, hostVeth string) *nftables.Rule {
	name := make([]byte, unix.IFNAMSIZ)
	copy(name, hostVeth)
	return &nftables.Rule{
		Table: refNat,
		Chain: &nftables.Chain{Table: refNat, Name: refSpoofBaseChain},
		Exprs: []expr.Any{
			&expr.Meta{Key: expr.MetaKeyIIFNAME, Register: 1},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: name},
			&expr.Verdict{Kind: expr.VerdictJump, Chain: refSpoofChainPrefix + id},
		},
		UserData: userdata.AppendString(nil, userdata.TypeComment, refSpoofCommentPrefix+id),
	}
}

func TestRefJumpsTo(t *testing.T) {
	a1, a2, b := refJumpRule("a-eth0", "veth1"), refJumpRule("a-eth0", "veth2"), refJumpRule("b-eth0", "veth3")
	admin := refJumpRule("a-eth0", "veth4")
	admin.UserData = nil // someone else's jump to the same chain: it must go too, or the chain cannot
	gotoRule := refJumpRule("a-eth0", "veth5")
	gotoRule.Exprs[2] = &expr.Verdict{Kind: expr.VerdictGoto, Chain: refSpoofChainPrefix + "a-eth0"}
	noVerdict := refJumpRule("a-eth0", "veth6")
	noVerdict.Exprs = noVerdict.Exprs[:2]
	noHandle := refJumpRule("a-eth0", "veth7")
	rules := []*nftables.Rule{a1, b, a2, admin, gotoRule, noVerdict, noHandle}
	for i, r := range rules[:6] {
		r.Handle = uint64(i + 1)
	}
	got := refJumpsTo(rules, refSpoofChainPrefix+"a-eth0")
	if want := []*nftables.Rule{a1, a2, admin, gotoRule}; !slices.Equal(got, want) {
		t.Errorf("refJumpsTo = %v, want %v", got, want)
	}
	if got := refJumpsTo(rules, refSpoofChainPrefix+"c-eth0"); len(got) != 0 {
		t.Errorf("refJumpsTo(absent) = %v", got)
	}
}

func TestRefSpoofChains(t *testing.T) {
	other := &nftables.Table{Family: nftables.TableFamilyBridge, Name: "filter"}
	chains := []*nftables.Chain{
		{Table: refNat, Name: refSpoofBaseChain},
		{Table: refNat, Name: "cni-br-iface-a-eth0-mac"},
		{Table: refNat, Name: "cni-br-iface-a-eth0"},
		{Table: refNat, Name: "cni-br-iface-a-eth1"},
		{Table: other, Name: "cni-br-iface-b-eth0"},
		{Table: refNat, Name: "cni-br-iface-c-eth0-mac"},
	}
	names := func(cs []*nftables.Chain) (out []string) {
		for _, c := range cs {
			out = append(out, c.Name)
		}
		return out
	}
	for id, want := range map[string][]string{
		"a-eth0": {"cni-br-iface-a-eth0", "cni-br-iface-a-eth0-mac"}, // its own chain first
		"b-eth0": nil,                                                // not in table nat
		"c-eth0": {"cni-br-iface-c-eth0-mac"},
		"d-eth0": nil,
	} {
		if got := names(refSpoofChains(chains, id)); !slices.Equal(got, want) {
			t.Errorf("refSpoofChains(%s) = %v, want %v", id, got, want)
		}
	}
}

// refSpoofAdd makes in the current namespace what the reference plugin makes
// for one attachment, as nft stores it.
func refSpoofAdd(id, hostVeth string, mac net.HardwareAddr) error {
	conn, err := nftables.New()
	if err != nil {
		return err
	}
	conn.AddTable(refNat)
	policy := nftables.ChainPolicyAccept
	base := conn.AddChain(&nftables.Chain{
		Name: refSpoofBaseChain, Table: refNat, Type: nftables.ChainTypeFilter,
		Hooknum: nftables.ChainHookRef(unix.NF_INET_PRE_ROUTING), Priority: nftables.ChainPriorityRef(-300), Policy: &policy,
	})
	iface := conn.AddChain(&nftables.Chain{Name: refSpoofChainPrefix + id, Table: refNat})
	macChain := conn.AddChain(&nftables.Chain{Name: iface.Name + refSpoofMacSuffix, Table: refNat})
	comment := userdata.AppendString(nil, userdata.TypeComment, refSpoofCommentPrefix+id)
	jump := refJumpRule(id, hostVeth)
	jump.Chain = base
	conn.AddRule(jump)
	conn.AddRule(&nftables.Rule{Table: refNat, Chain: iface, UserData: comment,
		Exprs: []expr.Any{&expr.Verdict{Kind: expr.VerdictJump, Chain: macChain.Name}}})
	conn.AddRule(&nftables.Rule{Table: refNat, Chain: macChain, UserData: comment, Exprs: []expr.Any{
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseLLHeader, Offset: 6, Len: 6},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: mac},
		&expr.Verdict{Kind: expr.VerdictReturn},
	}})
	conn.AddRule(&nftables.Rule{Table: refNat, Chain: macChain, UserData: comment,
		Exprs: []expr.Any{&expr.Verdict{Kind: expr.VerdictDrop}}})
	return conn.Flush()
}

// natState describes table bridge nat in the named namespace: its chains
// and, per chain, its rules as "comment>target" (target "" when the rule
// jumps nowhere). ok is false when the table does not exist.
func natState(t *testing.T, node string) (chains map[string][]string, ok bool) {
	t.Helper()
	err := inNetns(t, node, func() error {
		conn, err := nftables.New()
		if err != nil {
			return err
		}
		list, err := conn.ListChainsOfTableFamily(nftables.TableFamilyBridge)
		if err != nil {
			return err
		}
		for _, c := range list {
			if c.Table.Name != refSpoofTable {
				continue
			}
			if chains == nil {
				chains = map[string][]string{}
			}
			rules, err := conn.GetRules(c.Table, c)
			if err != nil {
				return err
			}
			chains[c.Name] = []string{}
			for _, r := range rules {
				comment, _ := userdata.GetString(r.UserData, userdata.TypeComment)
				target, _ := ruleJumpTarget(r)
				chains[c.Name] = append(chains[c.Name], comment+">"+target)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatalf("read table bridge nat in %s: %v", node, err)
	}
	return chains, chains != nil
}

// requireRefSpoof fails unless the reference's three objects of id are all
// in state (present) or none of them (absent).
func requireRefSpoof(t *testing.T, step string, state map[string][]string, id string, present bool) {
	t.Helper()
	iface := refSpoofChainPrefix + id
	_, hasIface := state[iface]
	_, hasMac := state[iface+refSpoofMacSuffix]
	jumps := 0
	for _, r := range state[refSpoofBaseChain] {
		if strings.HasSuffix(r, ">"+iface) {
			jumps++
		}
	}
	if present && (!hasIface || !hasMac || jumps == 0) || !present && (hasIface || hasMac || jumps != 0) {
		t.Errorf("%s: reference check %s: chain %v, -mac chain %v, %d jumps; want all present = %v\n%v", step, id, hasIface, hasMac, jumps, present, state)
	}
}

// adminRules puts a rule and a chain of an administrator's into table
// bridge nat: they must outlive every teardown.
func adminRules(t *testing.T, node string) {
	t.Helper()
	if err := inNetns(t, node, func() error {
		conn, err := nftables.New()
		if err != nil {
			return err
		}
		admin := conn.AddChain(&nftables.Chain{Name: "admin", Table: refNat})
		conn.AddRule(&nftables.Rule{Table: refNat, Chain: &nftables.Chain{Name: refSpoofBaseChain, Table: refNat},
			UserData: userdata.AppendString(nil, userdata.TypeComment, "admin-counter"),
			Exprs:    []expr.Any{&expr.Counter{}}})
		conn.AddRule(&nftables.Rule{Table: refNat, Chain: admin, UserData: userdata.AppendString(nil, userdata.TypeComment, "admin-rule"),
			Exprs: []expr.Any{&expr.Counter{}}})
		return conn.Flush()
	}); err != nil {
		t.Fatalf("admin rules: %v", err)
	}
}

func requireAdmin(t *testing.T, step string, state map[string][]string) {
	t.Helper()
	if !slices.Contains(state[refSpoofBaseChain], "admin-counter>") || !slices.Equal(state["admin"], []string{"admin-rule>"}) {
		t.Errorf("%s: the administrator's rules in table bridge nat were touched:\n%v", step, state)
	}
}

// DEL on a node switched in place: our teardown also removes the
// reference's check of the same attachment, and only that.
func TestTeardownWithReference(t *testing.T) {
	requireRoot(t)
	node := newNetns(t, "refspoof")
	mac := net.HardwareAddr{2, 0, 0, 0, 0, 1}
	if err := inNetns(t, node, func() error {
		for _, a := range []struct{ id, veth string }{{"ca-eth0", "vetha"}, {"cb-eth0", "vethb"}, {"ca-net1", "vethc"}} {
			if err := refSpoofAdd(a.id, a.veth, mac); err != nil {
				return err
			}
		}
		// The reference's ADD run twice leaves two jumps.
		if err := refSpoofAdd("ca-eth0", "vetha", mac); err != nil {
			return err
		}
		return SetupMacSpoofCheck("n1", "ca", "eth0", "vethz", mac)
	}); err != nil {
		t.Fatalf("set up: %v", err)
	}
	adminRules(t, node)
	before, _ := natState(t, node)
	requireRefSpoof(t, "before", before, "ca-eth0", true)

	teardown := func(step, network, cid, ifname string) {
		t.Helper()
		if err := inNetns(t, node, func() error {
			leftover, err := TeardownMacSpoofCheckWithReference(network, cid, ifname)
			if leftover != nil {
				t.Errorf("%s: leftover %v", step, leftover)
			}
			return err
		}); err != nil {
			t.Fatalf("%s: %v", step, err)
		}
	}
	teardown("first", "n1", "ca", "eth0")
	after, ok := natState(t, node)
	if !ok {
		t.Fatal("table bridge nat removed")
	}
	requireRefSpoof(t, "after", after, "ca-eth0", false)
	requireRefSpoof(t, "after", after, "cb-eth0", true)
	requireRefSpoof(t, "after", after, "ca-net1", true)
	requireAdmin(t, "after", after)
	if got := listChecks(t, node, ""); len(got) != 0 {
		t.Errorf("our check left: %+v", got)
	}

	teardown("again", "n1", "ca", "eth0")
	teardown("another network", "n2", "ca", "net1")
	again, _ := natState(t, node)
	requireRefSpoof(t, "after ca/net1", again, "ca-net1", false)
	requireRefSpoof(t, "after ca/net1", again, "cb-eth0", true)
	requireAdmin(t, "after ca/net1", again)
	if _, ok := again[refSpoofBaseChain]; !ok {
		t.Error("PREROUTING removed")
	}
}

// pinRefMacChain makes an administrator's chain, admin-pin, jump to the -mac
// chain of the reference's check of id, so that chain cannot be removed.
func pinRefMacChain(id string) error {
	conn, err := nftables.New()
	if err != nil {
		return err
	}
	pin := conn.AddChain(&nftables.Chain{Name: "admin-pin", Table: refNat})
	conn.AddRule(&nftables.Rule{Table: refNat, Chain: pin,
		Exprs: []expr.Any{&expr.Verdict{Kind: expr.VerdictJump, Chain: refSpoofChainPrefix + id + refSpoofMacSuffix}}})
	return conn.Flush()
}

// A reference check that cannot go (another chain jumps to its -mac chain)
// neither keeps our own rule in place nor fails the teardown: it is
// reported as a leftover.
func TestTeardownWithReferenceLeftover(t *testing.T) {
	requireRoot(t)
	node := newNetns(t, "refleft")
	mac := net.HardwareAddr{2, 0, 0, 0, 0, 2}
	if err := inNetns(t, node, func() error {
		if err := refSpoofAdd("cx-eth0", "vethx", mac); err != nil {
			return err
		}
		if err := SetupMacSpoofCheck("n1", "cx", "eth0", "vethx", mac); err != nil {
			return err
		}
		return pinRefMacChain("cx-eth0")
	}); err != nil {
		t.Fatalf("set up: %v", err)
	}
	var leftover error
	if err := inNetns(t, node, func() (err error) {
		leftover, err = TeardownMacSpoofCheckWithReference("n1", "cx", "eth0")
		return err
	}); err != nil {
		t.Fatalf("teardown failed although our own rule could go: %v", err)
	}
	if leftover == nil || !strings.Contains(leftover.Error(), "cni-br-iface-cx-eth0") {
		t.Errorf("leftover = %v, want one naming cni-br-iface-cx-eth0", leftover)
	}
	if got := listChecks(t, node, ""); len(got) != 0 {
		t.Errorf("our check left: %+v", got)
	}
	state, _ := natState(t, node)
	if _, ok := state["cni-br-iface-cx-eth0-mac"]; !ok {
		t.Errorf("the pinned -mac chain is gone:\n%v", state)
	}
}
