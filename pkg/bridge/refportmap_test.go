package bridge

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/containernetworking/cni/pkg/skel"
)

// refPortmapConf is a network with host-local ranges; extra adds keys.
func refPortmapConf(extra string) []byte {
	return []byte(`{"cniVersion":"1.1.0","name":"net1","type":"bridge","bridge":"cni0","isGateway":true,"ipMasq":true,` +
		`"ipam":{"type":"host-local","ranges":[[{"subnet":"10.1.0.0/24"}],[{"subnet":"fd01::/64"}]]}` + extra + `}`)
}

// DEL removes the reference portmap's rules of the attachment only with the
// portMappings capability in its configuration and only when netlink shows
// portmap's rules on the node: a plain DEL does not even look.
func TestDelReferencePortmap(t *testing.T) {
	for _, c := range []struct {
		name       string
		extra      string
		seen       bool
		wantLooks  int
		wantRemove bool
	}{
		{"without the capability", ``, true, 0, false},
		{"capability, no portmap rules", `,"capabilities":{"portMappings":true}`, false, 1, false},
		{"capability, portmap rules", `,"capabilities":{"portMappings":true}`, true, 1, true},
		{"capability and mappings, portmap rules", `,"capabilities":{"portMappings":true},"runtimeConfig":{"portMappings":[{"hostPort":8080,"containerPort":80}]}`, true, 1, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			n := newFakeNode(testNetns)
			fp := n.deps.Ports.(*fakePorts)
			fp.refSeen = c.seen
			if err := n.deps.Del(testArgs(refPortmapConf(c.extra), "c1")); err != nil {
				t.Fatalf("DEL: %v", err)
			}
			if fp.refSeens != c.wantLooks {
				t.Errorf("DEL looked for portmap's rules %d times, want %d", fp.refSeens, c.wantLooks)
			}
			if !c.wantRemove {
				if len(fp.refRemoved) > 0 {
					t.Errorf("DEL removed portmap's rules: %+v", fp.refRemoved)
				}
				return
			}
			if len(fp.refRemoved) != 1 {
				t.Fatalf("DEL removals of portmap's rules: %+v, want one", fp.refRemoved)
			}
			sel := fp.refRemoved[0]
			want := []netip.Prefix{netip.MustParsePrefix("10.1.0.0/24"), netip.MustParsePrefix("fd01::/64")}
			if sel.Network != "net1" || sel.ContainerID != "c1" || sel.Keep != nil || len(sel.Subnets) != 2 || sel.Subnets[0] != want[0] || sel.Subnets[1] != want[1] {
				t.Errorf("DEL chose %+v, want network net1, container c1, subnets %v", sel, want)
			}
		})
	}
}

// GC removes the reference portmap's rules of the network's containers not
// valid, whether or not its configuration declares the capability; without
// subnets, so that its nftables rules, which name no network, stay (another
// network's, in an overlapping subnet, would look gone).
func TestGCReferencePortmap(t *testing.T) {
	for _, extra := range []string{``, `,"capabilities":{"portMappings":true}`} {
		n := newFakeNode(testNetns)
		fp := n.deps.Ports.(*fakePorts)
		conf := refPortmapConf(extra + `,"cni.dev/valid-attachments":[{"containerID":"c2","ifname":"eth0"}]`)
		if err := n.deps.GC(&skel.CmdArgs{Path: "/opt/cni/bin", StdinData: conf}); err != nil {
			t.Fatalf("GC: %v", err)
		}
		if len(fp.refRemoved) != 1 {
			t.Fatalf("GC (%q) removals of portmap's rules: %+v, want one", extra, fp.refRemoved)
		}
		sel := fp.refRemoved[0]
		if sel.Network != "net1" || sel.ContainerID != "" || !sel.Keep["c2"] || len(sel.Keep) != 1 || len(sel.Subnets) != 0 {
			t.Errorf("GC (%q) chose %+v, want network net1 keeping c2", extra, sel)
		}
	}
	// Without addresses (no IPAM), no portmap ever published for it.
	n := newFakeNode(testNetns)
	fp := n.deps.Ports.(*fakePorts)
	conf := strings.Replace(string(refPortmapConf(`,"cni.dev/valid-attachments":[]`)), `"isGateway":true,"ipMasq":true,`, ``, 1)
	conf = conf[:strings.Index(conf, `"ipam"`)] + `"ipam":{}` + conf[strings.Index(conf, `,"cni.dev`):]
	if err := n.deps.GC(&skel.CmdArgs{Path: "/opt/cni/bin", StdinData: []byte(conf)}); err != nil {
		t.Fatalf("GC without IPAM: %v", err)
	}
	if len(fp.refRemoved) != 0 {
		t.Errorf("GC of a network without IPAM removed portmap's rules: %+v", fp.refRemoved)
	}
}
