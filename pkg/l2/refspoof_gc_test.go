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

func TestParseRefJump(t *testing.T) {
	ok := refJumpRule("c1-eth0", "veth1234abcd")
	if id, ifname, good := parseRefJump(ok); !good || id != "c1-eth0" || ifname != "veth1234abcd" {
		t.Fatalf("parseRefJump(reference rule) = %q, %q, %v; want c1-eth0, veth1234abcd, true", id, ifname, good)
	}
	// A name that fills IFNAMSIZ but for the NUL.
	if _, ifname, good := parseRefJump(refJumpRule("c1-eth0", "veth0123456789a")); !good || ifname != "veth0123456789a" {
		t.Errorf("15-character name: %q, %v", ifname, good)
	}
	mutate := map[string]func(r *nftables.Rule){
		"no comment":    func(r *nftables.Rule) { r.UserData = nil },
		"other comment": func(r *nftables.Rule) { r.UserData = userdata.AppendString(nil, userdata.TypeComment, "admin") },
		"empty id": func(r *nftables.Rule) {
			r.UserData = userdata.AppendString(nil, userdata.TypeComment, refSpoofCommentPrefix)
		},
		"comment of other": func(r *nftables.Rule) {
			r.UserData = userdata.AppendString(nil, userdata.TypeComment, refSpoofCommentPrefix+"c2-eth0")
		},
		"goto": func(r *nftables.Rule) {
			r.Exprs[2] = &expr.Verdict{Kind: expr.VerdictGoto, Chain: refSpoofChainPrefix + "c1-eth0"}
		},
		"other target":   func(r *nftables.Rule) { r.Exprs[2] = &expr.Verdict{Kind: expr.VerdictJump, Chain: "admin"} },
		"wildcard":       func(r *nftables.Rule) { r.Exprs[1].(*expr.Cmp).Data = []byte("veth") },
		"empty name":     func(r *nftables.Rule) { r.Exprs[1].(*expr.Cmp).Data = make([]byte, unix.IFNAMSIZ) },
		"oifname":        func(r *nftables.Rule) { r.Exprs[0].(*expr.Meta).Key = expr.MetaKeyOIFNAME },
		"not equal":      func(r *nftables.Rule) { r.Exprs[1].(*expr.Cmp).Op = expr.CmpOpNeq },
		"other register": func(r *nftables.Rule) { r.Exprs[1].(*expr.Cmp).Register = 2 },
		"extra match": func(r *nftables.Rule) {
			r.Exprs = slices.Insert(r.Exprs, 2, expr.Any(&expr.Counter{}))
		},
	}
	for name, m := range mutate {
		r := refJumpRule("c1-eth0", "veth1234abcd")
		m(r)
		if id, ifname, good := parseRefJump(r); good {
			t.Errorf("%s: parseRefJump = %q, %q, true; want not the reference's", name, id, ifname)
		}
	}
}

func TestPlanDeadRefSpoof(t *testing.T) {
	chains := []*nftables.Chain{{Table: refNat, Name: refSpoofBaseChain}}
	for _, id := range []string{"dead-eth0", "live-eth0", "shared-eth0", "twice-eth0", "orphan-eth0"} {
		chains = append(chains, &nftables.Chain{Table: refNat, Name: refSpoofChainPrefix + id}, &nftables.Chain{Table: refNat, Name: refSpoofChainPrefix + id + refSpoofMacSuffix})
	}
	dead := refJumpRule("dead-eth0", "vethdead")
	live := refJumpRule("live-eth0", "vethlive")
	sharedDead := refJumpRule("shared-eth0", "vethgone")
	sharedAdmin := refJumpRule("shared-eth0", "vethgone")
	sharedAdmin.UserData = userdata.AppendString(nil, userdata.TypeComment, "admin")
	twice1, twice2 := refJumpRule("twice-eth0", "vethtw1"), refJumpRule("twice-eth0", "vethtw2")
	wildcard := refJumpRule("wild-eth0", "veth")
	wildcard.Exprs[1].(*expr.Cmp).Data = []byte("veth")
	rules := []*nftables.Rule{dead, live, sharedDead, sharedAdmin, twice1, twice2, wildcard}
	for i, r := range rules {
		r.Handle = uint64(i + 10)
	}
	gone := map[string]bool{"vethdead": true, "vethgone": true, "vethtw1": true, "vethtw2": true, "veth": true}
	delRules, delChains, ids := planDeadRefSpoof(chains, rules, func(n string) bool { return gone[n] })
	if want := []*nftables.Rule{dead, sharedDead, twice1, twice2}; !slices.Equal(delRules, want) {
		t.Errorf("rules to delete: %v, want %v", delRules, want)
	}
	var gotChains []string
	for _, c := range delChains {
		gotChains = append(gotChains, c.Name)
	}
	wantChains := []string{"cni-br-iface-dead-eth0", "cni-br-iface-dead-eth0-mac", "cni-br-iface-twice-eth0", "cni-br-iface-twice-eth0-mac"}
	if !slices.Equal(gotChains, wantChains) {
		t.Errorf("chains to delete: %v, want %v (not shared's: another rule jumps there; not orphan's: no jump)", gotChains, wantChains)
	}
	if want := []string{"dead-eth0", "shared-eth0", "twice-eth0"}; !slices.Equal(ids, want) {
		t.Errorf("ids: %v, want %v", ids, want)
	}
	if r, c, i := planDeadRefSpoof(chains, rules, func(string) bool { return false }); len(r)+len(c)+len(i) != 0 {
		t.Errorf("every link present: plan %v %v %v, want nothing", r, c, i)
	}
}

