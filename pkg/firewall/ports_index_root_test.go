package firewall

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestPortsIndexBackends: with each real backend in a namespace, an
// Unpublish removes exactly the owner's rules and claims (iptables: found
// by handle through netlink on iptables-nft), a conflict is found after
// the index directory was removed and after a claim file was made garbage,
// an Unpublish without a usable index still removes the rules (the claim
// it leaves is dropped by the next Publish of the port), and the network's
// last Unpublish and Retain leave neither rules nor records.
func TestPortsIndexBackends(t *testing.T) {
	requireRoot(t)
	ownerC := Attachment{ContainerID: "ccc", IfName: "eth0"}
	ownerD := Attachment{ContainerID: "ddd", IfName: "eth0"}
	net1 := PortNetwork{Name: "idx1", Bridge: "bri1", Subnets: pfx("10.41.0.0/24")}
	net2 := PortNetwork{Name: "idx2", Bridge: "bri2", Subnets: pfx("10.42.0.0/24")}
	for _, backend := range []string{IPTablesName, NFTablesName} {
		t.Run(backend, func(t *testing.T) {
			n := newTestNS(t, "pidx")
			lockDir := t.TempDir()
			b, err := NewPorts(backend, WithLockDir(lockDir))
			if err != nil {
				t.Fatal(err)
			}
			var index string
			must := func(err error) {
				t.Helper()
				if err != nil {
					t.Fatal(err)
				}
			}
			list := func() []Published {
				t.Helper()
				var l []Published
				must(n.do(t, func() (err error) { l, err = b.List(); return err }))
				return l
			}
			must(n.do(t, func() error {
				if err := b.Publish(net1, ownerA, []Mapping{mp("tcp", "", 8080, "10.41.0.2", 80), mp("tcp", "", 8443, "10.41.0.2", 443)}); err != nil {
					return err
				}
				if err := b.Publish(net1, ownerB, []Mapping{mp("tcp", "", 9090, "10.41.0.3", 90)}); err != nil {
					return err
				}
				name, err := indexName(backend)
				index = filepath.Join(lockDir, name)
				return err
			}))
			must(n.do(t, func() error { return b.Publish(net2, ownerC, []Mapping{mp("udp", "", 5353, "10.42.0.2", 53)}) }))
			if backend == IPTablesName {
				if out, _ := exec.Command("iptables", "--version").Output(); strings.Contains(string(out), "nf_tables") {
					var handles map[string][]uint64
					var ok bool
					c := portsMappingComment(net1.Name, ownerB, mp("tcp", "", 9090, "10.41.0.3", 90))
					must(n.do(t, func() error { handles, ok = iptNFTHandles(ipv4, iptPortsChain(net1.Name), []string{c}); return nil }))
					if !ok || len(handles[c]) != 1 {
						t.Errorf("iptNFTHandles did not find ownerB's rule: %v %v", handles, ok)
					}
				}
			}
			must(n.do(t, func() error { return b.Unpublish(net1.Name, ownerA) }))
			if l := list(); len(l) != 2 || l[0].Owner != ownerB || l[1].Owner != ownerC {
				t.Errorf("after Unpublish of ownerA: %v", l)
			}
			if _, err := os.Lstat(filepath.Join(index, "claims", "ip4-tcp-8080")); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("ownerA's claim after its Unpublish: %v", err)
			}
			// Conflicts found with the index gone, then with garbage in it.
			claim := filepath.Join(index, "claims", "ip4-tcp-9090")
			for _, damage := range []func() error{
				func() error { return os.RemoveAll(index) },
				func() error { return os.WriteFile(claim, []byte("garbage\n"), 0o600) },
			} {
				must(damage())
				var ce *PortConflictError
				err := n.do(t, func() error { return b.Conflict(net2.Name, ownerD, []Mapping{mp("tcp", "", 9090, "10.42.0.3", 90)}) })
				if !errors.As(err, &ce) {
					t.Errorf("Conflict after damage: %v", err)
				}
				must(damage())
				err = n.do(t, func() error { return b.Publish(net2, ownerD, []Mapping{mp("tcp", "", 9090, "10.42.0.3", 90)}) })
				if !errors.As(err, &ce) {
					t.Errorf("Publish after damage: %v", err)
				}
			}
			// A DEL whose lock directory (and so index) is unusable still
			// removes the rules, here the network's last attachment's,
			// with the rule set; its claim left in the index is stale,
			// and the next ADD of its port drops it.
			bad := filepath.Join(t.TempDir(), "file")
			must(os.WriteFile(bad, nil, 0o600))
			teardown, err := NewPorts(backend, WithLockDir(filepath.Join(bad, "locks")), WithBestEffortLock())
			must(err)
			must(n.do(t, func() error { return teardown.Unpublish(net1.Name, ownerB) }))
			rules := n.ruleset(t)
			if strings.Contains(rules, "idx1") || strings.Contains(rules, iptPortsChain(net1.Name)) {
				t.Errorf("net1's rules left after its last Unpublish:\n%s", rules)
			}
			if got, err := os.ReadFile(claim); err != nil || !strings.Contains(string(got), "bbb/eth0") {
				t.Errorf("ownerB's claim should be left over: %q %v", got, err)
			}
			must(n.do(t, func() error { return b.Publish(net2, ownerD, []Mapping{mp("tcp", "", 9090, "10.42.0.3", 90)}) }))
			if got, err := os.ReadFile(claim); err != nil || strings.Contains(string(got), "bbb/eth0") || !strings.Contains(string(got), "ddd/eth0") {
				t.Errorf("claim of 9090/tcp after ownerD's Publish: %q %v", got, err)
			}
			must(n.do(t, func() error { return b.Retain(net2.Name, nil) }))
			if l := list(); len(l) != 0 {
				t.Errorf("after Retain of net2: %v", l)
			}
			if rules := n.ruleset(t); strings.Contains(rules, "idx2") || strings.Contains(rules, iptPortsChain(net2.Name)) {
				t.Errorf("net2's rules left after Retain:\n%s", rules)
			}
			if entries, _ := os.ReadDir(filepath.Join(index, "owners")); len(entries) != 0 {
				t.Errorf("records left: %v", entries)
			}
			if entries, _ := os.ReadDir(filepath.Join(index, "claims")); len(entries) != 0 {
				t.Errorf("claims left: %v", entries)
			}
		})
	}
}
