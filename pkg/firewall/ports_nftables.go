package firewall

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"
)

// nftPorts publishes ports with nftables, through netlink only.
type nftPorts struct {
	opts options
}

// Name implements Ports.
func (b *nftPorts) Name() string { return NFTablesName }

func (b *nftPorts) lock() (*fileLock, error) { return b.opts.lock(portsLockName) }

// locked takes the ports lock and opens a netlink connection for a change
// of network's; release gives the lock back.
func (b *nftPorts) locked(network string) (c *nftables.Conn, release func(), err error) {
	l, err := b.lock()
	if err != nil {
		return nil, nil, fmt.Errorf("network %q: %w", network, err)
	}
	if c, err = nftables.New(); err != nil {
		l.unlock()
		return nil, nil, fmt.Errorf("network %q: open nftables netlink connection: %w", network, err)
	}
	return c, l.unlock, nil
}

// Publish implements Ports: the elements of owner are replaced in one
// transaction, together with the fixed rules when they are missing or of
// another configuration.
func (b *nftPorts) Publish(n PortNetwork, owner Attachment, maps []Mapping) error {
	c, release, err := b.locked(n.Name)
	if err != nil {
		return err
	}
	defer release()
	if n, err = checkPublish(n, owner, maps, nil); err != nil {
		return err
	}
	x, err := lockedIndex(b.publishAt(), n.Name, owner, maps, func() ([]Published, error) { return nftListPorts(c, "") })
	if err != nil {
		return indexError(n.Name, err)
	}
	defer x.close()
	// The owner's old mappings: those its record and their claims agree on
	// (a key is deleted whoever holds it); when one is gone after all, the
	// transaction fails and the rules say.
	old, err := x.owned(n.Name, owner)
	if err == nil {
		old, err = x.held(n.Name, owner, old)
	}
	if err != nil {
		return fmt.Errorf("network %q: %w", n.Name, err)
	}
	if err := x.claim(n.Name, owner, old, maps); err != nil {
		return fmt.Errorf("network %q: ports index: %w", n.Name, err)
	}
	claimed := old
	own := b.opts.ownCommits(n.Name)
	defer own.close()
	if err := b.replace(c, n, owner, old, maps); err != nil && len(old) > 0 {
		var listed []Published
		if listed, err = nftListPorts(c, n.Name); err == nil {
			old = nil
			for _, p := range listed {
				if p.Owner == owner {
					old = append(old, p.Mapping)
				}
			}
			err = b.replace(c, n, owner, old, maps)
		}
		if err != nil {
			return err
		}
	} else if err != nil {
		return err
	}
	own.carry() // before syncForward, which commits only what it changes
	x.settle(n.Name, owner, append(claimed, old...), maps)
	if err := b.syncForward(c, n.Name, &n); err != nil {
		return fmt.Errorf("network %q: %w", n.Name, err)
	}
	return flushUDP(append(old, maps...))
}

// Refresh implements Ports: the FORWARD accepts of a network whose rule set
// exists.
func (b *nftPorts) Refresh(n PortNetwork) error {
	if holdsNone(n.Name) {
		return nil // nothing published
	}
	n, err := n.normalize() // the subnets in Publish's order: the same fingerprint
	if err != nil {
		return err
	}
	// Most such ADDs are on networks that publish nothing: one lookup,
	// without the lock, tells.
	published := func(c *nftables.Conn) bool {
		t := nftPortsTable(n.Name)
		rules, err := c.GetRules(t, &nftables.Chain{Name: nftPortsPostrouting, Table: t})
		return err == nil && len(rules) > 0
	}
	if c, err := nftables.New(); err != nil {
		return err
	} else if !published(c) && !b.indexAt().records(n.Name) {
		return nil
	}
	c, release, err := b.locked(n.Name)
	if err != nil {
		return err
	}
	defer release()
	if !published(c) {
		// Unpublished meanwhile, or a rule set the index records gone
		// without us (a reload), its drop with it: retained as what is
		// left, it turns the bridge's route_localnet off (unguardGone)
		// and the index forgets it, once.
		if !b.indexAt().records(n.Name) {
			return nil
		}
		return b.retain(c, n.Name, func(Attachment) bool { return true })
	}
	if err := b.syncForward(c, n.Name, &n); err != nil {
		return fmt.Errorf("network %q: %w", n.Name, err)
	}
	return nil
}