func TestHasRefSpoofChain(t *testing.T) {
	other := &nftables.Table{Family: nftables.TableFamilyBridge, Name: "filter"}
	for _, tt := range []struct {
		chains []*nftables.Chain
		want   bool
	}{
		{chains: nil, want: false},
		{chains: []*nftables.Chain{{Table: refNat, Name: refSpoofBaseChain}}, want: false},
		{chains: []*nftables.Chain{{Table: other, Name: "cni-br-iface-x-eth0"}}, want: false},
		{chains: []*nftables.Chain{{Table: refNat, Name: refSpoofBaseChain}, {Table: refNat, Name: "cni-br-iface-x-eth0-mac"}}, want: true},
	} {
		if got := hasRefSpoofChain(tt.chains); got != tt.want {
			t.Errorf("hasRefSpoofChain(%v) = %v, want %v", tt.chains, got, tt.want)
		}
	}
}

// GC removes the reference's checks whose host veth is gone, and only those.
func TestRemoveDeadReferenceSpoofChecks(t *testing.T) {
	requireRoot(t)
	node := newNetns(t, "refgc")
	mac := net.HardwareAddr{2, 0, 0, 0, 0, 3}
	live := "vlive" + randomSuffix(t, 3)
	run(t, "ip", "-n", node, "link", "add", live, "type", "veth", "peer", "name", live+"p")
	var ids []string
	if err := inNetns(t, node, func() (err error) {
		if ids, err = RemoveDeadReferenceSpoofChecks(); err != nil || len(ids) != 0 {
			t.Errorf("nothing there: removed %v, %v", ids, err)
		}
		for _, a := range []struct{ id, veth string }{{"live-eth0", live}, {"dead-eth0", "vdeadgone"}, {"dead-net1", "vdeadgone2"}} {
			if err := refSpoofAdd(a.id, a.veth, mac); err != nil {
				return err
			}
		}
		// Chains the reference's ADD made before its jump: left alone.
		conn, err := nftables.New()
		if err != nil {
			return err
		}
		conn.AddChain(&nftables.Chain{Name: "cni-br-iface-nojump-eth0", Table: refNat})
		conn.AddChain(&nftables.Chain{Name: "cni-br-iface-nojump-eth0-mac", Table: refNat})
		return conn.Flush()
	}); err != nil {
		t.Fatal(err)
	}
	adminRules(t, node)
	if err := inNetns(t, node, func() (err error) {
		ids, err = RemoveDeadReferenceSpoofChecks()
		return err
	}); err != nil {
		t.Fatal(err)
	}
	slices.Sort(ids)
	if want := []string{"dead-eth0", "dead-net1"}; !slices.Equal(ids, want) {
		t.Errorf("removed %v, want %v", ids, want)
	}
	state, _ := natState(t, node)
	requireRefSpoof(t, "after GC", state, "dead-eth0", false)
	requireRefSpoof(t, "after GC", state, "dead-net1", false)
	requireRefSpoof(t, "after GC", state, "live-eth0", true)
	for _, c := range []string{"cni-br-iface-nojump-eth0", "cni-br-iface-nojump-eth0-mac"} {
		if _, ok := state[c]; !ok {
			t.Errorf("chain %s without a jump removed", c)
		}
	}
	requireAdmin(t, "after GC", state)

	run(t, "ip", "-n", node, "link", "del", live)
	if err := inNetns(t, node, func() (err error) {
		ids, err = RemoveDeadReferenceSpoofChecks()
		return err
	}); err != nil || !slices.Equal(ids, []string{"live-eth0"}) {
		t.Errorf("after the live veth went: removed %v, %v; want [live-eth0]", ids, err)
	}
	state, _ = natState(t, node)
	requireRefSpoof(t, "after second GC", state, "live-eth0", false)
	requireAdmin(t, "after second GC", state)
}

// One dead check whose -mac chain something else jumps to keeps its own
// chains, and only those: the other dead check's chains go all the same,
// and both jumps go. GC reports the pinned chains.
func TestRemoveDeadReferenceSpoofChecksPinned(t *testing.T) {
	requireRoot(t)
	node := newNetns(t, "refgcpin")
	mac := net.HardwareAddr{2, 0, 0, 0, 0, 4}
	if err := inNetns(t, node, func() error {
		for _, a := range []struct{ id, veth string }{{"pinned-eth0", "vpingone"}, {"free-eth0", "vfreegone"}} {
			if err := refSpoofAdd(a.id, a.veth, mac); err != nil {
				return err
			}
		}
		return pinRefMacChain("pinned-eth0")
	}); err != nil {
		t.Fatalf("set up: %v", err)
	}
	var gcErr error
	if err := inNetns(t, node, func() error {
		_, gcErr = RemoveDeadReferenceSpoofChecks()
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if gcErr == nil {
		t.Error("GC did not report the chains it could not remove")
	}
	state, _ := natState(t, node)
	requireRefSpoof(t, "after GC", state, "free-eth0", false)
	for _, c := range []string{"cni-br-iface-free-eth0", "cni-br-iface-free-eth0-mac"} {
		if _, ok := state[c]; ok {
			t.Errorf("chain %s of the unpinned dead check stayed", c)
		}
	}
	if _, ok := state["cni-br-iface-pinned-eth0-mac"]; !ok {
		t.Errorf("the pinned -mac chain is gone:\n%v", state)
	}
	for chain, rules := range state {
		for _, r := range rules {
			if strings.Contains(r, "pinned-eth0") && chain == refSpoofBaseChain {
				t.Errorf("the pinned check's jump stayed in %s: %s", chain, r)
			}
		}
	}
}
