package firewall

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// peeredRules returns the rule sets of two backends, "test-nft" and
// "test-ipt", in one lock directory, each the other's peer (as the real
// backends are).
func peeredRules(t *testing.T) (nft, ipt *indexRules) {
	dir := t.TempDir()
	nft = &indexRules{dir: dir, backend: "test-nft"}
	ipt = &indexRules{dir: dir, backend: "test-ipt"}
	nft.peers = []*indexRules{ipt}
	ipt.peers = []*indexRules{nft}
	return nft, ipt
}

// peerConflict fails unless err is a conflict over a port held by holder
// on network in backend.
func peerConflict(t *testing.T, err error, backend, network string, holder Attachment) {
	t.Helper()
	var ce *PortConflictError
	if !errors.As(err, &ce) {
		t.Fatalf("got %v, want a conflict with %s", err, backend)
	}
	if ce.Backend != backend || ce.Holder.Network != network || ce.Holder.Owner != holder {
		t.Fatalf("conflict %v: backend %q, holder %v on %q; want %s, %v on %q", err, ce.Backend, ce.Holder.Owner, ce.Holder.Network, backend, holder, network)
	}
}

// A host port one backend publishes fails the Conflict and the Publish of
// another backend's network, in both directions, naming the holder and its
// backend, and writes no claim in the asking backend's index; another
// port or protocol is free, and costs the peer no listing.
func TestIndexPeerConflict(t *testing.T) {
	nft, ipt := peeredRules(t)
	must(t, nft.publish("xa", ownerA, mp("tcp", "", 9090, "10.1.0.2", 80), mp("udp", "", 9090, "10.1.0.2", 80)))
	nft.lists = 0

	want := []Mapping{mp("tcp", "", 9090, "10.2.0.2", 80)}
	peerConflict(t, indexConflict(ipt.at(), "xb", ownerB, want, ipt.list), "test-nft", "xa", ownerA)
	peerConflict(t, ipt.publish("xb", ownerB, want...), "test-nft", "xa", ownerA)
	// A host address of its own, the holder's being the wildcard.
	peerConflict(t, ipt.publish("xb", ownerB, mp("tcp", "192.0.2.1", 9090, "10.2.0.2", 80)), "test-nft", "xa", ownerA)
	if nft.lists != 3 {
		t.Errorf("the peer's rules were listed %d times for 3 conflicts, want 3 (each confirmed)", nft.lists)
	}
	if len(ipt.rules) != 0 {
		t.Errorf("rules written after conflicts: %v", ipt.rules)
	}
	x, err := openIndex(ipt.at(), false)
	must(t, err)
	if claims, _ := x.claimsOf(want); len(claims) != 0 {
		t.Errorf("claims of the refused ADD: %v", claims)
	}
	x.close()

	// Another port, another protocol: free, the peer's claims read only.
	nft.lists = 0
	must(t, indexConflict(ipt.at(), "xb", ownerB, []Mapping{mp("tcp", "", 9091, "10.2.0.2", 80)}, ipt.list))
	must(t, ipt.publish("xb", ownerB, mp("tcp", "", 9091, "10.2.0.2", 80), mp("sctp", "", 9090, "10.2.0.2", 80)))
	if nft.lists != 0 {
		t.Errorf("the peer's rules were listed %d times without a conflict", nft.lists)
	}

	// The other direction.
	peerConflict(t, indexConflict(nft.at(), "xc", ownerB, []Mapping{mp("tcp", "", 9091, "10.3.0.2", 80)}, nft.list), "test-ipt", "xb", ownerB)
	peerConflict(t, nft.publish("xc", ownerB, mp("sctp", "", 9090, "10.3.0.2", 80)), "test-ipt", "xb", ownerB)
	// The same attachment of the same network holds nothing against
	// itself (a network whose backend changed, its ADD repeated).
	must(t, nft.publish("xb", ownerB, mp("tcp", "", 9091, "10.2.0.2", 80)))
}

// A peer without an index on the node (no port ever published with it)
// costs a lookup: no listing of its rules, and no index made for it.
func TestIndexPeerWithoutIndex(t *testing.T) {
	nft, ipt := peeredRules(t)
	ipt.rules = []Published{{Network: "old", Owner: ownerA, Mapping: mp("tcp", "", 9090, "10.9.0.2", 80)}}
	must(t, nft.publish("xa", ownerA, mp("tcp", "", 9090, "10.1.0.2", 80)))
	must(t, indexConflict(nft.at(), "xa", ownerB, []Mapping{mp("tcp", "", 9091, "10.1.0.3", 80)}, nft.list))
	if ipt.lists != 0 {
		t.Errorf("the peer without an index was listed %d times", ipt.lists)
	}
	if _, err := os.Lstat(ipt.indexDir(t)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("an index was made for the peer: %v", err)
	}
}

