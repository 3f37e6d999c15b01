package firewall

import (
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"syscall"
	"testing"
)

// indexRules is a rule set for the index's tests: the truth the index
// caches, and how often it was listed in full.
type indexRules struct {
	dir   string
	rules []Published
	lists int
	// backend names the index ("": "test"); peers are other backends'
	// rule sets in the same lock directory, whose claims Publish and
	// Conflict respect.
	backend string
	peers   []*indexRules
	// listErr, when set, fails list (the backend cannot be read).
	listErr error
}

func newIndexRules(t *testing.T) *indexRules { return &indexRules{dir: t.TempDir()} }

func (r *indexRules) list() ([]Published, error) {
	r.lists++
	if r.listErr != nil {
		return nil, r.listErr
	}
	return slices.Clone(r.rules), nil
}

// publish does what the backends' Publish does with the index.
func (r *indexRules) publish(network string, owner Attachment, maps ...Mapping) error {
	x, err := lockedIndex(r.at(), network, owner, maps, r.list)
	if err != nil {
		return err
	}
	defer x.close()
	old, err := x.owned(network, owner)
	if err != nil {
		return err
	}
	if err := x.claim(network, owner, old, maps); err != nil {
		return err
	}
	r.rules = slices.DeleteFunc(r.rules, func(p Published) bool { return p.Network == network && p.Owner == owner })
	for _, m := range maps {
		r.rules = append(r.rules, Published{Network: network, Owner: owner, Mapping: m})
	}
	x.settle(network, owner, old, maps)
	return nil
}

// unpublish does what the backends' Unpublish fast path does.
func (r *indexRules) unpublish(t *testing.T, network string, owner Attachment) {
	x := teardownIndex(r.at())
	if x == nil {
		t.Fatal("no usable index")
	}
	defer x.close()
	old, err := x.owned(network, owner)
	if err != nil {
		t.Fatal(err)
	}
	r.rules = slices.DeleteFunc(r.rules, func(p Published) bool { return p.Network == network && p.Owner == owner })
	x.settle(network, owner, old, nil)
}

func (r *indexRules) indexDir(t *testing.T) string {
	name, err := r.at().name()
	if err != nil {
		t.Fatal(err)
	}
	return filepath.Join(r.dir, name)
}

func isConflict(err error) bool {
	var ce *PortConflictError
	return errors.As(err, &ce)
}

func TestIndexConflictWithoutListing(t *testing.T) {
	r := newIndexRules(t)
	if err := r.publish("net1", ownerA, mp("tcp", "", 8080, "10.1.0.2", 80)); err != nil {
		t.Fatal(err)
	}
	if r.lists != 1 {
		t.Errorf("the first Publish listed %d times, want 1 (the index built)", r.lists)
	}
	r.lists = 0
	if err := r.publish("net2", ownerB, mp("tcp", "", 8081, "10.2.0.2", 80)); err != nil {
		t.Fatal(err)
	}
	if err := indexConflict(r.at(), "net2", ownerB, []Mapping{mp("tcp", "", 8082, "10.2.0.2", 80)}, r.list); err != nil {
		t.Fatal(err)
	}
	if r.lists != 0 {
		t.Errorf("a Publish and a check without conflict listed the rules %d times", r.lists)
	}
	// A conflict is confirmed against the rules, locked and unlocked.
	err := r.publish("net2", ownerB, mp("tcp", "192.0.2.1", 8080, "10.2.0.2", 80))
	if !isConflict(err) {
		t.Errorf("Publish of a held port: %v, want a conflict", err)
	}
	if err := indexConflict(r.at(), "net2", ownerB, []Mapping{mp("tcp", "", 8080, "10.2.0.2", 80)}, r.list); !isConflict(err) {
		t.Errorf("Conflict of a held port: %v, want a conflict", err)
	}
	if r.lists != 2 {
		t.Errorf("the conflicts listed the rules %d times, want 2", r.lists)
	}
	// The owner itself on its network, another protocol: no conflict.
	if err := r.publish("net1", ownerA, mp("tcp", "", 8080, "10.1.0.2", 81), mp("udp", "", 8080, "10.1.0.2", 80)); err != nil {
		t.Fatal(err)
	}
	x, _ := openIndex(r.at(), false)
	defer x.close()
	got, _ := x.owned("net1", ownerA)
	if len(got) != 2 || got[0].ContainerPort != 81 {
		t.Errorf("record of the owner after a replace: %v", got)
	}
	claims, _ := x.claimsOf([]Mapping{mp("tcp", "", 8080, "10.1.0.2", 80)})
	if len(claims) != 1 || claims[0].ContainerPort != 81 {
		t.Errorf("claims on 8080/tcp after a replace: %v", claims)
	}
}

