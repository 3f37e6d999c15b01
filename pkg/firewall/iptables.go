package firewall

import (
	"errors"
	"fmt"
	"slices"

	"github.com/coreos/go-iptables/iptables"
)

// iptablesLockName is the lock file serialising rule updates.
const iptablesLockName = "iptables.lock"

// iptablesBackend keeps the rules with the iptables and ip6tables commands.
type iptablesBackend struct {
	opts options
}

func newIPTables(o options) *iptablesBackend {
	return &iptablesBackend{opts: o}
}

// Name implements Backend.
func (b *iptablesBackend) Name() string { return IPTablesName }

func iptCommand(f family) string {
	if f == ipv6 {
		return "ip6tables"
	}
	return "iptables"
}

// handle returns the command wrapper of family f.
func (b *iptablesBackend) handle(f family) (*iptables.IPTables, error) {
	proto := iptables.ProtocolIPv4
	if f == ipv6 {
		proto = iptables.ProtocolIPv6
	}
	ipt, err := iptables.NewWithProtocol(proto)
	if err != nil {
		return nil, fmt.Errorf("locate %s: %w", iptCommand(f), err)
	}
	return ipt, nil
}

// Ensure implements Backend.
func (b *iptablesBackend) Ensure(n Network) error {
	_, err := b.Sync(n)
	return err
}

// Sync implements Backend.
func (b *iptablesBackend) Sync(n Network) (changed bool, err error) {
	n, err = n.normalize()
	if err != nil {
		return false, err
	}
	if !n.active() {
		return false, b.Remove(n.Name)
	}
	if n, err = n.withNodeBridges(false); err != nil {
		return false, err
	}
	fp := n.fingerprint()
	checked, ok := b.opts.stamped(networkMarker(n.Name), IPTablesName, fp)
	if ok {
		return false, nil // nothing changed since found in place (stamp.go)
	}
	upToDate, emptied := iptablesNFTUpToDate(n, fp)
	if upToDate {
		b.opts.recordStamp(IPTablesName, fp, checked)
		return false, nil // no process started
	}
	if done, err := b.ensureFresh(n, fp); done || err != nil {
		return done, err // one iptables-restore per family
	}
	handles := map[family]*iptables.IPTables{}
	for _, f := range n.ruleFamilies() {
		if handles[f], err = b.handle(f); err != nil {
			if len(n.subnets(f)) == 0 {
				// Isolation only: a node without the command forwards nothing of that family through it.
				delete(handles, f)
				continue
			}
			return false, fmt.Errorf("network %q: %w", n.Name, err)
		}
	}
	// A chain netlink showed emptied is refilled by syncFamily (its
	// jumps, which upToDate looks at, are there).
	if !emptied && b.upToDate(n, fp, handles) {
		return false, nil
	}

	lock, err := b.opts.lock(iptablesLockName)
	if err != nil {
		return false, fmt.Errorf("network %q: %w", n.Name, err)
	}
	defer lock.unlock()
	// Another process may have written the rules while we waited.
	if !emptied && b.upToDate(n, fp, handles) {
		return false, nil
	}
	for _, f := range allFamilies() {
		ipt, used := handles[f]
		if !used {
			// The family is not (or no longer) used: drop leftovers.
			if ipt, err = b.handle(f); err != nil {
				continue // nothing can have been written without the command
			}
		}
		if err := b.syncFamily(ipt, n, f, fp, used); err != nil {
			return true, fmt.Errorf("network %q: %s: %w", n.Name, iptCommand(f), err)
		}
	}
	return true, nil
}

