package integration

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Two networks naming one bridge: the last DEL of one removes its rules,
// marker and lock file while the other's container is on the bridge (its
// host-local holds no address of it any more); the other's stay. Each
// backend.
func TestLastDelOfNetworkSharingBridge(t *testing.T) {
	for _, backend := range []string{"iptables", "nftables"} {
		t.Run(backend, func(t *testing.T) {
			n := NewNode(t)
			br := "shbr" + uniq()[:6]
			id := uniq()[:6]
			conf := func(name, subnet, extra string) []byte {
				return []byte(fmt.Sprintf(`{"cniVersion":"1.1.0","name":%q,"type":"bridge","bridge":%q,"ipMasq":true,"ipMasqBackend":%q%s,
					"ipam":{"type":"host-local","dataDir":%q,"ranges":[[{"subnet":%q}]]}}`, name, br, backend, extra, n.LeaseDir(), subnet))
			}
			netA, netB := "sha"+id, "shb"+id
			confA, confB := conf(netA, "10.96.0.0/24", `,"isolation":"strict"`), conf(netB, "10.97.0.0/24", "")
			removeNetworkFilesAtEnd(t, netA, netB)
			ca, cb := NewNetns(t, "sha"), NewNetns(t, "shb")
			if out, err := n.Exec(t, "bridge", "ADD", "ctr-a", ca.Path, "eth0", confA); err != nil {
				t.Fatalf("ADD a: %v\n%s", err, out)
			}
			if out, err := n.Exec(t, "bridge", "ADD", "ctr-b", cb.Path, "eth0", confB); err != nil {
				t.Fatalf("ADD b: %v\n%s", err, out)
			}
			rules := func(name string) int {
				nft, _ := n.Run("nft", "list", "ruleset")
				ipt, _ := n.Run("iptables-save")
				return strings.Count(nft+ipt, name)
			}
			if rules(netA) == 0 || rules(netB) == 0 {
				t.Fatalf("rules after the ADDs: %s %d, %s %d", netA, rules(netA), netB, rules(netB))
			}
			if out, err := n.Exec(t, "bridge", "DEL", "ctr-a", ca.Path, "eth0", confA); err != nil {
				t.Fatalf("DEL a: %v\n%s", err, out)
			}
			if c := rules(netA); c != 0 {
				t.Errorf("%d mentions of %s in the rules after its last DEL, beside %s's container", c, netA, netB)
			}
			for _, f := range []string{"net-" + netA + ".lock", "net-" + netA + ".rules"} {
				if _, err := os.Lstat(filepath.Join("/run/flatcni", f)); err == nil {
					t.Errorf("/run/flatcni/%s left after the network's last DEL", f)
				}
			}
			if rules(netB) == 0 {
				t.Errorf("%s's rules went with %s's last DEL", netB, netA)
			}
			if out, err := n.Exec(t, "bridge", "DEL", "ctr-b", cb.Path, "eth0", confB); err != nil {
				t.Fatalf("DEL b: %v\n%s", err, out)
			}
			if c := rules(netB); c != 0 {
				t.Errorf("%d mentions of %s in the rules after its last DEL", c, netB)
			}
		})
	}
}

// removeNetworkFilesAtEnd removes the networks' marker and lock file from
// /run/flatcni when the test ends (their last DEL does, unless the test
// failed before it).
func removeNetworkFilesAtEnd(t *testing.T, names ...string) {
	t.Cleanup(func() {
		for _, name := range names {
			for _, f := range []string{"net-" + name + ".lock", "net-" + name + ".rules", "net-" + name + ".ports"} {
				_ = os.Remove(filepath.Join("/run/flatcni", f))
			}
		}
	})
}
