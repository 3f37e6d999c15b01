package integration

import "testing"

// DEL of one container keeps the network's masquerade rules while another
// container is attached, however soon after that one's ADD it comes.
func TestBridgeDelKeepsRulesOfOtherContainers(t *testing.T) {
	n := NewNode(t)
	plugin := dualStackPlugin("br"+uniq(), n.LeaseDir())
	plugin["ipMasq"] = true
	plugin["ipMasqBackend"] = "nftables"
	b := newBridgeNet(t, n, plugin)

	a, rtA := container(t, "a")
	_, rtB := container(t, "b")
	b.MustAdd(t, rtA)
	t.Cleanup(func() { _ = b.Del(t, rtA) })
	withA := n.Snapshot(t)
	// A's interface down (the container may do that): its port loses carrier.
	a.MustRun(t, "ip", "link", "set", "eth0", "down")
	b.MustAdd(t, rtB)
	b.MustDel(t, rtB)
	after := n.Snapshot(t)
	if after.NFT != withA.NFT {
		t.Errorf("nftables rules changed by DEL of another container:\nbefore:\n%s\nafter:\n%s", withA.NFT, after.NFT)
	}
}
