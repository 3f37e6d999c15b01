package integration

import (
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// newFirewallNet is an isoNet (ipMasq, default route) followed by the
// reference firewall plugin with the given keys, as podman's CNI networks
// chain it.
func newFirewallNet(t testing.TB, n *Node, backend, ref, subnet string, firewall map[string]any) *isoNet {
	t.Helper()
	fw := map[string]any{"type": "firewall"}
	for k, v := range firewall {
		fw[k] = v
	}
	m := newMasqNet(t, n, masqNetConf{backend: backend, subnets: []string{subnet}, name: "fw-" + uniq(),
		chain: []any{fw}, refDir: ref})
	return &isoNet{masqNet: m, gateway: strings.TrimSuffix(subnet, "0/24") + "1"}
}

// requireRefFirewall returns the reference plugins' directory, or skips.
func requireRefFirewall(t *testing.T) string {
	t.Helper()
	requireRoot(t)
	ref := refBinDir(t)
	if _, err := exec.LookPath(filepath.Join(ref, "firewall")); err != nil {
		t.Skipf("reference firewall not built in %s (make reference)", ref)
	}
	return ref
}

// TestChainedFirewall: the reference firewall plugin chained after our
// bridge keeps its guarantees as after the reference bridge, also for a
// network made after the plugin's jumps exist in filter FORWARD (our
// forwarding accepts used to go first, above them): ingressPolicy
// "same-bridge" keeps the networks apart, and a drop an administrator puts
// in CNI-ADMIN (the plugin's place for overrides) applies.
func TestChainedFirewall(t *testing.T) {
	ref := requireRefFirewall(t)
	eachBackendUplink(t, func(t *testing.T, backend string, node *Node, remote *Netns) {
		remotePort := masqPeerServer(t, remote)
		policy := map[string]any{"ingressPolicy": "same-bridge"}
		a := newFirewallNet(t, node, backend, ref, "10.33.1.0/24", policy)
		b := newFirewallNet(t, node, backend, ref, "10.33.2.0/24", policy)
		a1, b1 := a.attach(t, "a1"), b.attach(t, "b1")
		isoTCPBlocked(t, a1.ns, b1.ip, b1.port, "same-bridge A to B")
		isoTCPBlocked(t, b1.ns, a1.ip, a1.port, "same-bridge B to A")
		isoReach(t, b1.ns, uplinkRemote4, remotePort, "B to the remote")
		node.MustRun(t, "iptables", "-A", "CNI-ADMIN", "-d", uplinkRemote4, "-j", "DROP")
		isoTCPBlocked(t, b1.ns, uplinkRemote4, remotePort, "B to the remote, dropped in CNI-ADMIN")
	})
}