func TestIndexStaleClaimDropped(t *testing.T) {
	r := newIndexRules(t)
	if err := r.publish("net1", ownerA, mp("tcp", "", 8080, "10.1.0.2", 80), mp("tcp", "", 9090, "10.1.0.2", 90)); err != nil {
		t.Fatal(err)
	}
	// The rules go without the index hearing of it (a DEL that could not
	// write the index).
	r.rules = nil
	r.lists = 0
	if err := r.publish("net2", ownerB, mp("tcp", "", 8080, "10.2.0.2", 80)); err != nil {
		t.Fatalf("Publish over a stale claim: %v", err)
	}
	if r.lists != 1 {
		t.Errorf("listed %d times, want 1 (the confirmation)", r.lists)
	}
	x, _ := openIndex(r.at(), false)
	defer x.close()
	claims, _ := x.claimsOf([]Mapping{mp("tcp", "", 8080, "10.2.0.2", 80)})
	if len(claims) != 1 || claims[0].Owner != ownerB {
		t.Errorf("claims on 8080/tcp: %v, want ownerB's only", claims)
	}
	if got, _ := x.owned("net1", ownerA); len(got) != 0 {
		t.Errorf("the stale owner's record is still %v", got)
	}
	// Its claim on the port the ADD did not ask for goes with its record:
	// left, nothing would remove it (the network's last DEL and GC
	// reconcile its records only).
	if claims, _ := x.claimsOf([]Mapping{mp("tcp", "", 9090, "10.1.0.2", 90)}); len(claims) != 0 {
		t.Errorf("the stale owner's claim on 9090/tcp is still there: %v", claims)
	}
}

func TestIndexRebuilt(t *testing.T) {
	for _, c := range []struct {
		name   string
		damage func(t *testing.T, dir string)
	}{
		{"index removed", func(t *testing.T, dir string) { os.RemoveAll(dir) }},
		{"marker removed", func(t *testing.T, dir string) { os.Remove(filepath.Join(dir, indexMarker)) }},
		{"claim file garbage", func(t *testing.T, dir string) {
			os.WriteFile(filepath.Join(dir, "claims", "ip4-tcp-8080"), []byte("garbage\x00\n"), 0o600)
		}},
		{"claim file emptied", func(t *testing.T, dir string) {
			os.WriteFile(filepath.Join(dir, "claims", "ip4-tcp-8080"), nil, 0o600)
		}},
		{"claim file of another port", func(t *testing.T, dir string) {
			os.Rename(filepath.Join(dir, "claims", "ip4-tcp-8080"), filepath.Join(dir, "claims", "ip4-tcp-8081"))
			os.WriteFile(filepath.Join(dir, "claims", "ip4-tcp-8080"), []byte("net9 x/eth0 tcp * 8081 10.9.0.2 80\n"), 0o600)
		}},
		{"claims removed", func(t *testing.T, dir string) { os.RemoveAll(filepath.Join(dir, "claims")) }},
		{"claims a link", func(t *testing.T, dir string) {
			os.RemoveAll(filepath.Join(dir, "claims"))
			os.Symlink(t.TempDir(), filepath.Join(dir, "claims"))
		}},
		{"records removed", func(t *testing.T, dir string) { os.RemoveAll(filepath.Join(dir, "owners")) }},
		{"claim file a directory", func(t *testing.T, dir string) {
			p := filepath.Join(dir, "claims", "ip4-tcp-8080")
			os.Remove(p)
			os.Mkdir(p, 0o700)
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := newIndexRules(t)
			if err := r.publish("net1", ownerA, mp("tcp", "", 8080, "10.1.0.2", 80)); err != nil {
				t.Fatal(err)
			}
			c.damage(t, r.indexDir(t))
			r.lists = 0
			err := r.publish("net2", ownerB, mp("tcp", "", 8080, "10.2.0.2", 80))
			if !isConflict(err) {
				t.Fatalf("Publish of a held port after the damage: %v, want a conflict", err)
			}
			// Then the index is whole again: no listing without a conflict.
			r.lists = 0
			if err := r.publish("net2", ownerB, mp("tcp", "", 8081, "10.2.0.2", 80)); err != nil {
				t.Fatal(err)
			}
			if r.lists != 0 {
				t.Errorf("listed %d times after the rebuild", r.lists)
			}
			if err := r.publish("net2", ownerB, mp("tcp", "", 8080, "10.2.0.2", 80)); !isConflict(err) {
				t.Errorf("the rebuilt index lost a claim: %v", err)
			}
		})
	}
}

