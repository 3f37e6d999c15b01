package l2

import (
	"fmt"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
)

// The reference bridge plugin (containernetworking/plugins v1.9.1) keeps its
// MAC spoof checks in table "bridge nat". Per attachment, with id
// "<containerID>-<ifname>", it makes a rule in the base chain PREROUTING
//
//	iifname "<host veth>" jump cni-br-iface-<id> comment "macspoofchk-<id>"
//
// a chain cni-br-iface-<id> holding a jump to cni-br-iface-<id>-mac, and
// that chain, which returns for the container's MAC and drops the rest. The
// table and PREROUTING are shared and outlive the last attachment. A node
// switched in place from the reference still holds these for the
// attachments the reference made; they name no network.
const (
	refSpoofTable         = "nat"
	refSpoofBaseChain     = "PREROUTING"
	refSpoofChainPrefix   = "cni-br-iface-"
	refSpoofMacSuffix     = "-mac"
	refSpoofCommentPrefix = "macspoofchk-"
)

// refSpoofID is the reference's name for an attachment in its chain names
// and rule comments.
func refSpoofID(containerID, ifname string) string {
	return containerID + "-" + ifname
}

// refSpoofObjects is what the kernel holds of the reference's spoof check
// of one attachment: the PREROUTING rules that jump to its chain and the
// chains (its own, then the -mac one) that exist.
type refSpoofObjects struct {
	jumps  []*nftables.Rule
	chains []*nftables.Chain
}

func (o refSpoofObjects) empty() bool { return len(o.jumps) == 0 && len(o.chains) == 0 }

// queueDelete queues the removal of the jumps first, then of the chains:
// the kernel refuses to remove a chain that a rule still jumps to, and
// removing the attachment's chain drops its jump to the -mac chain.
func (o refSpoofObjects) queueDelete(conn *nftables.Conn) {
	for _, r := range o.jumps {
		_ = conn.DelRule(r) // fails only for handle 0, which refJumpsTo leaves out
	}
	for _, c := range o.chains {
		conn.DelChain(c)
	}
}

// refSpoofChains picks the chains of the reference's spoof check of id out
// of a listing of the bridge family's chains.
func refSpoofChains(chains []*nftables.Chain, id string) []*nftables.Chain {
	var out []*nftables.Chain
	name := refSpoofChainPrefix + id
	for _, n := range []string{name, name + refSpoofMacSuffix} {
		if c := findChain(chains, refSpoofTable, n); c != nil {
			out = append(out, c)
		}
	}
	return out
}

// findRefSpoof finds the reference's spoof check of id. chains is the
// listing the caller already made: when none of the reference's chains for
// id is in it, nothing more is asked of the kernel; otherwise PREROUTING's
// rules are listed (one round trip) for the jumps to them.
func findRefSpoof(conn *nftables.Conn, chains []*nftables.Chain, id string) (refSpoofObjects, error) {
	o := refSpoofObjects{chains: refSpoofChains(chains, id)}
	target := refSpoofChainPrefix + id
	base := findChain(chains, refSpoofTable, refSpoofBaseChain)
	// A jump needs the chain it targets: without that chain there is none.
	if base == nil || findChain(chains, refSpoofTable, target) == nil {
		return o, nil
	}
	rules, err := conn.GetRules(base.Table, base)
	if err != nil {
		return o, fmt.Errorf("list rules of chain %s in table bridge %s: %w", refSpoofBaseChain, refSpoofTable, err)
	}
	o.jumps = refJumpsTo(rules, target)
	return o, nil
}

// refJumpsTo returns the rules whose verdict jumps (or goes) to chain
// target, whatever else they match.
func refJumpsTo(rules []*nftables.Rule, target string) []*nftables.Rule {
	var out []*nftables.Rule
	for _, r := range rules {
		if t, ok := ruleJumpTarget(r); ok && t == target && r.Handle != 0 {
			out = append(out, r)
		}
	}
	return out
}

// ruleJumpTarget returns the chain a rule's verdict jumps or goes to.
func ruleJumpTarget(r *nftables.Rule) (string, bool) {
	for _, e := range r.Exprs {
		if v, ok := e.(*expr.Verdict); ok && (v.Kind == expr.VerdictJump || v.Kind == expr.VerdictGoto) && v.Chain != "" {
			return v.Chain, true
		}
	}
	return "", false
}

// TeardownMacSpoofCheckWithReference removes the MAC spoof check of the
// given attachment, as TeardownMacSpoofCheck does, and with it the
// reference plugin's spoof check of the same container ID and interface
// name, for a node switched in place from the reference: in table
// "bridge nat", the PREROUTING rules that jump to cni-br-iface-<id>, then
// that chain and cni-br-iface-<id>-mac, in the same batch as our rule. Table
// nat, PREROUTING and everything else in them stay, as the reference leaves
// them. When the listing of chains that our teardown makes anyway shows none
// of the reference's chains for the attachment, this costs nothing more;
// otherwise one more listing (PREROUTING's rules).
//
// err is about our own rule. leftover, when not nil, says that the
// reference's objects could not be removed although ours were: the
// reference plugin only prints such a failure, and so should the caller.
func TeardownMacSpoofCheckWithReference(network, containerID, ifname string) (leftover, err error) {
	want := Attachment{Network: network, ContainerID: containerID, IfName: ifname}
	id := refSpoofID(containerID, ifname)
	var refErr error
	calls, refCall := 0, 0
	err = teardownSpoofRules(func(conn *nftables.Conn, s *spoofState) error {
		calls++
		if err := s.deleteRulesOf(conn, want); err != nil {
			return err
		}
		// Once only: should the batch with the reference's objects fail, the
		// next attempt goes without them, so that they cannot keep our rule
		// in place.
		if calls > 1 {
			return nil
		}
		ref, err := findRefSpoof(conn, s.chains, id)
		if err != nil {
			refErr = err
			return nil
		}
		if !ref.empty() {
			ref.queueDelete(conn)
			refCall = calls
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("tear down MAC spoof check for container %s interface %s (network %s): %w", containerID, ifname, network, err)
	}
	if refCall != 0 && calls > refCall {
		// That batch failed and ours went alone: the reference's objects
		// once more on their own, in case the failure was a race.
		refErr = removeRefSpoof(id)
	}
	if refErr != nil {
		return refSpoofLeftover(id, refErr), nil
	}
	return nil, nil
}

// removeRefSpoof removes the reference's spoof check of id in a batch of
// its own.
func removeRefSpoof(id string) error {
	conn, err := nftables.New()
	if err != nil {
		return fmt.Errorf("open nftables netlink: %w", err)
	}
	chains, err := conn.ListChainsOfTableFamily(nftables.TableFamilyBridge)
	if err != nil {
		return fmt.Errorf("list nftables bridge chains: %w", err)
	}
	ref, err := findRefSpoof(conn, chains, id)
	if err != nil || ref.empty() {
		return err
	}
	ref.queueDelete(conn)
	return conn.Flush()
}

func refSpoofLeftover(id string, err error) error {
	return fmt.Errorf("reference plugin's MAC spoof check left in table bridge %s (chains %s%s and %s%s%s, and their jumps in %s): %w",
		refSpoofTable, refSpoofChainPrefix, id, refSpoofChainPrefix, id, refSpoofMacSuffix, refSpoofBaseChain, err)
}
