package integration

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/containernetworking/cni/libcni"
)

// conflictSetup makes two port-publishing networks on node and a container
// of the first holding 8080/tcp.
func conflictSetup(t *testing.T, backend string, node *Node) (net, other *portsNet, holderRT *libcni.RuntimeConf) {
	net = newPortsNet(t, node, portsNetConf{backend: backend, subnets: portsSubnets})
	other = newPortsNet(t, node, portsNetConf{backend: backend, subnets: portsSubnets2})
	holder := NewNetns(t, "holder")
	holderRT = portsRT(holder, portMap{HostPort: 8080, ContainerPort: 80, Protocol: "tcp"})
	net.add(t, holderRT)
	return net, other, holderRT
}

// TestPortsConflict: a host port published by a container of one network
// fails the ADD of a container of another network (and of the same network
// with a host address, the first one holding the wildcard), with an error
// naming the port and the holder, before the node changes; another
// protocol on the same port is free.
func TestPortsConflict(t *testing.T) {
	eachBackendUplink(t, func(t *testing.T, backend string, node *Node, _ *Netns) {
		net, other, holderRT := conflictSetup(t, backend, node)

		for _, c := range []struct {
			net *portsNet
			pm  portMap
		}{
			{other, portMap{HostPort: 8080, ContainerPort: 81, Protocol: "tcp"}},
			{net, portMap{HostPort: 8080, ContainerPort: 81, Protocol: "tcp", HostIP: uplinkNode4}},
		} {
			ns := NewNetns(t, "second")
			rt := portsRT(ns, c.pm)
			_, err := c.net.tryAdd(t, rt)
			if err == nil {
				t.Errorf("ADD of %+v to %s succeeded; want a conflict with %s", c.pm, c.net.name, holderRT.ContainerID)
				_ = c.net.tryDel(t, rt)
				continue
			}
			fresh := "" // a bridge the failed ADD must not have made
			if c.net == other {
				fresh = other.bridge
			}
			refusedForConflict(t, node, ns, rt, err, fresh, "8080", holderRT.ContainerID, net.name)
		}
		udp := NewNetns(t, "udp")
		other.add(t, portsRT(udp, portMap{HostPort: 8080, ContainerPort: 80, Protocol: "udp"}))
	})
}

// TestPortsUDPReplaced: a remote keeps sending from one source port to a
// published UDP port; when the container is replaced by another publishing
// the same host port, the remote's packets reach the new container (the
// stale conntrack entries are flushed on DEL and on ADD), also when the
// remote sent while nothing was published.
func TestPortsUDPReplaced(t *testing.T) {
	eachBackendUplink(t, func(t *testing.T, backend string, node *Node, remote *Netns) {
		net := newPortsNet(t, node, portsNetConf{backend: backend, subnets: portsSubnets})
		pm := portMap{HostPort: 5300, ContainerPort: 53, Protocol: "udp"}
		first := NewNetns(t, "first")
		portsServe(t, first, "first", 53)
		firstRT := portsRT(first, pm)
		net.add(t, firstRT)
		const src = 40053
		if got, err := portsDial(t, remote, "udp", uplinkNode4, 5300, src); err != nil || !strings.HasPrefix(got, "first ") {
			t.Fatalf("remote to the first container: %q, %v", got, err)
		}
		net.del(t, firstRT)
		// Nothing is published: this leaves an unreplied entry.
		_, _ = portsDial(t, remote, "udp", uplinkNode4, 5300, src)

		second := NewNetns(t, "second")
		portsServe(t, second, "second", 53)
		net.add(t, portsRT(second, pm))
		if got, err := portsDial(t, remote, "udp", uplinkNode4, 5300, src); err != nil || !strings.HasPrefix(got, "second ") {
			t.Errorf("remote to the replacing container from the same source port: %q, %v; want second", got, err)
		}
	})
}