func TestIndexSymlinksNotFollowed(t *testing.T) {
	r := newIndexRules(t)
	if err := r.publish("net1", ownerA, mp("tcp", "", 8080, "10.1.0.2", 80)); err != nil {
		t.Fatal(err)
	}
	dir := r.indexDir(t)
	outside := filepath.Join(t.TempDir(), "precious")
	// Its content would read as "no conflict" (ownerB's own claim) if the
	// link were followed.
	text := []byte("net2 bbb/eth0 tcp * 8080 10.2.0.2 80\n")
	if err := os.WriteFile(outside, text, 0o600); err != nil {
		t.Fatal(err)
	}
	claim := filepath.Join(dir, "claims", "ip4-tcp-8080")
	os.Remove(claim)
	if err := os.Symlink(outside, claim); err != nil {
		t.Fatal(err)
	}
	if err := r.publish("net2", ownerB, mp("tcp", "", 8080, "10.2.0.2", 80)); !isConflict(err) {
		t.Errorf("Publish with a link as claim file: %v, want a conflict", err)
	}
	if fi, err := os.Lstat(claim); err != nil || !fi.Mode().IsRegular() {
		t.Errorf("the claim file is not a regular file again: %v %v", fi, err)
	}
	if b, _ := os.ReadFile(outside); string(b) != string(text) {
		t.Errorf("the link's target changed: %q", b)
	}
	// The index directory itself a link: replaced, its target untouched.
	other := t.TempDir()
	os.RemoveAll(dir)
	if err := os.Symlink(other, dir); err != nil {
		t.Fatal(err)
	}
	if err := r.publish("net2", ownerB, mp("tcp", "", 8080, "10.2.0.2", 80)); !isConflict(err) {
		t.Errorf("Publish with a link as index directory: %v, want a conflict", err)
	}
	if fi, err := os.Lstat(dir); err != nil || !fi.IsDir() {
		t.Errorf("the index directory is not a directory again: %v %v", fi, err)
	}
	if entries, _ := os.ReadDir(other); len(entries) != 0 {
		t.Errorf("written through the link: %v", entries)
	}
	if x := teardownIndex(r.at()); x != nil {
		x.close()
	} else {
		t.Error("no usable index after the rebuild")
	}
}

func TestIndexUnpublishAndReconcile(t *testing.T) {
	r := newIndexRules(t)
	if err := r.publish("net1", ownerA, mp("tcp", "", 8080, "10.1.0.2", 80)); err != nil {
		t.Fatal(err)
	}
	if err := r.publish("net1", ownerB, mp("tcp", "", 8081, "10.1.0.3", 80)); err != nil {
		t.Fatal(err)
	}
	r.unpublish(t, "net1", ownerA)
	x, _ := openIndex(r.at(), false)
	if x.networkEmpty("net1") {
		t.Error("net1 empty with ownerB's record")
	}
	if claims, _ := x.claimsOf([]Mapping{mp("tcp", "", 8080, "10.1.0.2", 80)}); len(claims) != 0 {
		t.Errorf("claims left after Unpublish: %v", claims)
	}
	x.close()
	// GC: ownerB goes from the rules, ownerC's rule was never claimed.
	ownerC := Attachment{ContainerID: "ccc", IfName: "eth0"}
	r.rules = []Published{{Network: "net1", Owner: ownerC, Mapping: mp("udp", "", 53, "10.1.0.4", 53)}}
	reconcileIndex(r.at(), "net1", r.rules)
	x, _ = openIndex(r.at(), false)
	defer x.close()
	if got, _ := x.owned("net1", ownerB); len(got) != 0 {
		t.Errorf("ownerB's record after reconcile: %v", got)
	}
	if got, _ := x.owned("net1", ownerC); len(got) != 1 {
		t.Errorf("ownerC's record after reconcile: %v", got)
	}
	if claims, _ := x.claimsOf([]Mapping{mp("tcp", "", 8081, "10.1.0.3", 80), mp("udp", "", 53, "10.1.0.4", 53)}); len(claims) != 1 || claims[0].Owner != ownerC {
		t.Errorf("claims after reconcile: %v", claims)
	}
	reconcileIndex(r.at(), "net1", nil)
	if !x.networkEmpty("net1") {
		t.Error("net1 not empty after its last reconcile")
	}
}

