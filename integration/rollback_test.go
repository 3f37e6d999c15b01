package integration

import (
	"path/filepath"
	"strings"
	"testing"
)

// TestRollbackToReference switches a node back to the REFERENCE plugins
// while containers that flatcni attached (masquerade, published ports,
// isolation, MAC spoof checks) are running, as README's "Switching back to
// the reference plugins" describes. The reference's CHECK and DEL work on
// flatcni's attachments and its ADD beside them; flatcni's rules stay (the
// reference does not know them), and scripts/remove-rules.sh, which refuses
// while a container flatcni attached is left, then removes them: a port
// that was published for a container the reference deleted no longer
// reaches the container the reference gave its address to, route_localnet
// is off again, and the reference's own rules and masquerade are intact.
func TestRollbackToReference(t *testing.T) {
	ref := refBinDir(t)
	script, err := filepath.Abs("../scripts/remove-rules.sh")
	if err != nil {
		t.Fatal(err)
	}
	eachBackendUplink(t, func(t *testing.T, backend string, node *Node, remote *Netns) {
		port := masqPeerServer(t, remote)
		// iptables-nft's FORWARD chains exist (Docker's would), so that the
		// nftables backend puts its accepts there too.
		node.MustRun(t, "iptables", "-P", "FORWARD", "ACCEPT")
		node.MustRun(t, "ip6tables", "-P", "FORWARD", "ACCEPT")
		ours := newPortsNet(t, node, portsNetConf{backend: backend, subnets: masqSubnets,
			extra: map[string]any{"isolation": "isolated", "macspoofchk": true}})
		var olds []*Netns
		for i, hostPort := range []int{8080, 8081} {
			c := NewNetns(t, "old")
			portsServe(t, c, "old"+string(rune('0'+i)), 80)
			ours.add(t, portsRT(c, portMap{HostPort: hostPort, ContainerPort: 80, Protocol: "tcp"}))
			olds = append(olds, c)
		}
		first := portsRT(olds[0], portMap{HostPort: 8080, ContainerPort: 80, Protocol: "tcp"})

		// The binaries are swapped: the same configuration, run by the reference.
		refNet := *ours
		refNet.binDir = ref
		if err := refNet.check(t, first); err != nil {
			t.Errorf("reference CHECK of a container flatcni attached: %v", err)
		}
		if out, err := node.Run("bash", script); err == nil {
			t.Errorf("remove-rules.sh ran while containers flatcni attached are left:\n%s", out)
		}
		for i, c := range olds {
			refNet.del(t, portsRT(c, portMap{HostPort: 8080 + i, ContainerPort: 80, Protocol: "tcp"}))
		}
		if got := leaseFiles(t, filepath.Join(node.LeaseDir(), ours.name)); len(got) != 0 {
			t.Errorf("leases after the reference's DELs: %v", got)
		}
		// A new container gets the first one's address.
		c := NewNetns(t, "new")
		portsServe(t, c, "new", 80)
		rt := portsRT(c)
		rt.Args = [][2]string{{"IgnoreUnknown", "1"}, {"IP", "10.22.0.2"}}
		if _, err := refNet.tryAdd(t, rt); err != nil {
			t.Fatalf("reference ADD beside flatcni's state: %v", err)
		}
		t.Cleanup(func() { _ = refNet.tryDel(t, rt) })

		if out, err := node.Run("bash", script); err != nil {
			t.Fatalf("remove-rules.sh: %v\n%s", err, out)
		}
		dump := masqFirewallDump(t, node.Netns)
		// The reference's rules name its container, whose ID may hold
		// "flatcni" (the test namespaces' prefix).
		for _, s := range []string{"flatcni", "FLATCNI"} {
			if strings.Contains(strings.ReplaceAll(dump, rt.ContainerID, "<reference's container>"), s) {
				t.Errorf("the node's firewall still mentions %q after remove-rules.sh:\n%s", s, dump)
			}
		}
		if !strings.Contains(dump, rt.ContainerID) {
			t.Errorf("remove-rules.sh removed the reference's rules of %s:\n%s", rt.ContainerID, dump)
		}
		if got := strings.TrimSpace(node.MustRun(t, "sysctl", "-n", "net.ipv4.conf."+ours.bridge+".route_localnet")); got != "0" {
			t.Errorf("route_localnet on %s after remove-rules.sh: %s, want 0", ours.bridge, got)
		}
		if got, err := portsDial(t, remote, "tcp", uplinkNode4, 8080, 0); err == nil {
			t.Errorf("host port 8080, published for a container deleted since, reaches %q", got)
		}
		masqExpectPeer(t, c, uplinkRemote4, port, uplinkNode4, "the reference's container, masqueraded by the reference's rules")
		if err := refNet.tryDel(t, rt); err != nil {
			t.Errorf("reference DEL: %v", err)
		}
	})
}

