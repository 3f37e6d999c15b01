package firewall

import (
	"errors"
	"fmt"
	"os/exec"
	"slices"
	"strconv"
	"strings"

	"github.com/coreos/go-iptables/iptables"
	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"github.com/google/nftables/xt"
)

// iptPorts publishes ports with iptables and ip6tables. Rules are written
// with the commands; they are read (and mappings deleted) through netlink
// when iptables is iptables-nft, which the node shows by holding rules of
// ours in nftables: no process on DEL, and no listing of the whole nat
// table on ADD.
type iptPorts struct {
	opts options
	hs   map[family]*iptables.IPTables
}

// Name implements Ports.
func (b *iptPorts) Name() string { return IPTablesName }

// handle returns the command wrapper of family f (nil when the command is
// missing: nothing can have been written with it).
func (b *iptPorts) handle(f family) *iptables.IPTables {
	if b.hs == nil {
		b.hs = map[family]*iptables.IPTables{}
	}
	if ipt, ok := b.hs[f]; ok {
		return ipt
	}
	ipt, err := (&iptablesBackend{}).handle(f)
	if err != nil {
		ipt = nil
	}
	b.hs[f] = ipt
	return ipt
}

// iptFound is a mapping read back, with its rule when read through netlink.
type iptFound struct {
	Published
	rule *nftables.Rule
}

// Publish implements Ports.
func (b *iptPorts) Publish(n PortNetwork, owner Attachment, maps []Mapping) error {
	// Netlink connections that committed close last, once the lock is
	// free (closing one waits for the kernel's grace period).
	var closeConns []func()
	defer func() {
		for _, c := range closeConns {
			c()
		}
	}()
	l, err := b.opts.lock(portsLockName)
	if err != nil {
		return fmt.Errorf("network %q: %w", n.Name, err)
	}
	defer l.unlock()
	if n, err = checkPublish(n, owner, maps, nil); err != nil {
		return err
	}
	for _, m := range maps {
		if c := portsMappingComment(n.Name, owner, m); len(c) > iptMaxComment {
			return fmt.Errorf("network %q: port mapping %s: network name and container ID too long for an iptables comment (%d characters, at most %d)", n.Name, m.host(), len(c), iptMaxComment)
		}
		if _, err := exec.LookPath(iptCommand(m.family())); err != nil {
			return fmt.Errorf("network %q: port mapping %s: %s not found", n.Name, m.host(), iptCommand(m.family()))
		}
	}
	x, err := lockedIndex(b.publishAt(), n.Name, owner, maps, b.List)
	if err != nil {
		return indexError(n.Name, err)
	}
	defer x.close()
	old, err := x.owned(n.Name, owner)
	if err != nil {
		return fmt.Errorf("network %q: %w", n.Name, err)
	}
	if err := x.claim(n.Name, owner, old, maps); err != nil {
		return fmt.Errorf("network %q: ports index: %w", n.Name, err)
	}
	fp := n.fingerprint()
	done := map[family]bool{}
	for _, m := range maps {
		if f := m.family(); !done[f] {
			done[f] = true
			if err := b.ensureFixed(n, f, fp); err != nil {
				return fmt.Errorf("network %q: %s: %w", n.Name, iptCommand(f), err)
			}
		}
	}
	// The old rules are found by their comment, which holds the owner: a
	// mapping the record has in excess deletes nothing. From here on the
	// commits are of mappings only (ownCommits).
	own := b.opts.ownCommits(n.Name)
	defer own.close()
	closeConn, err := b.deleteOwned(n.Name, owner, old)
	closeConns = append(closeConns, closeConn)
	if err != nil {
		return fmt.Errorf("network %q: %w", n.Name, err)
	}
	chain := iptPortsChain(n.Name)
	for _, f := range allFamilies() {
		var fms []Mapping
		for _, m := range maps {
			if m.family() == f {
				fms = append(fms, m)
			}
		}
		if len(fms) == 0 {
			continue
		}
		done, closeConn, err := iptNFTAppend(f, n.Name, owner, fms)
		closeConns = append(closeConns, closeConn)
		if err == nil && !done {
			rules := make([][]string, len(fms))
			for i, m := range fms {
				rules[i] = iptMappingRule(n.Name, owner, m)
			}
			err = b.appendRules(f, chain, rules)
		}
		if err != nil {
			hosts := make([]string, len(fms))
			for i, m := range fms {
				hosts[i] = m.host()
			}
			return fmt.Errorf("network %q: add mappings %s: %w", n.Name, strings.Join(hosts, ", "), err)
		}
	}
	own.carry()
	x.settle(n.Name, owner, old, maps)
	return flushUDP(append(old, maps...))
}

