package firewall

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/flatcni/plugins/internal/testns"
)

// TestPortsConflictAcrossBackends: in a namespace with one lock directory,
// a host port published by a network of one backend fails the Conflict
// and the Publish of another network's attachment in the other backend
// (nftables first, then iptables first), naming the holder and its
// backend, and the refused Publish writes nothing; another port or
// protocol is free. A claim the holding backend's index kept for a rule
// that went (a teardown without the index) blocks nothing: the other
// backend's Publish confirms it against the holder's rules and drops it.
func TestPortsConflictAcrossBackends(t *testing.T) {
	requireRoot(t)
	requireIPTablesNFT(t, "the namespace's rule set is read with nft")
	n := newTestNS(t, "pxb")
	lockDir := t.TempDir()
	nft, err := NewPorts(NFTablesName, WithLockDir(lockDir))
	must(t, err)
	ipt, err := NewPorts(IPTablesName, WithLockDir(lockDir))
	must(t, err)
	sfx := testns.Suffix(t, 3)
	netA := PortNetwork{Name: "xpa-" + sfx, Bridge: "xpba" + sfx, Subnets: pfx("10.51.0.0/24")}
	netB := PortNetwork{Name: "xpb-" + sfx, Bridge: "xpbb" + sfx, Subnets: pfx("10.52.0.0/24")}
	netC := PortNetwork{Name: "xpc-" + sfx, Bridge: "xpbc" + sfx, Subnets: pfx("10.53.0.0/24")}
	ownerC := Attachment{ContainerID: "ccc", IfName: "eth0"}
	ownerD := Attachment{ContainerID: "ddd", IfName: "eth0"}
	do := func(fn func() error) error { t.Helper(); return n.do(t, fn) }
	conflict := func(err error, backend string, holderNet string, holder Attachment, why string) {
		t.Helper()
		var ce *PortConflictError
		if !errors.As(err, &ce) {
			t.Errorf("%s: %v, want a conflict", why, err)
			return
		}
		if ce.Backend != backend || ce.Holder.Network != holderNet || ce.Holder.Owner != holder {
			t.Errorf("%s: %v; want the holder %v on %s in %s", why, err, holder, holderNet, backend)
		}
		for _, s := range []string{fmt.Sprintf(":%d/", ce.Want.HostPort), holderNet, holder.ContainerID, backend} {
			if !strings.Contains(err.Error(), s) {
				t.Errorf("%s: %q does not name %q", why, err, s)
			}
		}
	}

	// nftables holds 9090 tcp and udp.
	must(t, do(func() error {
		return nft.Publish(netA, ownerA, []Mapping{mp("tcp", "", 9090, "10.51.0.2", 80), mp("udp", "", 9090, "10.51.0.2", 80)})
	}))
	for _, m := range []Mapping{mp("tcp", "", 9090, "10.52.0.2", 80), mp("udp", "", 9090, "10.52.0.2", 80), mp("tcp", "10.0.0.1", 9090, "10.52.0.2", 80)} {
		conflict(do(func() error { return ipt.Conflict(netB.Name, ownerB, []Mapping{m}) }), NFTablesName, netA.Name, ownerA, "iptables Conflict of "+m.host())
		conflict(do(func() error { return ipt.Publish(netB, ownerB, []Mapping{m}) }), NFTablesName, netA.Name, ownerA, "iptables Publish of "+m.host())
	}
	if rules := n.ruleset(t); strings.Contains(rules, netB.Name) || strings.Contains(rules, iptPortsChain(netB.Name)) {
		t.Errorf("the refused Publish wrote rules:\n%s", rules)
	}
	// Another port: free.
	must(t, do(func() error { return ipt.Conflict(netB.Name, ownerB, []Mapping{mp("tcp", "", 9091, "10.52.0.2", 80)}) }))
	must(t, do(func() error { return ipt.Publish(netB, ownerB, []Mapping{mp("tcp", "", 9091, "10.52.0.2", 80)}) }))

	// iptables holds 9091/tcp: nftables' Publish of it fails, of 9091/udp not.
	conflict(do(func() error { return nft.Conflict(netC.Name, ownerC, []Mapping{mp("tcp", "", 9091, "10.53.0.2", 80)}) }), IPTablesName, netB.Name, ownerB, "nftables Conflict of 9091/tcp")
	conflict(do(func() error {
		return nft.Publish(netC, ownerC, []Mapping{mp("udp", "", 9092, "10.53.0.2", 80), mp("tcp", "", 9091, "10.53.0.2", 80)})
	}), IPTablesName, netB.Name, ownerB, "nftables Publish of 9091/tcp")
	if rules := n.ruleset(t); strings.Contains(rules, netC.Name) {
		t.Errorf("the refused Publish wrote rules:\n%s", rules)
	}
	must(t, do(func() error { return nft.Publish(netC, ownerC, []Mapping{mp("udp", "", 9091, "10.53.0.2", 80)}) }))

	// netA's rules go without its index hearing of it (a teardown whose
	// lock directory is unusable): its claims on 9090 are stale, and
	// iptables' Publish of 9090 drops them.
	bad := filepath.Join(t.TempDir(), "file")
	must(t, os.WriteFile(bad, nil, 0o600))
	teardown, err := NewPorts(NFTablesName, WithLockDir(filepath.Join(bad, "locks")), WithBestEffortLock())
	must(t, err)
	must(t, do(func() error { return teardown.Unpublish(netA.Name, ownerA) }))
	var index string
	must(t, do(func() error {
		name, err := indexName(NFTablesName)
		index = filepath.Join(lockDir, name)
		return err
	}))
	if b, err := os.ReadFile(filepath.Join(index, "claims", "ip4-tcp-9090")); err != nil || !strings.Contains(string(b), "aaa/eth0") {
		t.Fatalf("ownerA's claim should be left over: %q %v", b, err)
	}
	must(t, do(func() error { return ipt.Publish(netB, ownerD, []Mapping{mp("tcp", "", 9090, "10.52.0.3", 80)}) }))
	if _, err := os.Lstat(filepath.Join(index, "claims", "ip4-tcp-9090")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the stale claim in nftables' index: %v", err)
	}
	// Its claim on 9090/udp, not asked for, goes with its record, which
	// the confirmation rewrote from nftables' rules (holding nothing of
	// ownerA): left, nothing would remove it.
	if _, err := os.Lstat(filepath.Join(index, "claims", "ip4-udp-9090")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the stale claim on 9090/udp, of the record the confirmation rewrote: %v", err)
	}

	for _, c := range []struct {
		b   Ports
		net string
	}{{ipt, netB.Name}, {nft, netC.Name}, {nft, netA.Name}} {
		must(t, do(func() error { return c.b.Retain(c.net, nil) }))
	}
	if rules := n.ruleset(t); strings.Contains(rules, "xp") || strings.Contains(rules, iptPortsChainPrefix) {
		t.Errorf("rules left:\n%s", rules)
	}
}