// upToDate reports whether every jump of the current configuration exists.
// Since a jump is written after its chain is filled, this proves the chains
// were complete (a chain emptied since is seen through netlink only,
// iptablesNFTUpToDate; on iptables-legacy, not at all). This is Ensure's hot path: one `iptables -C` per part.
func (b *iptablesBackend) upToDate(n Network, fp string, handles map[family]*iptables.IPTables) bool {
	jump := iptJumpRule(n.Name, fp)
	for f, ipt := range handles {
		for _, p := range iptParts(n, f) {
			ok, err := ipt.Exists(p.table, p.hook, jump...)
			if err != nil || !ok {
				return false
			}
		}
		if n.Isolation == IsolationIsolated {
			// Its member rule in the shared stage.
			if ok, err := ipt.Exists(mangleTable, iptIsolatedChain, iptIsolatedMember(n)...); err != nil || !ok {
				return false
			}
		}
	}
	return true
}

// syncFamily writes the network's enabled parts for family f and removes the
// disabled ones (all of them when the family is not used).
func (b *iptablesBackend) syncFamily(ipt *iptables.IPTables, n Network, f family, fp string, used bool) error {
	chain := iptChainName(n.Name)
	want := map[string]iptPart{}
	if used {
		for _, p := range iptParts(n, f) {
			want[p.table] = p
		}
	}
	var nn *Network
	if used {
		nn = &n
	}
	return syncIPTIsolation(ipt, n.Name, nn, func() error {
		for _, table := range iptTables {
			p, ok := want[table]
			if !ok {
				if err := removeIPTPart(ipt, table, hookOf(table), chain); err != nil {
					return err
				}
				continue
			}
			if err := writeIPTPart(ipt, p, chain, iptJumpRule(n.Name, fp)); err != nil {
				return err
			}
		}
		return nil
	})
}

// writeIPTPart (re)fills the network's chain in p.table, then makes sure the
// jump to it exists and that no jump of an older configuration remains.
//
// upToDate takes a chain whose jump exists for complete, so a chain is never
// flushed while the jump of the current configuration leads to it: a process
// killed between the flush and the last append would leave the network
// without those rules for as long as it has containers. A chain that already
// holds exactly its rules (the part of a network another part of which was
// missing, after a crash in Remove, say) is left alone; one that does not
// loses its jump first, and gets it back once it is full.
func writeIPTPart(ipt *iptables.IPTables, p iptPart, chain string, jump []string) error {
	exists, err := ipt.Exists(p.table, p.hook, jump...)
	if err != nil && !isNotExist(err) { // no chain yet: no jump either
		return fmt.Errorf("check jump from %s to %s in table %s: %w", p.hook, chain, p.table, err)
	}
	if exists && !chainHolds(ipt, p.table, chain, p.rules) {
		if err := deleteJumps(ipt, p.table, p.hook, chain, nil); err != nil {
			return err
		}
		exists = false
	}
	if !exists {
		// A chain that holds its rules already (only the fingerprint
		// changed: another part of the network did) is not flushed:
		// the old jump still leads to it, and its drops would be gone
		// until the appends end.
		if !chainHolds(ipt, p.table, chain, p.rules) {
			if err := ipt.ClearChain(p.table, chain); err != nil {
				return fmt.Errorf("create or flush chain %s in table %s: %w", chain, p.table, err)
			}
			for _, r := range p.rules {
				if err := ipt.Append(p.table, chain, r...); err != nil {
					return fmt.Errorf("add rule to chain %s in table %s: %w", chain, p.table, err)
				}
			}
		}
		if p.insert {
			err = ipt.Insert(p.table, p.hook, iptInsertPos(ipt, p.table, p.hook), jump...)
		} else {
			err = ipt.Append(p.table, p.hook, jump...)
		}
		if err != nil {
			return fmt.Errorf("add jump from %s to %s in table %s: %w", p.hook, chain, p.table, err)
		}
	}
	return deleteJumps(ipt, p.table, p.hook, chain, jump)
}

// chainHolds reports whether chain in table exists and holds rules and no
// other rule.
func chainHolds(ipt *iptables.IPTables, table, chain string, rules [][]string) bool {
	lines, err := ipt.List(table, chain)
	if err != nil || len(lines) != len(rules)+1 { // "-N <chain>", then its rules
		return false
	}
	for _, r := range rules {
		if ok, err := ipt.Exists(table, chain, r...); err != nil || !ok {
			return false
		}
	}
	return true
}