// ownedFound returns owner's mappings on network as rules to delete by
// their specification.
func ownedFound(network string, owner Attachment, maps []Mapping) []iptFound {
	out := make([]iptFound, len(maps))
	for i, m := range maps {
		out[i] = iptFound{Published: Published{Network: network, Owner: owner, Mapping: m}}
	}
	return out
}

func published(fs []iptFound) []Published {
	out := make([]Published, len(fs))
	for i, f := range fs {
		out[i] = f.Published
	}
	return out
}

// deleteMappings deletes the mappings' rules: by handle through netlink
// when they were read so (one transaction), else with the commands.
func (b *iptPorts) deleteMappings(fs []iptFound) error {
	var c *nftables.Conn
	// The comments deleted through netlink, by network and family, to
	// tell whether a failed Flush committed after all (inChain).
	deleted := map[string]map[family][]string{}
	for _, p := range fs {
		if p.rule == nil {
			ipt := b.handle(p.family())
			if ipt == nil {
				continue
			}
			if err := ipt.Delete(natTable, iptPortsChain(p.Network), iptMappingRule(p.Network, p.Owner, p.Mapping)...); err != nil && !isNotExist(err) {
				return fmt.Errorf("%s: delete mapping %s: %w", iptCommand(p.family()), p.host(), err)
			}
			continue
		}
		if c == nil {
			var err error
			if c, err = iptNFTWriteConn(); err != nil {
				return fmt.Errorf("open nftables netlink connection: %w", err)
			}
			defer func() { _ = c.CloseLasting() }()
		}
		if err := c.DelRule(p.rule); err != nil {
			return fmt.Errorf("delete mapping %s: %w", p.host(), err)
		}
		if deleted[p.Network] == nil {
			deleted[p.Network] = map[family][]string{}
		}
		deleted[p.Network][p.family()] = append(deleted[p.Network][p.family()], xtComment(p.rule))
	}
	if c == nil {
		return nil
	}
	if err := c.Flush(); err != nil {
		for network, byFamily := range deleted {
			if _, none := inChain(byFamily, network); !none {
				return fmt.Errorf("delete mappings through netlink: %w", err)
			}
		}
	}
	return nil
}

// ensureFixed makes the network's chain and fixed rules of family f exist
// with fingerprint fp. The hot path reads one generation number: a stamp
// line (portsStamps, stamp.go) says that they were found in place and
// nothing was committed since but mappings.
// Else each built-in chain that holds some of them is read through netlink
// (iptables-nft): a reload may have flushed any of them.
func (b *iptPorts) ensureFixed(n PortNetwork, f family, fp string) error {
	rules := iptPortsFixed(n, f, fp)
	key := portsStampKey(IPTablesName, f)
	checked, ok := b.opts.stamped(portsStamps(n.Name), key, fp)
	if ok {
		return nil
	}
	if iptNFTFixedInPlace(f, rules, portsFixedComment(n, fp)) {
		b.opts.recordStamp(key, fp, checked)
		return nil
	}
	if iptPortsFresh(f, n.Name) {
		// Nothing of the network there: all in one iptables-restore (a
		// transaction per table, the nat table's jumps last); on
		// failure, the commands below.
		if err := iptRestore(f, iptFreshFixedInput(n.Name, rules, nftForwardInsertPos(f))); err == nil {
			return nil
		}
	}
	ipt := b.handle(f) // starts iptables once (--version): not on the hot path
	if ipt == nil {
		return fmt.Errorf("%s is not usable (its version could not be read)", iptCommand(f))
	}
	// Only what is missing (a reload flushed some of the chains): the
	// others would be there twice.
	var missing []iptFixedRule
	for _, r := range rules {
		if ok, err := ipt.Exists(r.table, r.chain, r.spec...); err != nil || !ok {
			missing = append(missing, r)
		}
	}
	if len(missing) == 0 {
		return nil
	}
	chain := iptPortsChain(n.Name)
	if ok, err := ipt.ChainExists(natTable, chain); err != nil {
		return fmt.Errorf("look for chain %s in table %s: %w", chain, natTable, err)
	} else if !ok {
		if err := ipt.NewChain(natTable, chain); err != nil {
			return fmt.Errorf("create chain %s in table %s: %w", chain, natTable, err)
		}
	}
	for _, r := range missing {
		var err error
		if r.insert {
			err = ipt.Insert(r.table, r.chain, iptInsertPos(ipt, r.table, r.chain), r.spec...)
		} else {
			err = ipt.Append(r.table, r.chain, r.spec...)
		}
		if err != nil {
			return fmt.Errorf("add rule to chain %s in table %s: %w", r.chain, r.table, err)
		}
	}
	// The fixed rules of another configuration go once the new ones are
	// in: the 127.0.0.0/8 drop is there throughout.
	return iptDeleteFixed(ipt, n.Name, portsFixedComment(n, fp), nil)
}