func (r *indexRules) at() indexAt {
	at := indexAt{lockDir: r.dir, backend: r.backend}
	if at.backend == "" {
		at.backend = "test"
	}
	for _, p := range r.peers {
		at.peers = append(at.peers, indexPeer{backend: p.backend, list: p.list})
	}
	return at
}

// PortsIndexed tells a node where no port was ever published (no index of
// either backend in the lock directory, or no lock directory) from one
// where a Publish made its index, even once every mapping is gone.
func TestPortsIndexed(t *testing.T) {
	indexed := func(dir string) bool { i, _ := PortsIndexed(dir, "n"); return i }
	dir := t.TempDir()
	if indexed(filepath.Join(dir, "missing")) || indexed(dir) {
		t.Fatal("indexed before any publish")
	}
	// Another backend's index ("test") or another node's says nothing.
	r := &indexRules{dir: dir}
	if err := r.publish("n", Attachment{ContainerID: "c", IfName: "eth0"}, Mapping{Protocol: "tcp", HostPort: 80, ContainerPort: 80, ContainerIP: netip.MustParseAddr("10.0.0.2")}); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(dir, indexDirPrefix+NFTablesName+".0-0"), 0o700); err != nil {
		t.Fatal(err)
	}
	if indexed(dir) {
		t.Fatal("indexed by another backend's or another node's index")
	}
	x, err := lockedIndex(indexAt{lockDir: dir, backend: NFTablesName}, "n", Attachment{ContainerID: "c", IfName: "eth0"}, nil, func() ([]Published, error) { return nil, nil })
	if err != nil {
		t.Fatal(err)
	}
	x.close()
	if !indexed(dir) {
		t.Fatal("not indexed after a publish made the index")
	}
}

// PortsIndexed's recorded finds the network's owner records in the node's
// index of either backend (what netlink does not show, iptables-legacy's
// mappings, are recorded there too), and nothing for another network,
// another node's index or once the network's last record went.
func TestPortsRecorded(t *testing.T) {
	recorded := func(dir, network string) bool { _, r := PortsIndexed(dir, network); return r }
	dir := t.TempDir()
	if recorded(filepath.Join(dir, "missing"), "n") || recorded(dir, "n") {
		t.Fatal("recorded before any publish")
	}
	must(t, os.MkdirAll(filepath.Join(dir, indexDirPrefix+IPTablesName+".0-0", "owners", "n"), 0o700))
	if recorded(dir, "n") {
		t.Fatal("recorded by another node's index")
	}
	at := indexAt{lockDir: dir, backend: IPTablesName}
	owner := Attachment{ContainerID: "c", IfName: "eth0"}
	m := Mapping{Protocol: "tcp", HostPort: 80, ContainerPort: 80, ContainerIP: netip.MustParseAddr("10.0.0.2")}
	x, err := lockedIndex(at, "n", owner, []Mapping{m}, func() ([]Published, error) { return nil, nil })
	must(t, err)
	must(t, x.claim("n", owner, nil, []Mapping{m}))
	x.close()
	if !recorded(dir, "n") || recorded(dir, "other") || recorded(dir, "../n") {
		t.Fatalf("after a publish on n: n %t, other %t, ../n %t; want true, false, false", recorded(dir, "n"), recorded(dir, "other"), recorded(dir, "../n"))
	}
	x, err = lockedIndex(at, "n", owner, nil, func() ([]Published, error) { return nil, nil })
	must(t, err)
	x.settle("n", owner, []Mapping{m}, nil)
	x.close()
	if recorded(dir, "n") {
		t.Fatal("still recorded once the network's last mapping went")
	}
	if i, _ := PortsIndexed(dir, "n"); !i {
		t.Fatal("not indexed once the network's last mapping went")
	}
}

