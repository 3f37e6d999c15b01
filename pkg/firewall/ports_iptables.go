package firewall

import (
	"fmt"
	"strings"

	"github.com/coreos/go-iptables/iptables"
	"github.com/google/nftables"
)

// iptPorts publishes ports with iptables and ip6tables.
type iptPorts struct {
	opts options
}

// Name implements Ports.
func (b *iptPorts) Name() string { return IPTablesName }

func (b *iptPorts) handles() map[family]*iptables.IPTables {
	hs := map[family]*iptables.IPTables{}
	for _, f := range allFamilies() {
		if ipt, err := (&iptablesBackend{}).handle(f); err == nil {
			hs[f] = ipt
		}
	}
	return hs
}

// Publish implements Ports.
func (b *iptPorts) Publish(n PortNetwork, owner Attachment, maps []Mapping) error {
	l, err := lockFile(b.opts.lockDir, portsLockName)
	if err != nil {
		return fmt.Errorf("network %q: %w", n.Name, err)
	}
	defer l.unlock()
	hs := b.handles()
	existing, err := iptListPorts(hs, "")
	if err != nil {
		return fmt.Errorf("network %q: %w", n.Name, err)
	}
	if n, err = checkPublish(n, owner, maps, existing); err != nil {
		return err
	}
	fp := n.fingerprint()
	chain := iptPortsChain(n.Name)
	var old []Mapping
	for _, p := range existing {
		if p.Network == n.Name && p.Owner == owner {
			old = append(old, p.Mapping)
		}
	}
	for _, m := range maps {
		if hs[m.family()] == nil {
			return fmt.Errorf("network %q: port mapping %s: %s not found", n.Name, m.host(), iptCommand(m.family()))
		}
	}
	done := map[family]bool{}
	for _, m := range maps {
		f := m.family()
		if done[f] {
			continue
		}
		done[f] = true
		if err := iptEnsureFixed(hs[f], n, f, fp); err != nil {
			return fmt.Errorf("network %q: %s: %w", n.Name, iptCommand(f), err)
		}
	}
	for _, m := range old {
		if err := hs[m.family()].Delete(natTable, chain, iptMappingRule(n.Name, owner, m)...); err != nil && !isNotExist(err) {
			return fmt.Errorf("network %q: %s: delete mapping %s: %w", n.Name, iptCommand(m.family()), m.host(), err)
		}
	}
	for _, m := range maps {
		if err := hs[m.family()].Append(natTable, chain, iptMappingRule(n.Name, owner, m)...); err != nil {
			return fmt.Errorf("network %q: %s: add mapping %s: %w", n.Name, iptCommand(m.family()), m.host(), err)
		}
	}
	return flushUDP(append(old, maps...))
}

// iptEnsureFixed makes the network's chain and fixed rules of family f
// exist with fingerprint fp; the hot path is one check of the PREROUTING
// jump (read through netlink when iptables is iptables-nft).
func iptEnsureFixed(ipt *iptables.IPTables, n PortNetwork, f family, fp string) error {
	rules := iptPortsFixed(n, f, fp)
	last := rules[len(rules)-1]
	if iptNFTHasComment(f, last.table, last.chain, portsFixedComment(n.Name, fp)) {
		return nil
	}
	if ok, err := ipt.Exists(last.table, last.chain, last.spec...); err == nil && ok {
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
	if err := iptDeleteFixed(ipt, n.Name, portsFixedComment(n.Name, fp)); err != nil {
		return err
	}
	for _, r := range rules {
		var err error
		if r.insert {
			err = ipt.Insert(r.table, r.chain, 1, r.spec...)
		} else {
			err = ipt.Append(r.table, r.chain, r.spec...)
		}
		if err != nil {
			return fmt.Errorf("add rule to chain %s in table %s: %w", r.chain, r.table, err)
		}
	}
	return nil
}

// iptNFTHasComment reads a built-in chain through netlink (iptables-nft) and
// reports whether a rule carries the comment; false on any doubt.
func iptNFTHasComment(f family, table, chain, comment string) bool {
	c, err := nftables.New()
	if err != nil {
		return false
	}
	fam := nftables.TableFamilyIPv4
	if f == ipv6 {
		fam = nftables.TableFamilyIPv6
	}
	t := &nftables.Table{Name: table, Family: fam}
	rules, err := c.GetRules(t, &nftables.Chain{Name: chain, Table: t})
	return err == nil && hasXTComment(rules, comment)
}

// iptDeleteFixed deletes the network's fixed rules, except those carrying
// the comment keep ("": all).
func iptDeleteFixed(ipt *iptables.IPTables, network, keep string) error {
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
			if err := ipt.Delete(h[0], h[1], spec...); err != nil && !isNotExist(err) {
				return fmt.Errorf("delete rule from chain %s in table %s: %w", h[1], h[0], err)
			}
		}
	}
	return nil
}