// portsStampKey is the backend that a stamp line of the port rules' fixed
// rules of family f names.
func portsStampKey(backend string, f family) string {
	return backend + "-ports-" + f.String()
}

// iptNFTFixedInPlace reads through netlink (iptables-nft) each built-in
// chain that rules go in and reports whether it holds as many rules
// carrying comment as rules put there; false on any doubt.
func iptNFTFixedInPlace(f family, rules []iptFixedRule, comment string) bool {
	c, err := nftables.New()
	if err != nil {
		return false
	}
	want := map[[2]string]int{}
	for _, r := range rules {
		want[[2]string{r.table, r.chain}]++
	}
	// The PREROUTING jump, written last, first: the rest is not read
	// when it is missing.
	for i := len(rules) - 1; i >= 0; i-- {
		at := [2]string{rules[i].table, rules[i].chain}
		n, ok := want[at]
		if !ok {
			continue
		}
		delete(want, at)
		t := iptNFTTable(f, at[0])
		got, err := c.GetRules(t, &nftables.Chain{Name: at[1], Table: t})
		if err != nil {
			return false
		}
		for _, r := range got {
			if xtComment(r) == comment {
				n--
			}
		}
		if n > 0 {
			return false
		}
	}
	return true
}

func iptNFTTable(f family, table string) *nftables.Table {
	fam := nftables.TableFamilyIPv4
	if f == ipv6 {
		fam = nftables.TableFamilyIPv6
	}
	return &nftables.Table{Name: table, Family: fam}
}

// xtComment returns the comment of an iptables-nft rule ("" if none).
func xtComment(r *nftables.Rule) string {
	for _, e := range r.Exprs {
		if m, ok := e.(*expr.Match); ok && m.Name == "comment" {
			if c, ok := m.Info.(*xt.Comment); ok {
				return string(*c)
			}
		}
	}
	return ""
}

// iptDeleteFixed deletes the network's fixed rules, except those carrying
// the comment keep ("": all). beforeDrop, if not nil, is called once
// before the 127.0.0.0/8 drop is deleted, which comes first: its error
// leaves every rule in place.
func iptDeleteFixed(ipt *iptables.IPTables, network, keep string, beforeDrop func() error) error {
	for _, h := range iptFixedHooks() {
		lines, err := ipt.List(h[0], h[1])
		if err != nil {
			if isNotExist(err) {
				continue
			}
			return fmt.Errorf("list chain %s in table %s: %w", h[1], h[0], err)
		}
		for _, line := range lines {
			_, spec, ok := splitRuleLine(line)
			if !ok {
				continue
			}
			c := specValue(spec, "--comment")
			if net, rest, ok := parsePortsComment(c); !ok || net != network || c == keep || !strings.HasPrefix(rest, "cfg=") {
				continue
			}
			if h[0] == rawTable && beforeDrop != nil {
				if err := beforeDrop(); err != nil {
					return err
				}
				beforeDrop = nil
			}
			if err := ipt.Delete(h[0], h[1], spec...); err != nil && !isNotExist(err) {
				return fmt.Errorf("delete rule from chain %s in table %s: %w", h[1], h[0], err)
			}
		}
	}
	return nil
}

// Holds implements Ports: the network's chain is in iptables-nft's nat
// table of either family.
func (b *iptPorts) Holds(network string) bool {
	c, err := nftables.New()
	if err != nil {
		return false
	}
	chain := iptPortsChain(network)
	for _, f := range allFamilies() {
		if _, err := c.ListChain(iptNFTTable(f, natTable), chain); err == nil {
			return true
		}
	}
	return false
}