// TestIndexSettleWritesOnlyWhatWent: an ADD's settle, which keeps every
// mapping claim recorded, leaves claim's record as it is (one write an
// ADD, not two); one that drops a mapping narrows the record and the claims.
func TestIndexSettleWritesOnlyWhatWent(t *testing.T) {
	r := newIndexRules(t)
	owner := Attachment{ContainerID: "c", IfName: "eth0"}
	ip := netip.MustParseAddr("10.0.0.2")
	m80 := Mapping{Protocol: "tcp", HostPort: 80, ContainerPort: 80, ContainerIP: ip}
	m443 := Mapping{Protocol: "tcp", HostPort: 443, ContainerPort: 443, ContainerIP: ip}
	record := filepath.Join(r.indexDir(t), "owners", "n", ownerFile(owner))
	inode := func() uint64 {
		t.Helper()
		st, err := os.Lstat(record)
		must(t, err)
		return st.Sys().(*syscall.Stat_t).Ino
	}

	x, err := lockedIndex(r.at(), "n", owner, []Mapping{m80, m443}, r.list)
	must(t, err)
	must(t, x.claim("n", owner, nil, []Mapping{m80, m443}))
	claimed := inode()
	x.settle("n", owner, nil, []Mapping{m80, m443})
	if got := inode(); got != claimed {
		t.Fatalf("settle rewrote the record claim had just written (inode %d, then %d)", claimed, got)
	}
	x.close()

	// The same attachment again with 443 dropped: the record and the
	// claim on 443 go down to what the rules hold.
	r.rules = []Published{{Network: "n", Owner: owner, Mapping: m80}, {Network: "n", Owner: owner, Mapping: m443}}
	x, err = lockedIndex(r.at(), "n", owner, []Mapping{m80}, r.list)
	must(t, err)
	defer x.close()
	old, err := x.owned("n", owner)
	must(t, err)
	must(t, x.claim("n", owner, old, []Mapping{m80}))
	x.settle("n", owner, old, []Mapping{m80})
	got, err := x.owned("n", owner)
	must(t, err)
	if !slices.Equal(got, []Mapping{m80}) {
		t.Fatalf("record after dropping 443: %v, want only %v", got, m80)
	}
	if ps, err := x.readClaims(claimKey(m443)); err != nil || len(ps) != 0 {
		t.Fatalf("claims on 443 after it went: %v, %v; want none", ps, err)
	}
}

// The index lives in the lock directory only when that is ours, as the
// locks do: one of another user (who could write records that make a DEL
// remove another owner's mappings) is not used.
func TestIndexInLockDirOfAnotherUser(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root (chown)")
	}
	r := newIndexRules(t)
	if err := r.publish("net1", ownerA, mp("tcp", "", 8080, "10.1.0.2", 80)); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(r.dir, 65534, 65534); err != nil {
		t.Fatal(err)
	}
	if x := teardownIndex(r.at()); x != nil {
		x.close()
		t.Error("the index of a lock directory of another user was used")
	}
	if err := r.publish("net2", ownerB, mp("tcp", "", 8081, "10.2.0.2", 80)); err == nil {
		t.Error("Publish with the index in a lock directory of another user succeeded")
	}
}

// A stale owner's record that is damaged does not fail the Publish whose
// confirmation drops the stale claim: the record is rewritten from the
// rules, as any.
func TestIndexStaleClaimOfDamagedRecord(t *testing.T) {
	r := newIndexRules(t)
	if err := r.publish("net1", ownerA, mp("tcp", "", 8080, "10.1.0.2", 80)); err != nil {
		t.Fatal(err)
	}
	r.rules = nil
	if err := os.WriteFile(filepath.Join(r.indexDir(t), "owners", "net1", ownerFile(ownerA)), []byte("garbage\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := r.publish("net2", ownerB, mp("tcp", "", 8080, "10.2.0.2", 80)); err != nil {
		t.Fatalf("Publish over a stale claim whose owner's record is damaged: %v", err)
	}
}
