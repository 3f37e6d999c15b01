package l2

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"github.com/google/nftables/userdata"
	"github.com/vishvananda/netlink"
)

// parseRefJump recognises the PREROUTING rule the reference makes for an
// attachment, and nothing else: exactly "iifname <name> jump
// cni-br-iface-<id>" with the comment "macspoofchk-<id>", the name exact
// (not a wildcard). It returns the id and the interface name.
func parseRefJump(r *nftables.Rule) (id, iifname string, ok bool) {
	comment, ok := userdata.GetString(r.UserData, userdata.TypeComment)
	if !ok {
		return "", "", false
	}
	id, ok = strings.CutPrefix(comment, refSpoofCommentPrefix)
	if !ok || id == "" || len(r.Exprs) != 3 {
		return "", "", false
	}
	meta, ok1 := r.Exprs[0].(*expr.Meta)
	cmp, ok2 := r.Exprs[1].(*expr.Cmp)
	verdict, ok3 := r.Exprs[2].(*expr.Verdict)
	if !ok1 || !ok2 || !ok3 ||
		meta.Key != expr.MetaKeyIIFNAME || meta.SourceRegister || cmp.Op != expr.CmpOpEq || cmp.Register != meta.Register ||
		verdict.Kind != expr.VerdictJump || verdict.Chain != refSpoofChainPrefix+id {
		return "", "", false
	}
	// nft stores an exact name NUL-padded, a wildcard's prefix without a NUL.
	name, _, exact := bytes.Cut(cmp.Data, []byte{0})
	if !exact || len(name) == 0 {
		return "", "", false
	}
	return id, string(name), true
}

// planDeadRefSpoof decides what garbage collection removes of the
// reference's spoof checks: the reference's PREROUTING rules (rules) whose
// interface no longer exists (linkGone), and the chains of an id once no
// other PREROUTING rule jumps to them. chains is the bridge family's
// listing. Chains that no PREROUTING rule jumps to stay: the reference's
// ADD makes its chains in one batch and its jump in the next.
func planDeadRefSpoof(chains []*nftables.Chain, rules []*nftables.Rule, linkGone func(string) bool) (delRules []*nftables.Rule, delChains []*nftables.Chain, ids []string) {
	kept := map[string]bool{}
	dead := map[string]bool{}
	for _, r := range rules {
		target, jumps := ruleJumpTarget(r)
		if !jumps {
			continue
		}
		id, iifname, ok := parseRefJump(r)
		if !ok || r.Handle == 0 || !linkGone(iifname) {
			kept[target] = true
			continue
		}
		delRules = append(delRules, r)
		if !dead[id] {
			dead[id] = true
			ids = append(ids, id)
		}
	}
	for _, id := range ids {
		if !kept[refSpoofChainPrefix+id] {
			delChains = append(delChains, refSpoofChains(chains, id)...)
		}
	}
	return delRules, delChains, ids
}

// RemoveDeadReferenceSpoofChecks removes the reference plugin's MAC spoof
// checks whose host veth no longer exists in the current network namespace,
// for garbage collection on a node switched in place from the reference.
// Their names carry no network, so GC cannot tell whose they are by the
// valid attachments; but the jump in PREROUTING matches the host veth by
// name, and once that veth is gone the attachment is gone too, and the jump
// would only catch a new interface given the same name. The jumps go, and
// the attachment's two chains with them unless some other PREROUTING rule
// still jumps there; chains that nothing jumps to stay (see
// planDeadRefSpoof). It returns the reference ids ("<containerID>-<ifname>")
// whose checks it removed. With no reference chain in table bridge nat it
// costs one listing.
func RemoveDeadReferenceSpoofChecks() ([]string, error) {
	var ids []string
	var err error
	// A failed batch is retried on a fresh reading (another invocation may
	// have removed some of it meanwhile); the last try removes the jumps
	// first, then each check's chains on their own, should something else
	// still refer to some of them: the jumps are what could catch a new
	// interface, the chains are inert without them.
	for attempt := range flushAttempts + 1 {
		withChains := attempt < flushAttempts
		var chainsLeft bool
		ids, chainsLeft, err = removeDeadRefSpoof(withChains)
		if err == nil {
			if chainsLeft {
				err = fmt.Errorf("their jumps are gone, but some of their chains stay (something else refers to them)")
				break
			}
			return ids, nil
		}
	}
	if len(ids) == 0 {
		return nil, fmt.Errorf("remove the reference plugin's stale MAC spoof checks: %w", err)
	}
	return ids, fmt.Errorf("remove the reference plugin's stale MAC spoof checks %s: %w", strings.Join(ids, ", "), err)
}

// removeDeadRefSpoof is one reading and one batch of
// RemoveDeadReferenceSpoofChecks; chainsLeft says that withChains was
// false and some chains would have gone.
func removeDeadRefSpoof(withChains bool) (ids []string, chainsLeft bool, err error) {
	conn, err := nftables.New()
	if err != nil {
		return nil, false, fmt.Errorf("open nftables netlink: %w", err)
	}
	chains, err := conn.ListChainsOfTableFamily(nftables.TableFamilyBridge)
	if err != nil {
		return nil, false, fmt.Errorf("list nftables bridge chains: %w", err)
	}
	base := findChain(chains, refSpoofTable, refSpoofBaseChain)
	if base == nil || !hasRefSpoofChain(chains) {
		return nil, false, nil
	}
	rules, err := conn.GetRules(base.Table, base)
	if err != nil {
		return nil, false, fmt.Errorf("list rules of chain %s in table bridge %s: %w", refSpoofBaseChain, refSpoofTable, err)
	}
	delRules, delChains, ids := planDeadRefSpoof(chains, rules, linkGone)
	if len(delRules) == 0 {
		return nil, false, nil
	}
	o := refSpoofObjects{jumps: delRules}
	if withChains {
		o.chains = delChains
	}
	o.queueDelete(conn)
	if err := conn.Flush(); err != nil {
		return ids, false, err
	}
	if withChains {
		return ids, false, nil
	}
	// The jumps are gone; the chains go one check at a time, so that a
	// chain something else still refers to keeps only its own check's.
	for _, id := range ids {
		var batch refSpoofObjects
		for _, c := range refSpoofChains(chains, id) {
			if slices.Contains(delChains, c) {
				batch.chains = append(batch.chains, c)
			}
		}
		if batch.empty() {
			continue
		}
		batch.queueDelete(conn)
		if conn.Flush() != nil {
			chainsLeft = true
		}
	}
	return ids, chainsLeft, nil
}

// hasRefSpoofChain reports whether a listing holds any of the reference's
// per-attachment spoof check chains.
func hasRefSpoofChain(chains []*nftables.Chain) bool {
	for _, c := range chains {
		if c.Table != nil && c.Table.Name == refSpoofTable && strings.HasPrefix(c.Name, refSpoofChainPrefix) {
			return true
		}
	}
	return false
}

// linkGone reports whether no link of that name exists; on any other error
// it says the link may exist.
func linkGone(name string) bool {
	_, err := linkByName(name)
	var notFound netlink.LinkNotFoundError
	return errors.As(err, &notFound)
}