// Recorded implements Ports.
func (b *nftPorts) Recorded(network string) bool { return b.indexAt().records(network) }

// Holds implements Ports: the network's table exists.
func (b *nftPorts) Holds(network string) bool {
	c, err := nftables.New()
	if err != nil {
		return false
	}
	_, err = c.ListTableOfFamily(nftPortsTable(network).Name, nftables.TableFamilyINet)
	return err == nil
}

// Guarding implements Ports: the networks whose table has its raw chain's
// drop.
func (b *nftPorts) Guarding() map[string]string {
	c, err := nftables.New()
	if err != nil {
		return nil
	}
	tables, err := c.ListTablesOfFamily(nftables.TableFamilyINet)
	if err != nil {
		return nil
	}
	g := map[string]string{}
	for _, t := range tables {
		network, ok := strings.CutPrefix(t.Name, nftPortsTablePrefix)
		if !ok {
			continue
		}
		rules, _, _ := chainRules(c, t, nftPortsRaw)
		for _, r := range rules {
			if net, rest, ok := parsePortsComment(userDataComment(r.UserData)); ok && net == network {
				if _, br, ok := parseFixed(rest); ok {
					g[net] = br
				}
			}
		}
	}
	return g
}

// replace swaps owner's elements old for maps in one transaction, together
// with the fixed rules when they are missing or of another configuration.
func (b *nftPorts) replace(c *nftables.Conn, n PortNetwork, owner Attachment, old, maps []Mapping) error {
	t := nftPortsTable(n.Name)
	fp := n.fingerprint()
	var sets map[string]*nftables.Set
	var err error
	if nftFixedUpToDate(c, t, portsFixedComment(n, fp)) {
		sets = map[string]*nftables.Set{}
		for _, pm := range portMaps() {
			sets[pm.name] = pm.set(t)
		}
	} else if sets, err = nftWriteFixed(c, n, fp); err != nil {
		return err
	}
	if err := nftSetElements(c, sets, old, owner, c.SetDeleteElements); err != nil {
		return fmt.Errorf("network %q: %w", n.Name, err)
	}
	if err := nftSetElements(c, sets, maps, owner, c.SetAddElements); err != nil {
		return fmt.Errorf("network %q: %w", n.Name, err)
	}
	if err := c.Flush(); err != nil {
		return fmt.Errorf("network %q: publish ports in nftables table inet %s: %w", n.Name, t.Name, err)
	}
	return nil
}

// nftSetElements adds or deletes (op) the mappings' elements.
func nftSetElements(c *nftables.Conn, sets map[string]*nftables.Set, maps []Mapping, owner Attachment, op func(*nftables.Set, []nftables.SetElement) error) error {
	byMap := map[string][]nftables.SetElement{}
	for _, m := range maps {
		pm := mapOf(m)
		byMap[pm.name] = append(byMap[pm.name], element(m, owner))
	}
	for name, elems := range byMap {
		if err := op(sets[name], elems); err != nil {
			return fmt.Errorf("map %s: %w", name, err)
		}
	}
	return nil
}

// nftFixedUpToDate reports whether the table's fixed rules all carry the
// comment want (they are all written in one transaction: checking the
// postrouting chain is enough).
func nftFixedUpToDate(c *nftables.Conn, t *nftables.Table, want string) bool {
	rules, err := c.GetRules(t, &nftables.Chain{Name: nftPortsPostrouting, Table: t})
	if err != nil || len(rules) == 0 {
		return false
	}
	return !slices.ContainsFunc(rules, func(r *nftables.Rule) bool { return userDataComment(r.UserData) != want })
}