// Unpublish implements Ports.
func (b *iptPorts) Unpublish(network string, owner Attachment) error {
	return b.Retain(network, func(a Attachment) bool { return a != owner })
}

// Retain implements Ports. A family whose chain is left empty loses its
// chain and fixed rules.
func (b *iptPorts) Retain(network string, keep func(Attachment) bool) error {
	if err := validateName(network); err != nil {
		return err
	}
	l, err := lockFile(b.opts.lockDir, portsLockName)
	if err != nil {
		return fmt.Errorf("network %q: %w", network, err)
	}
	defer l.unlock()
	chain := iptPortsChain(network)
	var gone []Mapping
	for f, ipt := range b.handles() {
		mine, err := iptListPorts(map[family]*iptables.IPTables{f: ipt}, network)
		if err != nil {
			return fmt.Errorf("network %q: %w", network, err)
		}
		kept := 0
		for _, p := range mine {
			if keep != nil && keep(p.Owner) {
				kept++
				continue
			}
			if err := ipt.Delete(natTable, chain, iptMappingRule(network, p.Owner, p.Mapping)...); err != nil && !isNotExist(err) {
				return fmt.Errorf("network %q: %s: delete mapping %s: %w", network, iptCommand(f), p.host(), err)
			}
			gone = append(gone, p.Mapping)
		}
		if kept > 0 {
			continue
		}
		if err := iptDeleteFixed(ipt, network, ""); err != nil {
			return fmt.Errorf("network %q: %s: %w", network, iptCommand(f), err)
		}
		if err := ipt.ClearAndDeleteChain(natTable, chain); err != nil && !isNotExist(err) {
			return fmt.Errorf("network %q: %s: delete chain %s: %w", network, iptCommand(f), chain, err)
		}
	}
	return flushUDP(gone)
}

// List implements Ports.
func (b *iptPorts) List() ([]Published, error) {
	return iptListPorts(b.handles(), "")
}

// iptListPorts reads the mappings of all networks' chains (or of one
// network's) in the given families.
func iptListPorts(hs map[family]*iptables.IPTables, network string) ([]Published, error) {
	var out []Published
	for f, ipt := range hs {
		var chains []string
		if network != "" {
			chains = []string{iptPortsChain(network)}
		} else {
			all, err := ipt.ListChains(natTable)
			if err != nil {
				return nil, fmt.Errorf("%s: list chains of table %s: %w", iptCommand(f), natTable, err)
			}
			for _, c := range all {
				if len(c) == iptChainMaxLen && c[:len(iptPortsChainPrefix)] == iptPortsChainPrefix {
					chains = append(chains, c)
				}
			}
		}
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
				if net, owner, m, ok := parseMappingRule(spec); ok && iptPortsChain(net) == chain {
					out = append(out, Published{Network: net, Owner: owner, Mapping: m})
				}
			}
		}
	}
	sortPublished(out)
	return out, nil
}