// TestPortsRuleCount: the node's rule set for 2 mappings and for 200 (over
// two containers) has the same chains; with nftables also the same rules
// (the mappings are map elements), with iptables one rule more per mapping
// and family.
func TestPortsRuleCount(t *testing.T) {
	eachBackendUplink(t, func(t *testing.T, backend string, node *Node, remote *Netns) {
		net := newPortsNet(t, node, portsNetConf{backend: backend, subnets: portsSubnets})
		a := NewNetns(t, "a")
		portsServe(t, a, "a", 80)
		aRT := portsRT(a, portMap{HostPort: 9000, ContainerPort: 80, Protocol: "tcp"}, portMap{HostPort: 9000, ContainerPort: 80, Protocol: "udp"})
		net.add(t, aRT)
		rules2, chains2 := portsRuleSummary(t, node.Netns)
		ipt2 := portsIPTRules(t, node.Netns)

		b := NewNetns(t, "b")
		portsServe(t, b, "b", 80)
		var many []portMap
		for i := range 99 {
			many = append(many, portMap{HostPort: 9001 + i, ContainerPort: 80, Protocol: "tcp"}, portMap{HostPort: 9001 + i, ContainerPort: 80, Protocol: "udp"})
		}
		bRT := portsRT(b, many...)
		net.add(t, bRT)
		rules200, chains200 := portsRuleSummary(t, node.Netns)
		ipt200 := portsIPTRules(t, node.Netns)
		t.Logf("%s: 2 mappings: %d rules, %d chains; 200 mappings: %d rules, %d chains", backend, rules2, chains2, rules200, chains200)
		if chains200 != chains2 {
			t.Errorf("chains: %d with 2 mappings, %d with 200", chains2, chains200)
		}
		if backend == "nftables" && rules200 != rules2 {
			t.Errorf("rules: %d with 2 mappings, %d with 200", rules2, rules200)
		}
		if backend == "iptables" && ipt200-ipt2 != 198*2 {
			t.Errorf("iptables rules: %d with 2 mappings, %d with 200: want one more per mapping and family (+%d)", ipt2, ipt200, 198*2)
		}
		portsExpect(t, remote, "tcp", uplinkNode4, 9099, "b", uplinkRemote4, "the 99th port of b")
		portsExpect(t, remote, "udp", uplinkNode6, 9000, "a", uplinkRemote6, "a's UDP port over IPv6")
		// The second publishing ADD found the iptables fixed rules in
		// place and wrote their stamp line; the last DEL leaves nothing
		// of the network in /run/flatcni.
		stamps := "/run/flatcni/net-" + net.name + ".ports"
		if _, err := os.Lstat(stamps); backend == "iptables" && err != nil {
			t.Errorf("no stamp line of the fixed rules after the second publishing ADD: %v", err)
		}
		net.del(t, aRT)
		net.del(t, bRT)
		if left, _ := filepath.Glob("/run/flatcni/net-" + net.name + ".*"); len(left) != 0 {
			t.Errorf("left in /run/flatcni after the network's last DEL: %v", left)
		}
	})
}

// portsIPTRules counts the "-A" lines of iptables-save and ip6tables-save.
func portsIPTRules(t testing.TB, n *Netns) int {
	t.Helper()
	count := 0
	for _, cmd := range []string{"iptables-save", "ip6tables-save"} {
		count += strings.Count(n.MustRun(t, cmd), "\n-A ")
	}
	return count
}

// TestPortsChainedReference: a conflist of our bridge without the
// portMappings capability followed by the reference portmap keeps working
// as it does with the reference bridge: the reference publishes the port,
// our bridge publishes nothing (no double DNAT), and DEL leaves nothing of
// either.
func TestPortsChainedReference(t *testing.T) {
	requireRoot(t)
	ref := refBinDir(t)
	if _, err := exec.LookPath(ref + "/portmap"); err != nil {
		t.Skipf("reference portmap not built in %s (make reference)", ref)
	}
	eachBackendUplink(t, func(t *testing.T, backend string, node *Node, remote *Netns) {
		net := newPortsNet(t, node, portsNetConf{backend: backend, subnets: portsSubnets, chainRef: true, refDir: ref})
		web := NewNetns(t, "web")
		portsServe(t, web, "web", 80)
		rt := portsRT(web, portMap{HostPort: 8080, ContainerPort: 80, Protocol: "tcp"}, portMap{HostPort: 8080, ContainerPort: 80, Protocol: "udp"})
		net.add(t, rt)
		dump := masqFirewallDump(t, node.Netns)
		for _, s := range []string{"flatcni_ports", "FLATCNIP", "flatcni-ports net="} {
			if strings.Contains(dump, s) {
				t.Errorf("our bridge published ports without the capability (%q):\n%s", s, dump)
			}
		}
		if !strings.Contains(dump, rt.ContainerID) {
			t.Errorf("the reference portmap left no rule naming %s:\n%s", rt.ContainerID, dump)
		}
		for _, proto := range []string{"tcp", "udp"} {
			portsExpect(t, remote, proto, uplinkNode4, 8080, "web", "", "remote through the reference portmap, IPv4")
			portsExpect(t, remote, proto, uplinkNode6, 8080, "web", "", "remote through the reference portmap, IPv6")
		}
		net.del(t, rt)
		if dump := masqFirewallDump(t, node.Netns); strings.Contains(dump, rt.ContainerID) {
			t.Errorf("rules naming %s remain after DEL:\n%s", rt.ContainerID, dump)
		}
	})
}