// Recorded implements Ports.
func (b *iptPorts) Recorded(network string) bool { return b.indexAt().records(network) }

// Guarding implements Ports: the networks with a fixed rule in
// iptables-nft's IPv4 raw PREROUTING chain (their drop is the only one there).
func (b *iptPorts) Guarding() map[string]string {
	c, err := nftables.New()
	if err != nil {
		return nil
	}
	t := iptNFTTable(ipv4, rawTable)
	rules, err := c.GetRules(t, &nftables.Chain{Name: preroutingChain, Table: t})
	if err != nil {
		return nil
	}
	g := map[string]string{}
	for _, r := range rules {
		if net, rest, ok := parsePortsComment(xtComment(r)); ok {
			if _, br, ok := parseFixed(rest); ok {
				g[net] = br
			}
		}
	}
	return g
}

// Refresh implements Ports: the accepts a DROP policy needs are rules of
// filter FORWARD itself, which a policy set later leaves. A rule set the
// index records that netlink no longer shows (a reload on an iptables-nft
// node took it, its drop with it) is retained as what is left, once, under
// the ports lock: the bridge's route_localnet goes off (unguardGone) and
// the index forgets it. Not where iptables-legacy has tables, whose rules
// netlink does not show (reading them starts processes): the network's
// last DEL, GC or next publishing ADD see to it there.
func (b *iptPorts) Refresh(n PortNetwork) error {
	gone := func() bool {
		return b.Recorded(n.Name) && !b.Holds(n.Name) && !legacyIPTablesIn(ipv4) && !legacyIPTablesIn(ipv6)
	}
	if holdsNone(n.Name) || !gone() {
		return nil
	}
	l, err := b.opts.lock(portsLockName)
	if err != nil {
		return fmt.Errorf("network %q: %w", n.Name, err)
	}
	defer l.unlock()
	if !gone() { // published again meanwhile
		return nil
	}
	return b.retain(n.Name, func(Attachment) bool { return true }, false)
}

// Unpublish implements Ports. The owner's mappings are found in the claims
// index and their rules deleted by handle, found by comment in an
// undecoded dump of the network's chain (iptables-nft), or by their
// specification with the commands; without a usable index, the network's
// chain is listed and decoded. The
// chains and fixed rules go when the index has no attachment of the
// network left.
func (b *iptPorts) Unpublish(network string, owner Attachment) error {
	if holdsNone(network) {
		return nil
	}
	l, err := b.opts.lock(portsLockName)
	if err != nil {
		return fmt.Errorf("network %q: %w", network, err)
	}
	closeConn := func() {}
	defer func() {
		l.unlock()
		closeConn() // after the index update and the unlock (deleteOwned)
	}()
	others := func(a Attachment) bool { return a != owner }
	// The rules carry their owner in the comment: a record's mapping that
	// another owner holds now deletes nothing, no claim check needed.
	return unpublishIndexed(b.indexAt(), network, owner, false,
		func(old []Mapping) (err error) {
			own := b.opts.ownCommits(network)
			defer own.close()
			closeConn, err = b.deleteOwned(network, owner, old)
			if err == nil {
				own.carry()
			}
			return err
		},
		func(last bool) error { return b.retain(network, others, last) })
}

// Retain implements Ports. A family whose chain is left empty loses its
// chain and fixed rules.
func (b *iptPorts) Retain(network string, keep func(Attachment) bool) error {
	if holdsNone(network) {
		return nil
	}
	l, err := b.opts.lock(portsLockName)
	if err != nil {
		return fmt.Errorf("network %q: %w", network, err)
	}
	defer l.unlock()
	return b.retain(network, keep, false)
}

