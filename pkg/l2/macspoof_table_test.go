package l2

import (
	"fmt"
	"net"
	"slices"
	"sync"
	"testing"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
)

// nftObjects is what a node namespace holds of table bridge flatcni-macspoof.
type nftObjects struct {
	table  bool
	chains []string // names, sorted
	rules  int      // in our base chain, ours or not
}

// spoofObjects reads table bridge flatcni-macspoof in the named namespace.
func spoofObjects(t *testing.T, nsName string) nftObjects {
	t.Helper()
	var o nftObjects
	err := inNetns(t, nsName, func() error {
		conn, err := nftables.New()
		if err != nil {
			return err
		}
		tables, err := conn.ListTablesOfFamily(nftables.TableFamilyBridge)
		if err != nil {
			return err
		}
		for _, tb := range tables {
			o.table = o.table || tb.Name == spoofTable
		}
		chains, err := conn.ListChainsOfTableFamily(nftables.TableFamilyBridge)
		if err != nil {
			return err
		}
		for _, c := range chains {
			if c.Table.Name == spoofTable {
				o.chains = append(o.chains, c.Name)
			}
		}
		slices.Sort(o.chains)
		if c := findChain(chains, spoofTable, spoofChain); c != nil {
			rules, err := conn.GetRules(c.Table, c)
			if err != nil {
				return err
			}
			o.rules = len(rules)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("read table bridge %s in %s: %v", spoofTable, nsName, err)
	}
	return o
}

// checkIDs lists the container IDs whose checks the namespace holds.
func checkIDs(t *testing.T, nsName string) []string {
	t.Helper()
	var ids []string
	for _, a := range listChecks(t, nsName, "") {
		ids = append(ids, a.ContainerID)
	}
	slices.Sort(ids)
	return ids
}

func spoofMAC(last byte) net.HardwareAddr { return net.HardwareAddr{2, 0, 0, 0, 0, last} }

// The teardown that removes the last rule of our chain removes the chain and
// the table, whichever teardown it is (DEL, ADD's undo, GC); one that leaves
// a rule keeps them. "Nothing left after DEL and GC."
func TestMacSpoofLastTeardownRemovesTable(t *testing.T) {
	requireRoot(t)
	teardowns := map[string]func(network, cid, ifname string) error{
		"TeardownMacSpoofCheck": TeardownMacSpoofCheck,
		"TeardownMacSpoofChecks": func(network, cid, ifname string) error {
			return TeardownMacSpoofChecks([]Attachment{{Network: network, ContainerID: cid, IfName: ifname}})
		},
		"TeardownMacSpoofCheckWithReference": func(network, cid, ifname string) error {
			_, err := TeardownMacSpoofCheckWithReference(network, cid, ifname)
			return err
		},
	}
	for name, teardown := range teardowns {
		t.Run(name, func(t *testing.T) {
			node := newNetns(t, "spooftbl")
			do := func(step string, f func() error) {
				t.Helper()
				if err := inNetns(t, node, f); err != nil {
					t.Fatalf("%s: %v", step, err)
				}
			}
			do("set up a and b", func() error {
				if err := SetupMacSpoofCheck("n1", "ca", "eth0", "vetha", spoofMAC(1)); err != nil {
					return err
				}
				return SetupMacSpoofCheck("n2", "cb", "eth0", "vethb", spoofMAC(2))
			})
			do("tear down a", func() error { return teardown("n1", "ca", "eth0") })
			if o := spoofObjects(t, node); !o.table || o.rules != 1 {
				t.Fatalf("after tearing down one of two: %+v, want the table with b's rule", o)
			}
			if got := checkIDs(t, node); !slices.Equal(got, []string{"cb"}) {
				t.Fatalf("after tearing down one of two: checks %v, want [cb]", got)
			}
			do("tear down b", func() error { return teardown("n2", "cb", "eth0") })
			if o := spoofObjects(t, node); o.table {
				t.Fatalf("after tearing down the last check: %+v, want no table bridge %s", o, spoofTable)
			}
			do("tear down b again", func() error { return teardown("n2", "cb", "eth0") })
			do("set up again", func() error { return SetupMacSpoofCheck("n1", "cc", "eth0", "vethc", spoofMAC(3)) })
			if got := checkIDs(t, node); !slices.Equal(got, []string{"cc"}) {
				t.Fatalf("set up after the table went: checks %v, want [cc]", got)
			}
			do("tear down c", func() error { return teardown("n1", "cc", "eth0") })
			if o := spoofObjects(t, node); o.table {
				t.Fatalf("after tearing down the last check again: %+v, want no table", o)
			}
		})
	}
}

// GC's teardown of several checks at once, the last ones among them.
func TestMacSpoofTeardownManyRemovesTable(t *testing.T) {
	requireRoot(t)
	node := newNetns(t, "spooftblgc")
	err := inNetns(t, node, func() error {
		for i, cid := range []string{"c1", "c2", "c3"} {
			if err := SetupMacSpoofCheck("n1", cid, "eth0", "veth"+cid, spoofMAC(byte(i+1))); err != nil {
				return err
			}
		}
		return TeardownMacSpoofChecks([]Attachment{
			{Network: "n1", ContainerID: "c1", IfName: "eth0"},
			{Network: "n1", ContainerID: "c3", IfName: "eth0"},
		})
	})
	if err != nil {
		t.Fatal(err)
	}
	if o := spoofObjects(t, node); !o.table || o.rules != 1 {
		t.Fatalf("after GC of two of three: %+v, want the table with one rule", o)
	}
	err = inNetns(t, node, func() error {
		return TeardownMacSpoofChecks([]Attachment{
			{Network: "n1", ContainerID: "c2", IfName: "eth0"},
			{Network: "n1", ContainerID: "gone", IfName: "eth0"},
		})
	})
	if err != nil {
		t.Fatal(err)
	}
	if o := spoofObjects(t, node); o.table {
		t.Fatalf("after GC of the last: %+v, want no table bridge %s", o, spoofTable)
	}
}

// A table that holds anything that is not ours stays, with all it holds,
// when our last rule goes, and the teardown does not fail.
func TestMacSpoofTableKeptWithForeignContent(t *testing.T) {
	requireRoot(t)
	table, chain := spoofTableChain()
	foreign := []struct {
		name string
		add  func(*nftables.Conn) error
		want nftObjects // after our last teardown
	}{
		{
			name: "rule without our comment in our chain",
			add: func(c *nftables.Conn) error {
				c.AddRule(&nftables.Rule{Table: table, Chain: chain, Exprs: []expr.Any{&expr.Counter{}}})
				return nil
			},
			want: nftObjects{table: true, chains: []string{spoofChain}, rules: 1},
		},
		{
			name: "another chain in our table",
			add: func(c *nftables.Conn) error {
				c.AddChain(&nftables.Chain{Name: "other", Table: table})
				return nil
			},
			want: nftObjects{table: true, chains: []string{"other", spoofChain}},
		},
		{
			// Not in the listing the teardown reads: the kernel refuses to
			// delete the table, and with it the chain (one batch).
			name: "a set in our table",
			add: func(c *nftables.Conn) error {
				return c.AddSet(&nftables.Set{Table: table, Name: "other", KeyType: nftables.TypeEtherAddr}, nil)
			},
			want: nftObjects{table: true, chains: []string{spoofChain}},
		},
	}
	for _, f := range foreign {
		t.Run(f.name, func(t *testing.T) {
			node := newNetns(t, "spoofkeep")
			err := inNetns(t, node, func() error {
				if err := SetupMacSpoofCheck("n1", "ca", "eth0", "vetha", spoofMAC(1)); err != nil {
					return err
				}
				conn, err := nftables.New()
				if err != nil {
					return err
				}
				if err := f.add(conn); err != nil {
					return err
				}
				if err := conn.Flush(); err != nil {
					return fmt.Errorf("add the foreign object: %w", err)
				}
				return TeardownMacSpoofCheck("n1", "ca", "eth0")
			})
			if err != nil {
				t.Fatal(err)
			}
			if got := checkIDs(t, node); len(got) != 0 {
				t.Errorf("checks left: %v", got)
			}
			if o := spoofObjects(t, node); !o.table || !slices.Equal(o.chains, f.want.chains) || o.rules != f.want.rules {
				t.Errorf("after our last teardown: %+v, want %+v", o, f.want)
			}
		})
	}
}

// The removal itself: the kernel deletes the chain and the table only when
// both are empty (NLM_F_NONREC); a chain that holds a rule keeps both, and
// that is no error; no table is no error either.
func TestRemoveEmptySpoofTable(t *testing.T) {
	requireRoot(t)
	// GC with nothing stale does the same: it removes an empty table an
	// earlier teardown left (one that failed, or an older flatcni's).
	for name, removeEmpty := range map[string]func() error{
		"removeEmptySpoofTable":       removeEmptySpoofTable,
		"TeardownMacSpoofChecks(nil)": func() error { return TeardownMacSpoofChecks(nil) },
	} {
		t.Run(name, func(t *testing.T) {
			node := newNetns(t, "spoofrm")
			remove := func(step string) {
				t.Helper()
				if err := inNetns(t, node, removeEmpty); err != nil {
					t.Fatalf("%s: %s: %v", step, name, err)
				}
			}
			remove("no table")
			if err := inNetns(t, node, func() error {
				return SetupMacSpoofCheck("n1", "ca", "eth0", "vetha", spoofMAC(1))
			}); err != nil {
				t.Fatal(err)
			}
			remove("chain with a rule")
			if o := spoofObjects(t, node); !o.table || o.rules != 1 {
				t.Fatalf("a chain holding a rule was touched: %+v", o)
			}
			// Emptied behind its back (say, by another plugin's teardown
			// that went first): now it goes.
			if err := inNetns(t, node, func() error {
				conn, err := nftables.New()
				if err != nil {
					return err
				}
				_, chain := spoofTableChain()
				conn.FlushChain(chain)
				return conn.Flush()
			}); err != nil {
				t.Fatal(err)
			}
			remove("empty chain")
			if o := spoofObjects(t, node); o.table {
				t.Fatalf("empty table not removed: %+v", o)
			}
		})
	}
}

// A setup that lands between the teardown's removal of the last rule and
// its removal of the table keeps the table and its rule: deterministic, the
// setup runs from the hook between the two batches.
func TestMacSpoofTeardownRacingSetupKeepsRule(t *testing.T) {
	requireRoot(t)
	node := newNetns(t, "spoofrace1")
	ran := false
	beforeSpoofTableRemoval = func() {
		ran = true
		if err := SetupMacSpoofCheck("n2", "cb", "eth0", "vethb", spoofMAC(2)); err != nil {
			t.Errorf("setup between the batches: %v", err)
		}
	}
	t.Cleanup(func() { beforeSpoofTableRemoval = nil })
	err := inNetns(t, node, func() error {
		if err := SetupMacSpoofCheck("n1", "ca", "eth0", "vetha", spoofMAC(1)); err != nil {
			return err
		}
		return TeardownMacSpoofCheck("n1", "ca", "eth0")
	})
	if err != nil {
		t.Fatal(err)
	}
	if !ran {
		t.Fatal("the teardown of the last rule did not go on to remove the table")
	}
	if got := checkIDs(t, node); !slices.Equal(got, []string{"cb"}) {
		t.Fatalf("checks after the race: %v, want [cb]", got)
	}
	if o := spoofObjects(t, node); !o.table || o.rules != 1 {
		t.Fatalf("after the race: %+v, want the table with b's rule", o)
	}
}

// Two teardowns of the last two checks, each reading both rules before
// either deletes its own (two DELs of a node's last two containers): the
// one that commits last finds the chain empty and removes the table;
// deterministic, the second runs whole from the hook between the first's
// reading and its batch.
func TestMacSpoofTwoLastTeardownsRemoveTable(t *testing.T) {
	requireRoot(t)
	node := newNetns(t, "spoofrace2")
	ran := false
	afterSpoofRead = func() {
		if ran {
			return
		}
		ran = true
		if err := TeardownMacSpoofCheck("n2", "cb", "eth0"); err != nil {
			t.Errorf("teardown of b between a's reading and its batch: %v", err)
		}
	}
	t.Cleanup(func() { afterSpoofRead = nil })
	err := inNetns(t, node, func() error {
		if err := SetupMacSpoofCheck("n1", "ca", "eth0", "vetha", spoofMAC(1)); err != nil {
			return err
		}
		if err := SetupMacSpoofCheck("n2", "cb", "eth0", "vethb", spoofMAC(2)); err != nil {
			return err
		}
		ran = false // the setups read too
		return TeardownMacSpoofCheck("n1", "ca", "eth0")
	})
	if err != nil {
		t.Fatal(err)
	}
	if !ran {
		t.Fatal("the hook did not run")
	}
	if o := spoofObjects(t, node); o.table {
		t.Fatalf("after the last two teardowns: %+v, want no table bridge %s", o, spoofTable)
	}
}

// Setups racing teardowns of the last rule, from separate OS threads as
// separate plugin processes would: no setup's rule is ever lost, no call
// fails, and once the last check goes the table goes.
func TestMacSpoofTeardownSetupRace(t *testing.T) {
	requireRoot(t)
	node := newNetns(t, "spoofrace")
	const rounds = 40
	for i := range rounds {
		cid := fmt.Sprintf("c%d", i)
		if err := inNetns(t, node, func() error {
			return SetupMacSpoofCheck("n1", "last", "eth0", "vethlast", spoofMAC(1))
		}); err != nil {
			t.Fatal(err)
		}
		var wg sync.WaitGroup
		start := make(chan struct{})
		errs := make([]error, 2)
		for j, f := range []func() error{
			func() error { return TeardownMacSpoofCheck("n1", "last", "eth0") },
			func() error { return SetupMacSpoofCheck("n2", cid, "eth0", "vethnew", spoofMAC(2)) },
		} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				errs[j] = inNetns(t, node, func() error { <-start; return f() })
			}()
		}
		close(start)
		wg.Wait()
		if errs[0] != nil || errs[1] != nil {
			t.Fatalf("round %d: teardown: %v; setup: %v", i, errs[0], errs[1])
		}
		if got := checkIDs(t, node); !slices.Equal(got, []string{cid}) {
			t.Fatalf("round %d: checks %v, want [%s] (the racing setup's rule lost?)", i, got, cid)
		}
		if o := spoofObjects(t, node); !o.table || o.rules != 1 {
			t.Fatalf("round %d: %+v, want the table with one rule", i, o)
		}
		if err := inNetns(t, node, func() error { return TeardownMacSpoofCheck("n2", cid, "eth0") }); err != nil {
			t.Fatal(err)
		}
		if o := spoofObjects(t, node); o.table {
			t.Fatalf("round %d: after the last teardown: %+v, want no table", i, o)
		}
	}
}