// deleteJumps deletes the rules in hook that jump to chain, except keep.
func deleteJumps(ipt *iptables.IPTables, table, hook, chain string, keep []string) error {
	lines, err := ipt.List(table, hook)
	if err != nil {
		return fmt.Errorf("list chain %s in table %s: %w", hook, table, err)
	}
	for _, line := range lines {
		c, spec, ok := splitRuleLine(line)
		if !ok || c != hook || specValue(spec, "-j") != chain {
			continue
		}
		if keep != nil && specValue(spec, "--comment") == specValue(keep, "--comment") {
			continue
		}
		if err := ipt.Delete(table, hook, spec...); err != nil && !isNotExist(err) {
			return fmt.Errorf("delete jump from %s to %s in table %s: %w", hook, chain, table, err)
		}
	}
	return nil
}

// removeIPTPart deletes the jumps to chain from hook and the chain itself.
func removeIPTPart(ipt *iptables.IPTables, table, hook, chain string) error {
	if err := deleteJumps(ipt, table, hook, chain, nil); err != nil {
		return err
	}
	if err := ipt.ClearAndDeleteChain(table, chain); err != nil && !isNotExist(err) {
		return fmt.Errorf("delete chain %s in table %s: %w", chain, table, err)
	}
	return nil
}

// isNotExist reports whether err says that a rule or chain does not exist.
func isNotExist(err error) bool {
	var e *iptables.Error
	return errors.As(err, &e) && e.IsNotExist()
}