// retain is Retain under the lock; with dropEmpty, every family left
// without mappings loses its chain and fixed rules. The index's records
// of the network are made to match what is kept.
func (b *iptPorts) retain(network string, keep func(Attachment) bool, dropEmpty bool) error {
	found, err := b.list(network)
	if err != nil {
		return fmt.Errorf("network %q: %w", network, err)
	}
	var gone []iptFound
	var keptPs []Published
	kept := map[family]int{}
	emptied := map[family]bool{}
	for _, p := range found {
		if keep != nil && keep(p.Owner) {
			kept[p.family()]++
			keptPs = append(keptPs, p.Published)
			continue
		}
		gone = append(gone, p)
		emptied[p.family()] = true
	}
	if err := b.deleteMappings(gone); err != nil {
		return fmt.Errorf("network %q: %w", network, err)
	}
	chain := iptPortsChain(network)
	unguarded := false // the drop was seen and route_localnet turned off
	for _, f := range allFamilies() {
		// The fixed rules go with the family's last mapping, and all of
		// them when nothing is kept (the network's last DEL, GC).
		if kept[f] > 0 || (!emptied[f] && keep != nil && !dropEmpty) {
			continue
		}
		unguard := func() error { unguarded = true; return b.opts.beforeUnguard(IPTablesName) }
		if done, err := iptNFTDropPorts(f, network, unguard); err != nil {
			return fmt.Errorf("network %q: %s: %w", network, iptCommand(f), err)
		} else if done {
			continue
		}
		ipt := b.handle(f)
		if ipt == nil {
			continue
		}
		if err := iptDeleteFixed(ipt, network, "", unguard); err != nil {
			return fmt.Errorf("network %q: %s: %w", network, iptCommand(f), err)
		}
		if err := ipt.ClearAndDeleteChain(natTable, chain); err != nil && !isNotExist(err) {
			return fmt.Errorf("network %q: %s: delete chain %s: %w", network, iptCommand(f), chain, err)
		}
	}
	if len(keptPs) == 0 && !unguarded {
		// A rule set the index recorded, removed without us, took its
		// drop along (with dropEmpty the index's last record of the
		// network went already, settled by Unpublish).
		var err error
		if dropEmpty {
			err = b.opts.beforeUnguard(IPTablesName)
		} else {
			err = b.opts.unguardGone(b.indexAt(), network, IPTablesName)
		}
		if err != nil {
			return fmt.Errorf("network %q: %w", network, err)
		}
	}
	reconcileIndex(b.indexAt(), network, keptPs)
	return flushUDP(mappingsOf(published(gone)))
}

// Conflict implements Ports.
func (b *iptPorts) Conflict(network string, owner Attachment, maps []Mapping) error {
	return indexConflict(b.publishAt(), network, owner, maps, b.List)
}

// List implements Ports.
func (b *iptPorts) List() ([]Published, error) {
	found, err := b.list("")
	return published(found), err
}

// list reads the mappings of all networks (or of one): through netlink when
// iptables-nft holds port rules of ours (then it holds all of them), else
// with the commands.
func (b *iptPorts) list(network string) ([]iptFound, error) {
	if found, ok := iptNFTList(network); ok {
		return found, nil
	}
	var out []iptFound
	for _, f := range allFamilies() {
		if iptNoPortChains(f) {
			continue // nothing to list: no process
		}
		ipt := b.handle(f)
		if ipt == nil {
			continue
		}
		ps, err := iptCmdList(ipt, f, network)
		if err != nil {
			return nil, err
		}
		for _, p := range ps {
			out = append(out, iptFound{Published: p})
		}
	}
	return out, nil
}

// iptPortsFresh reports whether family f surely holds nothing of network's
// port rules: netlink shows neither its chain in iptables-nft's nat table
// nor a fixed rule of it (iptables-nft-restore commits table by table: a
// first Publish killed after the raw or filter table's COMMIT leaves fixed
// rules without the chain), and the namespace has no iptables-legacy table.
func iptPortsFresh(f family, network string) bool {
	c, err := nftables.New()
	if err != nil {
		return false
	}
	v, ok := readIPTNFTOnly(c, f)
	if !ok || v.chain(natTable, iptPortsChain(network)) != nil {
		return false
	}
	fixed, _, err := v.fixedRules(network)
	return err == nil && len(fixed) == 0
}

// fixedRules returns the fixed rules of network ("": of any network) in
// the built-in chains, and whether the 127.0.0.0/8 drop is among them.
func (v *iptNFTView) fixedRules(network string) (fixed []*nftables.Rule, drop bool, err error) {
	for _, h := range iptFixedHooks() {
		ch := v.chain(h[0], h[1])
		if ch == nil {
			continue
		}
		rules, err := v.rules(ch)
		if err != nil {
			return nil, false, err
		}
		for _, r := range rules {
			if net, rest, ok := parsePortsComment(xtComment(r)); ok && (network == "" || net == network) && strings.HasPrefix(rest, "cfg=") {
				fixed = append(fixed, r)
				drop = drop || h[0] == rawTable
			}
		}
	}
	return fixed, drop, nil
}