// TestRemoveRulesWithoutPorts: scripts/remove-rules.sh on a node whose
// networks published no port (masquerade and isolation only, the common
// case), beside rules of others whose comments merely resemble ours (a
// word "flatcni", our comment quoted inside theirs), and an nftables
// table of another family whose name starts like ours. The script exits
// 0, removes every rule set of ours, in either backend, and leaves the
// others' rules as they were.
func TestRemoveRulesWithoutPorts(t *testing.T) {
	requireRoot(t)
	script, err := filepath.Abs("../scripts/remove-rules.sh")
	if err != nil {
		t.Fatal(err)
	}
	theirs := []string{
		`flatcni is the tool we use`,
		`see --comment flatcni net=x cfg=1`,
		`quoted "flatcni net=y" inside`,
	}
	for _, backend := range []string{"iptables", "nftables"} {
		t.Run(backend, func(t *testing.T) {
			node := NewNode(t)
			node.MustRun(t, "iptables", "-P", "FORWARD", "ACCEPT")
			node.MustRun(t, "ip6tables", "-P", "FORWARD", "ACCEPT")
			for _, cmd := range []string{"iptables", "ip6tables"} {
				for _, c := range theirs {
					node.MustRun(t, cmd, "-A", "FORWARD", "-m", "comment", "--comment", c, "-j", "ACCEPT")
					node.MustRun(t, cmd, "-t", "nat", "-A", "POSTROUTING", "-m", "comment", "--comment", c, "-j", "RETURN")
				}
			}
			node.MustRun(t, "nft", "add", "table", "ip", "flatcni-theirs")
			net := newMasqNet(t, node, masqNetConf{backend: backend, subnets: masqSubnets, extra: map[string]any{"isolation": "isolated"}})
			c, rt := masqContainer(t, "c")
			net.add(t, "", rt)
			// Deleted by the reference (its DEL removes the container's
			// interface, and with it our host veth).
			c.MustRun(t, "ip", "link", "del", "eth0")
			before := masqFirewallDump(t, node.Netns)
			if !strings.Contains(before, "flatcni net="+net.name) {
				t.Fatalf("no rules of ours before remove-rules.sh:\n%s", before)
			}

			if out, err := node.Run("bash", script); err != nil {
				t.Fatalf("remove-rules.sh: %v\n%s", err, out)
			}
			dump := masqFirewallDump(t, node.Netns)
			for _, s := range []string{net.name, "FLATCNI", "flatcni_isolation", "flatcni-" + net.name} {
				if strings.Contains(dump, s) {
					t.Errorf("the node's firewall still holds %q after remove-rules.sh:\n%s", s, dump)
				}
			}
			for _, save := range []string{"iptables-save", "ip6tables-save"} {
				out := node.MustRun(t, save)
				for _, c := range theirs {
					quoted := strings.ReplaceAll(c, `"`, `\"`)
					if n := strings.Count(out, `--comment "`+quoted+`"`); n != 2 {
						t.Errorf("%s: %d rules commented %q after remove-rules.sh, want the 2 made:\n%s", save, n, c, out)
					}
				}
			}
			if !strings.Contains(dump, "table ip flatcni-theirs") {
				t.Errorf("remove-rules.sh deleted table ip flatcni-theirs:\n%s", dump)
			}
		})
	}
}

// TestRemoveRulesKeepsReferencePortmapLocalnet: after a rollback the
// network's configuration chains the reference portmap (the reference
// bridge ignores portMappings), and a container the reference attached
// publishes a port on the bridge where flatcni published before. Once
// flatcni's containers are gone, remove-rules.sh removes our rules but
// leaves route_localnet on that bridge: the reference portmap turned it on
// for its own mappings, which are reached at 127.0.0.1 through it.
func TestRemoveRulesKeepsReferencePortmapLocalnet(t *testing.T) {
	requireRoot(t)
	ref := refBinDir(t)
	script, err := filepath.Abs("../scripts/remove-rules.sh")
	if err != nil {
		t.Fatal(err)
	}
	for _, backend := range []string{"iptables", "nftables"} {
		t.Run(backend, func(t *testing.T) {
			node := NewNode(t)
			ours := newPortsNet(t, node, portsNetConf{backend: backend, subnets: masqSubnets})
			old := NewNetns(t, "old")
			ours.add(t, portsRT(old, portMap{HostPort: 8080, ContainerPort: 80, Protocol: "tcp"}))
			// The binaries are swapped; the reference's DEL of the old
			// container takes its interface (and our host veth) away.
			old.MustRun(t, "ip", "link", "del", "eth0")
			refNet := newPortsNet(t, node, portsNetConf{backend: backend, subnets: masqSubnets, chainRef: true, refDir: ref,
				name: ours.name, bridge: ours.bridge})
			refNet.binDir = ref
			c := NewNetns(t, "new")
			portsServe(t, c, "new", 80)
			refNet.add(t, portsRT(c, portMap{HostPort: 8090, ContainerPort: 80, Protocol: "tcp"}))
			portsExpect(t, node.Netns, "tcp", "127.0.0.1", 8090, "new", "", "the reference's mapping from the node's 127.0.0.1")

			if out, err := node.Run("bash", script); err != nil {
				t.Fatalf("remove-rules.sh: %v\n%s", err, out)
			}
			if dump := masqFirewallDump(t, node.Netns); strings.Contains(dump, "flatcni-ports net=") {
				t.Errorf("our ports rules left after remove-rules.sh:\n%s", dump)
			}
			if got := strings.TrimSpace(node.MustRun(t, "sysctl", "-n", "net.ipv4.conf."+ours.bridge+".route_localnet")); got != "1" {
				t.Errorf("route_localnet on %s after remove-rules.sh: %s; the reference portmap publishes there, want 1", ours.bridge, got)
			}
			portsExpect(t, node.Netns, "tcp", "127.0.0.1", 8090, "new", "", "the reference's mapping from the node's 127.0.0.1, after remove-rules.sh")
		})
	}
}