// nftWriteFixed queues the table, its maps, chains and fixed rules (chains
// flushed and refilled; maps and their elements kept) on c.
func nftWriteFixed(c *nftables.Conn, n PortNetwork, fp string) (map[string]*nftables.Set, error) {
	t := c.AddTable(nftPortsTable(n.Name))
	sets := map[string]*nftables.Set{}
	for _, pm := range portMaps() {
		s := pm.set(t)
		if err := c.AddSet(s, nil); err != nil {
			return nil, fmt.Errorf("network %q: map %s: %w", n.Name, pm.name, err)
		}
		sets[pm.name] = s
	}
	chain := func(name string, typ nftables.ChainType, hook *nftables.ChainHook, prio *nftables.ChainPriority) *nftables.Chain {
		ch := c.AddChain(&nftables.Chain{Name: name, Table: t, Type: typ, Hooknum: hook, Priority: prio})
		c.FlushChain(ch)
		return ch
	}
	publish := c.AddChain(&nftables.Chain{Name: nftPublishChain, Table: t})
	c.FlushChain(publish)
	pre := chain(nftPortsPrerouting, nftables.ChainTypeNAT, nftables.ChainHookPrerouting, nftables.ChainPriorityNATDest)
	out := chain(nftPortsOutput, nftables.ChainTypeNAT, nftables.ChainHookOutput, nftables.ChainPriorityNATDest)
	post := chain(nftPortsPostrouting, nftables.ChainTypeNAT, nftables.ChainHookPostrouting, nftables.ChainPriorityNATSource)
	raw := chain(nftPortsRaw, nftables.ChainTypeFilter, nftables.ChainHookPrerouting, nftables.ChainPriorityRaw)
	ud := commentUserData(portsFixedComment(n, fp))
	add := func(ch *nftables.Chain, rules ...[]expr.Any) {
		for _, e := range rules {
			c.AddRule(&nftables.Rule{Table: t, Chain: ch, Exprs: e, UserData: ud})
		}
	}
	add(publish, nftPublishRules(sets)...)
	add(pre, nftLocalJump())
	add(out, nftLoopback6Return(), nftLocalJump())
	add(raw, nftLocalnetDrop())
	add(post, nftPortsPostroutingRules(n)...)
	return sets, nil
}

// Unpublish implements Ports. The owner's elements are found in the claims
// index (deleted by key, one transaction); without a usable index, or when
// the transaction fails (an element gone after all), the network's
// elements are listed. The table goes when the index has no attachment of
// the network left.
func (b *nftPorts) Unpublish(network string, owner Attachment) error {
	if holdsNone(network) {
		return nil
	}
	l, err := b.lock()
	if err != nil {
		return fmt.Errorf("network %q: %w", network, err)
	}
	// One lasting connection: closing a netlink socket that committed waits
	// for the kernel's grace period (~10 ms here), which the index's update
	// below need not wait for; it is closed last, once the lock is free.
	c, err := nftables.New(nftables.AsLasting())
	if err != nil {
		l.unlock()
		return fmt.Errorf("network %q: open nftables netlink connection: %w", network, err)
	}
	defer func() {
		l.unlock()
		_ = c.CloseLasting()
	}()
	others := func(a Attachment) bool { return a != owner }
	// Elements are deleted by key: only those whose claim still names the
	// owner (checkHeld).
	return unpublishIndexed(b.indexAt(), network, owner, true,
		func(old []Mapping) error {
			sets := map[string]*nftables.Set{}
			for _, pm := range portMaps() {
				sets[pm.name] = pm.set(nftPortsTable(network))
			}
			if err := nftSetElements(c, sets, old, owner, c.SetDeleteElements); err != nil {
				return err
			}
			own := b.opts.ownCommits(network)
			defer own.close()
			if err := c.Flush(); err != nil {
				return err
			}
			own.carry()
			return nil
		},
		func(bool) error { return b.retain(c, network, others) })
}

// Retain implements Ports.
func (b *nftPorts) Retain(network string, keep func(Attachment) bool) error {
	if holdsNone(network) {
		return nil
	}
	c, release, err := b.locked(network)
	if err != nil {
		return err
	}
	defer release()
	return b.retain(c, network, keep)
}