// iptFreshFixedInput is the iptables-restore input that writes the
// network's chain and fixed rules: table by table (raw and filter first,
// the nat table with the jumps last), each rule in the order of rules;
// those inserted in filter FORWARD at rule number forwardPos
// (forwardInsertPos).
func iptFreshFixedInput(network string, rules []iptFixedRule, forwardPos int) string {
	var in strings.Builder
	for _, table := range []string{rawTable, filterTable, natTable} {
		var lines []string
		for _, r := range rules {
			if r.table != table {
				continue
			}
			op := []string{"-A", r.chain}
			if r.insert {
				pos := 1
				if r.table == filterTable && r.chain == forwardChain {
					pos = forwardPos
				}
				op = []string{"-I", r.chain, strconv.Itoa(pos)}
			}
			lines = append(lines, restoreLine(append(op, r.spec...)...))
		}
		if len(lines) == 0 && table != natTable {
			continue
		}
		in.WriteString("*" + table + "\n")
		if table == natTable {
			in.WriteString(":" + iptPortsChain(network) + " - [0:0]\n")
		}
		for _, l := range lines {
			in.WriteString(l + "\n")
		}
		in.WriteString("COMMIT\n")
	}
	return in.String()
}

// iptNFTDropPorts deletes the network's fixed rules and chain of family f
// through netlink, in one transaction, on iptables-nft (no iptables-legacy
// table in the namespace), calling beforeDrop first when the 127.0.0.0/8
// drop is among them (its error keeps everything). done is false when the
// commands must do it (legacy tables, a netlink error, a transaction the
// kernel refuses).
func iptNFTDropPorts(f family, network string, beforeDrop func() error) (done bool, err error) {
	c, err := nftables.New(nftables.AsLasting())
	if err != nil {
		return false, nil
	}
	defer func() { _ = c.CloseLasting() }()
	v, ok := readIPTNFTOnly(c, f)
	if !ok {
		return false, nil
	}
	fixed, drop, err := v.fixedRules(network)
	if err != nil {
		return false, nil
	}
	ops := iptNFTOps{rules: fixed}
	if ch := v.chain(natTable, iptPortsChain(network)); ch != nil {
		ops.chains = append(ops.chains, ch)
	}
	if ops.empty() {
		return true, nil
	}
	if drop && beforeDrop != nil {
		if err := beforeDrop(); err != nil {
			return true, err
		}
	}
	return ops.commit(c) == nil, nil
}

// iptNoPortChains reports whether family f surely holds no port rule of
// ours: netlink shows no port chain in iptables-nft's nat table and no
// fixed rule (see iptPortsFresh: they may be there without the chain), and
// the namespace has no iptables-legacy table (legacyIPTablesIn). False on
// any doubt.
func iptNoPortChains(f family) bool {
	c, err := nftables.New()
	if err != nil {
		return false
	}
	v, ok := readIPTNFTOnly(c, f)
	if !ok {
		return false
	}
	for name := range v.chains[natTable] {
		if strings.HasPrefix(name, iptPortsChainPrefix) {
			return false
		}
	}
	fixed, _, err := v.fixedRules("")
	return err == nil && len(fixed) == 0
}

// iptNFTList reads the mappings through netlink. It answers only when a
// built-in nat chain of either family holds a port rule of ours, proof that
// iptables is iptables-nft.
func iptNFTList(network string) ([]iptFound, bool) {
	c, err := nftables.New()
	if err != nil {
		return nil, false
	}
	seen := false
	var out []iptFound
	for _, f := range allFamilies() {
		t := iptNFTTable(f, natTable)
		for _, hook := range []string{preroutingChain, outputChain} {
			rules, err := c.GetRules(t, &nftables.Chain{Name: hook, Table: t})
			if err != nil {
				continue
			}
			for _, r := range rules {
				if strings.HasPrefix(xtComment(r), portsCommentPrefix) {
					seen = true
				}
			}
		}
		chains, err := c.ListChainsOfTableFamily(t.Family)
		if err != nil {
			return nil, false
		}
		for _, ch := range chains {
			if ch.Table == nil || ch.Table.Name != natTable || !strings.HasPrefix(ch.Name, iptPortsChainPrefix) ||
				(network != "" && ch.Name != iptPortsChain(network)) {
				continue
			}
			rules, err := c.GetRules(t, &nftables.Chain{Name: ch.Name, Table: t})
			if err != nil {
				return nil, false
			}
			for _, r := range rules {
				if net, owner, m, ok := parseMappingComment(xtComment(r)); ok && iptPortsChain(net) == ch.Name {
					out = append(out, iptFound{Published: Published{Network: net, Owner: owner, Mapping: m}, rule: r})
				}
			}
		}
	}
	if !seen {
		return nil, false
	}
	sortFound(out)
	return out, true
}