// TestPortsInvalid: invalid mappings fail ADD with an error naming the
// entry, before the node changes.
func TestPortsInvalid(t *testing.T) {
	requireRoot(t)
	node := NewNode(t)
	net := newPortsNet(t, node, portsNetConf{backend: "nftables", subnets: portsSubnets})
	for _, c := range []struct {
		pm   portMap
		want string
	}{
		{portMap{HostPort: 70000, ContainerPort: 80, Protocol: "tcp"}, "runtimeConfig.portMappings[0].hostPort"},
		{portMap{HostPort: 80, ContainerPort: 0, Protocol: "tcp"}, "runtimeConfig.portMappings[0].containerPort"},
		{portMap{HostPort: 80, ContainerPort: 80, Protocol: "icmp"}, "runtimeConfig.portMappings[0].protocol"},
		{portMap{HostPort: 80, ContainerPort: 80, Protocol: "tcp", HostIP: "10.0.0.300"}, "runtimeConfig.portMappings[0].hostIP"},
		{portMap{HostPort: 80, ContainerPort: 80, Protocol: "tcp", HostIP: "::1"}, "runtimeConfig.portMappings[0].hostIP"},
	} {
		ns := NewNetns(t, "bad")
		_, err := net.tryAdd(t, portsRT(ns, c.pm))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("ADD with %+v: %v; want an error naming %s", c.pm, err, c.want)
		}
	}
	if out, err := node.Run("ip", "link", "show", net.bridge); err == nil {
		t.Errorf("invalid ADDs made the bridge: %s", out)
	}
	if leases := leaseFiles(t, node.LeaseDir()); len(leases) > 0 {
		t.Errorf("invalid ADDs left leases: %v", leases)
	}
}

// TestPortsConflictIndexRebuilt: the conflict check reads the node's claims
// index (next to the lock files); with the index directory removed, or the
// held port's claim file made garbage, the ADD still fails with the
// conflict (the index is rebuilt from the rules), and once the holder is
// deleted the port is free again.
func TestPortsConflictIndexRebuilt(t *testing.T) {
	eachBackendUplink(t, func(t *testing.T, backend string, node *Node, _ *Netns) {
		net, other, holderRT := conflictSetup(t, backend, node)
		// The node's index is the one with a record directory of net.
		found, _ := filepath.Glob(filepath.Join("/run/flatcni", "ports-index.*", "owners", net.name))
		if len(found) != 1 {
			t.Fatalf("index of the node: %v, want one", found)
		}
		index := filepath.Dir(filepath.Dir(found[0]))
		claim := filepath.Join(index, "claims", "ip4-tcp-8080")
		if b, err := os.ReadFile(claim); err != nil || !strings.Contains(string(b), holderRT.ContainerID) {
			t.Fatalf("claim file of 8080/tcp: %q, %v", b, err)
		}
		second := NewNetns(t, "second")
		rt := portsRT(second, portMap{HostPort: 8080, ContainerPort: 81, Protocol: "tcp"})
		for _, c := range []struct {
			name   string
			damage func() error
		}{
			{"index removed", func() error { return os.RemoveAll(index) }},
			{"claim file garbage", func() error { return os.WriteFile(claim, []byte("\x00garbage\n"), 0o600) }},
		} {
			if err := c.damage(); err != nil {
				t.Fatal(err)
			}
			_, err := other.tryAdd(t, rt)
			if err == nil {
				t.Errorf("%s: ADD of 8080/tcp to %s succeeded; want a conflict with %s", c.name, other.name, holderRT.ContainerID)
				_ = other.tryDel(t, rt)
				continue
			}
			if !strings.Contains(err.Error(), "8080") || !strings.Contains(err.Error(), holderRT.ContainerID) {
				t.Errorf("%s: error %q does not name the port and its holder", c.name, err)
			}
		}
		net.del(t, holderRT)
		if _, err := os.Stat(claim); !os.IsNotExist(err) {
			t.Errorf("claim file of 8080/tcp after the holder's DEL: %v", err)
		}
		other.add(t, rt)
	})
}