// Remove implements Backend. On iptables-nft it deletes through netlink,
// in one transaction (removeIPTNFT); the commands do it on iptables-legacy.
func (b *iptablesBackend) Remove(name string) error {
	if holdsNone(name) {
		return nil
	}
	lock, err := b.opts.lock(iptablesLockName)
	if err != nil {
		return fmt.Errorf("network %q: %w", name, err)
	}
	defer lock.unlock()
	chain := iptChainName(name)
	for _, f := range removeIPTNFT(planIPTNFTRemove(name)) {
		ipt, err := b.handle(f)
		if err != nil {
			continue // nothing can have been written without the command
		}
		err = syncIPTIsolation(ipt, name, nil, func() error {
			for _, table := range iptTables {
				if err := removeIPTPart(ipt, table, hookOf(table), chain); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			return fmt.Errorf("remove network %q: %s: %w", name, iptCommand(f), err)
		}
	}
	return nil
}

// Networks implements Backend. It finds the networks from the comments of
// the jumps and of the rules in FLATCNI- chains (also unreferenced ones).
func (b *iptablesBackend) Networks() ([]string, error) {
	seen := map[string]bool{}
	for _, f := range allFamilies() {
		ipt, err := b.handle(f)
		if err != nil {
			continue
		}
		for _, table := range iptTables {
			if err := collectIPTNetworks(ipt, table, seen); err != nil {
				return nil, fmt.Errorf("list networks: %s: %w", iptCommand(f), err)
			}
		}
		if err := collectIPTIsolated(ipt, seen); err != nil {
			return nil, fmt.Errorf("list networks: %s: %w", iptCommand(f), err)
		}
	}
	return sortedKeys(seen), nil
}

func collectIPTNetworks(ipt *iptables.IPTables, table string, seen map[string]bool) error {
	chains, err := ipt.ListChains(table)
	if err != nil {
		return fmt.Errorf("list chains of table %s: %w", table, err)
	}
	for _, chain := range chains {
		if len(chain) != iptChainMaxLen || chain[:len(iptChainPrefix)] != iptChainPrefix {
			continue
		}
		lines, err := ipt.List(table, chain)
		if err != nil {
			if isNotExist(err) {
				continue
			}
			return fmt.Errorf("list chain %s in table %s: %w", chain, table, err)
		}
		for _, line := range lines {
			if _, spec, ok := splitRuleLine(line); ok {
				if name, ok := parseComment(specValue(spec, "--comment")); ok && iptChainName(name) == chain {
					seen[name] = true
					break
				}
			}
		}
	}
	hook := hookOf(table)
	lines, err := ipt.List(table, hook)
	if err != nil {
		return fmt.Errorf("list chain %s in table %s: %w", hook, table, err)
	}
	for _, line := range lines {
		if _, spec, ok := splitRuleLine(line); ok {
			if name, ok := parseComment(specValue(spec, "--comment")); ok && specValue(spec, "-j") == iptChainName(name) {
				seen[name] = true
			}
		}
	}
	return nil
}

func sortedKeys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// RemoveLegacy implements Backend for the reference's iptables rules: nat
// POSTROUTING jumps to CNI-<hash> chains with the comment
// name: "<network>" id: "<containerID>", and those chains. As Remove, it
// deletes through netlink on iptables-nft, with the commands on
// iptables-legacy.
func (b *iptablesBackend) RemoveLegacy(network string, keep map[string]bool) error {
	return b.removeLegacy(network, staleUnlessKept(keep))
}

// RemoveLegacyOf implements Backend, as RemoveLegacy.
func (b *iptablesBackend) RemoveLegacyOf(network, containerID string) error {
	return b.removeLegacy(network, staleOnly(containerID))
}

func (b *iptablesBackend) removeLegacy(network string, stale legacyStale) error {
	for _, f := range removeIPTNFT(planIPTNFTRemoveLegacy(network, stale)) {
		ipt, err := b.handle(f)
		if err != nil {
			continue
		}
		if err := removeLegacyIPT(ipt, network, stale); err != nil {
			return fmt.Errorf("remove reference masquerade rules of network %q: %s: %w", network, iptCommand(f), err)
		}
	}
	return nil
}

func removeLegacyIPT(ipt *iptables.IPTables, network string, stale legacyStale) error {
	lines, err := ipt.List(natTable, postroutingChain)
	if err != nil {
		return fmt.Errorf("list chain %s in table %s: %w", postroutingChain, natTable, err)
	}
	gone := map[string]bool{}  // chains of gone containers
	inUse := map[string]bool{} // chains still jumped to by other rules
	for _, line := range lines {
		_, spec, ok := splitRuleLine(line)
		target := specValue(spec, "-j")
		if !ok || !isLegacyMasqChain(target) {
			continue
		}
		net, id, ok := parseLegacyComment(specValue(spec, "--comment"))
		if !ok || net != network || !stale(id, false) {
			inUse[target] = true
			continue
		}
		if err := ipt.Delete(natTable, postroutingChain, spec...); err != nil && !isNotExist(err) {
			return fmt.Errorf("delete jump to %s for container %q: %w", target, id, err)
		}
		gone[target] = true
	}

	// Chains whose jump is already gone (e.g. an interrupted DEL).
	chains, err := ipt.ListChains(natTable)
	if err != nil {
		return fmt.Errorf("list chains of table %s: %w", natTable, err)
	}
	for _, chain := range chains {
		if !isLegacyMasqChain(chain) || gone[chain] || inUse[chain] {
			continue
		}
		rules, err := ipt.List(natTable, chain)
		if err != nil {
			if isNotExist(err) {
				continue
			}
			return fmt.Errorf("list chain %s in table %s: %w", chain, natTable, err)
		}
		for _, line := range rules {
			if _, spec, ok := splitRuleLine(line); ok {
				net, id, ok := parseLegacyComment(specValue(spec, "--comment"))
				if ok && net == network && stale(id, false) {
					gone[chain] = true
				}
				break
			}
		}
	}

	for _, chain := range sortedKeys(gone) {
		if inUse[chain] {
			continue
		}
		if err := ipt.ClearAndDeleteChain(natTable, chain); err != nil && !isNotExist(err) {
			return fmt.Errorf("delete chain %s in table %s: %w", chain, natTable, err)
		}
	}
	return nil
}