func sortFound(fs []iptFound) {
	slices.SortFunc(fs, func(a, b iptFound) int { return comparePublished(a.Published, b.Published) })
}

// iptCmdList reads the mappings of family f with the iptables command.
func iptCmdList(ipt *iptables.IPTables, f family, network string) ([]Published, error) {
	var chains []string
	if network != "" {
		chains = []string{iptPortsChain(network)}
	} else {
		all, err := ipt.ListChains(natTable)
		if err != nil {
			return nil, fmt.Errorf("%s: list chains of table %s: %w", iptCommand(f), natTable, err)
		}
		for _, c := range all {
			if len(c) == iptChainMaxLen && strings.HasPrefix(c, iptPortsChainPrefix) {
				chains = append(chains, c)
			}
		}
	}
	var out []Published
	for _, chain := range chains {
		lines, err := ipt.List(natTable, chain)
		if err != nil {
			// iptables-nft 1.8.9 calls a missing chain "incompatible".
			if ok, cerr := ipt.ChainExists(natTable, chain); isNotExist(err) || (cerr == nil && !ok) {
				continue
			}
			return nil, fmt.Errorf("%s: list chain %s in table %s: %w", iptCommand(f), chain, natTable, err)
		}
		for _, line := range lines {
			_, spec, ok := splitRuleLine(line)
			if !ok {
				continue
			}
			if net, owner, m, ok := parseMappingComment(specValue(spec, "--comment")); ok && iptPortsChain(net) == chain {
				out = append(out, Published{Network: net, Owner: owner, Mapping: m})
			}
		}
	}
	sortPublished(out)
	return out, nil
}

// appendRules appends rules to chain in the nat table: with one
// iptables-restore, or, where that fails (an iptables-restore older than
// 1.6.2 refuses -w; a restore applies all of its table or nothing), one
// iptables -A each.
func (b *iptPorts) appendRules(f family, chain string, rules [][]string) error {
	err := iptRestoreAppend(f, natTable, chain, rules)
	if err == nil {
		return nil
	}
	ipt := b.handle(f)
	if ipt == nil {
		return err
	}
	for _, r := range rules {
		if aerr := ipt.Append(natTable, chain, r...); aerr != nil {
			return errors.Join(err, aerr)
		}
	}
	return nil
}

// iptRestoreAppend appends rules to chain in table with one run of
// iptables-restore --noflush (ip6tables-restore for IPv6): one process for
// all of an ADD's mappings of the family, where `iptables -A` would start one
// per mapping and the go-iptables handle one more for the version.
func iptRestoreAppend(f family, table, chain string, rules [][]string) error {
	if len(rules) == 0 {
		return nil
	}
	var in strings.Builder
	in.WriteString("*" + table + "\n")
	for _, r := range rules {
		in.WriteString(restoreLine(append([]string{"-A", chain}, r...)...) + "\n")
	}
	in.WriteString("COMMIT\n")
	return iptRestore(f, in.String())
}

// restoreQuote quotes an argument for iptables-restore's line parser: in
// double quotes when it has a space, quote or backslash, with backslashes
// before double quotes and backslashes.
func restoreQuote(s string) string {
	if s != "" && !strings.ContainsAny(s, " \t\"'\\") {
		return s
	}
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(s) + `"`
}

// indexAt is where the backend's claims index lives.
func (b *iptPorts) indexAt() indexAt { return indexAt{lockDir: b.opts.lockDir, backend: IPTablesName} }

// publishAt is indexAt for Publish and Conflict: with the nftables
// backend as a peer, whose claims on the host ports are respected too.
func (b *iptPorts) publishAt() indexAt {
	at := b.indexAt()
	at.peers = []indexPeer{{backend: NFTablesName, list: (&nftPorts{opts: b.opts}).List}}
	return at
}
