package integration

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

// A mapping without hostIP applies only to the families the container has
// an address in, also with an IPAM plugin whose families are not known
// before it answers: a port published on IPv6 only by another network does
// not stop an IPv4-only container of such a network from publishing it on
// IPv4 (the check before IPAM took both families). Each backend.
func TestPortsWildcardWithUnknownFamilies(t *testing.T) {
	for _, backend := range []string{"iptables", "nftables"} {
		t.Run(backend, func(t *testing.T) {
			n := NewNode(t)
			ipamDir := t.TempDir()
			script := `#!/bin/sh
case "$CNI_COMMAND" in
ADD) cat >/dev/null; echo '{"cniVersion":"1.1.0","ips":[{"address":"10.98.5.2/24","gateway":"10.98.5.1"}]}';;
VERSION) echo '{"cniVersion":"1.1.0","supportedVersions":["1.0.0","1.1.0"]}';;
*) cat >/dev/null;;
esac
`
			if err := os.WriteFile(filepath.Join(ipamDir, "fixedipam"), []byte(script), 0o755); err != nil {
				t.Fatal(err)
			}
			id := uniq()[:6]
			p1, p2 := "pw1"+id, "pw2"+id
			removeNetworkFilesAtEnd(t, p1, p2)
			conf1 := []byte(fmt.Sprintf(`{"cniVersion":"1.1.0","name":%q,"type":"bridge","bridge":"pwa%s","isGateway":true,"ipMasqBackend":%q,
				"capabilities":{"portMappings":true},"runtimeConfig":{"portMappings":[{"hostPort":8080,"containerPort":80,"hostIP":"::"}]},
				"ipam":{"type":"host-local","dataDir":%q,"ranges":[[{"subnet":"10.98.1.0/24"}],[{"subnet":"fd98:1::/64"}]]}}`, p1, id, backend, n.LeaseDir()))
			conf2 := []byte(fmt.Sprintf(`{"cniVersion":"1.1.0","name":%q,"type":"bridge","bridge":"pwb%s","isGateway":true,"ipMasqBackend":%q,
				"capabilities":{"portMappings":true},"runtimeConfig":{"portMappings":[{"hostPort":8080,"containerPort":80}]},
				"ipam":{"type":"fixedipam"}}`, p2, id, backend))
			a, b := NewNetns(t, "pwa"), NewNetns(t, "pwb")
			env := "CNI_PATH=" + n.Bin + ":" + ipamDir
			if out, err := n.Exec(t, "bridge", "ADD", "ctr-a", a.Path, "eth0", conf1, env); err != nil {
				t.Fatalf("ADD on IPv6 only: %v\n%s", err, out)
			}
			if out, err := n.Exec(t, "bridge", "ADD", "ctr-b", b.Path, "eth0", conf2, env); err != nil {
				t.Errorf("ADD of an IPv4-only container publishing the port IPv6 holds: %v\n%s", err, out)
			}
			for _, c := range []struct {
				id   string
				ns   *Netns
				conf []byte
			}{{"ctr-b", b, conf2}, {"ctr-a", a, conf1}} {
				if out, err := n.Exec(t, "bridge", "DEL", c.id, c.ns.Path, "eth0", c.conf, env); err != nil {
					t.Errorf("DEL %s: %v\n%s", c.id, err, out)
				}
			}
		})
	}
}