// A stale claim in the peer's index (its rule gone without the index
// hearing of it) is confirmed against the peer's rules and dropped from
// the peer's index, with its owner's record: it blocks nothing.
func TestIndexPeerStaleClaim(t *testing.T) {
	nft, ipt := peeredRules(t)
	must(t, nft.publish("xa", ownerA, mp("tcp", "", 9090, "10.1.0.2", 80), mp("tcp", "", 9443, "10.1.0.2", 443)))
	nft.rules = nft.rules[1:] // 9090's rule gone, its claim left
	nft.lists = 0
	// Unlocked, then locked: the claim is confirmed and dropped.
	must(t, indexConflict(ipt.at(), "xb", ownerB, []Mapping{mp("tcp", "", 9090, "10.2.0.2", 80)}, ipt.list))
	if nft.lists != 1 {
		t.Errorf("the peer's rules were listed %d times, want 1 (the confirmation)", nft.lists)
	}
	must(t, ipt.publish("xb", ownerB, mp("tcp", "", 9090, "10.2.0.2", 80)))
	if nft.lists != 1 {
		t.Errorf("the peer's rules were listed %d times after the stale claim went, want 1", nft.lists)
	}
	x, err := openIndex(nft.at(), false)
	must(t, err)
	defer x.close()
	if claims, err := x.readClaims("ip4-tcp-9090"); err != nil || len(claims) != 0 {
		t.Errorf("the peer's stale claim: %v %v", claims, err)
	}
	if got, err := x.owned("xa", ownerA); err != nil || len(got) != 1 || got[0].HostPort != 9443 {
		t.Errorf("the holder's record in the peer's index: %v %v, want 9443 only", got, err)
	}
	if !x.complete {
		t.Error("the peer's index is left incomplete")
	}
}

// A peer's index that is incomplete or damaged is rebuilt from the peer's
// rules under the lock (as the peer's own Publish would); the conflict is
// found all the same.
func TestIndexPeerRebuilt(t *testing.T) {
	nft, ipt := peeredRules(t)
	must(t, nft.publish("xa", ownerA, mp("tcp", "", 9090, "10.1.0.2", 80)))
	claim := filepath.Join(nft.indexDir(t), "claims", "ip4-tcp-9090")
	for _, damage := range []func() error{
		func() error { return os.Remove(filepath.Join(nft.indexDir(t), indexMarker)) },
		func() error { return os.WriteFile(claim, []byte("garbage\n"), 0o600) },
		func() error { return os.RemoveAll(filepath.Join(nft.indexDir(t), "claims")) },
	} {
		must(t, damage())
		nft.lists = 0
		peerConflict(t, indexConflict(ipt.at(), "xb", ownerB, []Mapping{mp("tcp", "", 9090, "10.2.0.2", 80)}, ipt.list), "test-nft", "xa", ownerA)
		if nft.lists != 2 {
			t.Errorf("the damaged peer index: listed %d times, want 2 (the rebuild, the confirmation)", nft.lists)
		}
		if b, err := os.ReadFile(claim); err != nil || string(b) != formatIndexLine(nft.rules[0]) {
			t.Errorf("the peer's claim after the rebuild: %q %v", b, err)
		}
		must(t, damage())
		peerConflict(t, ipt.publish("xb", ownerB, mp("tcp", "", 9090, "10.2.0.2", 80)), "test-nft", "xa", ownerA)
	}
}

// A peer whose rules cannot be read (its command gone): a claim of its on
// the wanted port still conflicts (unconfirmed: an index never claims less
// than the rules hold); a damaged index of it, which only its rules could
// mend, does not fail the other backend's ADD.
func TestIndexPeerUnreadable(t *testing.T) {
	nft, ipt := peeredRules(t)
	must(t, nft.publish("xa", ownerA, mp("tcp", "", 9090, "10.1.0.2", 80)))
	nft.listErr = errors.New("fake: nft cannot be read")
	peerConflict(t, ipt.publish("xb", ownerB, mp("tcp", "", 9090, "10.2.0.2", 80)), "test-nft", "xa", ownerA)
	must(t, os.Remove(filepath.Join(nft.indexDir(t), indexMarker)))
	if err := ipt.publish("xb", ownerB, mp("tcp", "", 9091, "10.2.0.2", 80)); err != nil {
		t.Fatalf("a publish beside an unreadable peer with a damaged index: %v", err)
	}
}

// The conflict error names the other backend.
func TestPortConflictErrorNamesBackend(t *testing.T) {
	e := &PortConflictError{Want: mp("tcp", "", 9090, "10.2.0.2", 80), Holder: Published{Network: "xa", Owner: ownerA, Mapping: mp("tcp", "", 9090, "10.1.0.2", 80)}, Backend: NFTablesName}
	want := `host port *:9090/tcp (IPv4) is already published by container "aaa" interface "eth0" on network "xa" (as *:9090/tcp (IPv4), ipMasqBackend nftables)`
	if e.Error() != want {
		t.Errorf("got %q\nwant %q", e.Error(), want)
	}
	e.Backend = ""
	if want := `host port *:9090/tcp (IPv4) is already published by container "aaa" interface "eth0" on network "xa" (as *:9090/tcp (IPv4))`; e.Error() != want {
		t.Errorf("same backend: %q", e.Error())
	}
}