// retain is Retain under the lock: it lists the network's elements, and
// makes the index's records of the network match what is kept.
func (b *nftPorts) retain(c *nftables.Conn, network string, keep func(Attachment) bool) error {
	mine, err := nftListPorts(c, network)
	if err != nil {
		return fmt.Errorf("network %q: %w", network, err)
	}
	t := nftPortsTable(network)
	var gone []Mapping
	var keptPs []Published
	kept := 0
	byOwner := map[Attachment][]Mapping{}
	for _, p := range mine {
		if keep != nil && keep(p.Owner) {
			kept++
			keptPs = append(keptPs, p)
			continue
		}
		gone = append(gone, p.Mapping)
		byOwner[p.Owner] = append(byOwner[p.Owner], p.Mapping)
	}
	if kept == 0 {
		// The bridge's route_localnet goes off before the table's drop of
		// packets to 127.0.0.0/8 (a missing table or chain: no drop).
		// A rule set removed without us (unguardGone) took its drop
		// along: route_localnet goes off all the same.
		var err error
		if rules, _, _ := chainRules(c, t, nftPortsRaw); len(rules) > 0 {
			err = b.opts.beforeUnguard(NFTablesName)
		} else {
			err = b.opts.unguardGone(b.indexAt(), network, NFTablesName)
		}
		if err != nil {
			return fmt.Errorf("network %q: %w", network, err)
		}
		// Adding first makes the deletion succeed when there is no table.
		c.DelTable(c.AddTable(t))
	} else {
		sets := map[string]*nftables.Set{}
		for _, pm := range portMaps() {
			sets[pm.name] = pm.set(t)
		}
		for owner, maps := range byOwner {
			if err := nftSetElements(c, sets, maps, owner, c.SetDeleteElements); err != nil {
				return fmt.Errorf("network %q: %w", network, err)
			}
		}
	}
	if kept == 0 || len(gone) > 0 {
		if err := c.Flush(); err != nil {
			return fmt.Errorf("network %q: unpublish ports in nftables table inet %s: %w", network, t.Name, err)
		}
	}
	if kept == 0 {
		if err := b.syncForward(c, network, nil); err != nil {
			return fmt.Errorf("network %q: %w", network, err)
		}
	}
	reconcileIndex(b.indexAt(), network, keptPs)
	return flushUDP(gone)
}

// Conflict implements Ports.
func (b *nftPorts) Conflict(network string, owner Attachment, maps []Mapping) error {
	return indexConflict(b.publishAt(), network, owner, maps, b.List)
}

// List implements Ports.
func (b *nftPorts) List() ([]Published, error) {
	c, err := nftables.New()
	if err != nil {
		return nil, fmt.Errorf("open nftables netlink connection: %w", err)
	}
	return nftListPorts(c, "")
}

// nftListPorts lists the mappings in the port tables of all networks, or of
// one network.
func nftListPorts(c *nftables.Conn, network string) ([]Published, error) {
	var names []string
	if network != "" {
		names = []string{network}
	} else {
		tables, err := c.ListTablesOfFamily(nftables.TableFamilyINet)
		if err != nil {
			return nil, fmt.Errorf("list nftables tables: %w", err)
		}
		for _, t := range tables {
			if name, ok := strings.CutPrefix(t.Name, nftPortsTablePrefix); ok && validateName(name) == nil {
				names = append(names, name)
			}
		}
	}
	var out []Published
	for _, name := range names {
		t := nftPortsTable(name)
		for _, pm := range portMaps() {
			elems, err := c.GetSetElements(pm.set(t))
			if errors.Is(err, unix.ENOENT) || (err != nil && strings.Contains(err.Error(), "no such file")) {
				continue // no table (yet), or not this map
			}
			if err != nil {
				return nil, fmt.Errorf("list map %s of nftables table inet %s: %w", pm.name, t.Name, err)
			}
			for _, e := range elems {
				if m, owner, ok := parseElement(pm, e); ok {
					out = append(out, Published{Network: name, Owner: owner, Mapping: m})
				}
			}
		}
	}
	sortPublished(out)
	return out, nil
}

// indexAt is where the backend's claims index lives.
func (b *nftPorts) indexAt() indexAt { return indexAt{lockDir: b.opts.lockDir, backend: NFTablesName} }

// publishAt is indexAt for Publish and Conflict: with the iptables
// backend as a peer, whose claims on the host ports are respected too.
func (b *nftPorts) publishAt() indexAt {
	at := b.indexAt()
	at.peers = []indexPeer{{backend: IPTablesName, list: (&iptPorts{opts: b.opts}).List}}
	return at
}
