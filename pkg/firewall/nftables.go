package firewall

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/google/nftables"
	"github.com/vishvananda/netlink/nl"
	"golang.org/x/sys/unix"
)

// nftablesLockName is the lock file serialising changes to iptables-nft's
// FORWARD chain (the only chain not owned by us).
const nftablesLockName = "nftables-forward.lock"

// nftablesBackend keeps the rules through nftables' netlink interface; it
// never starts a process.
type nftablesBackend struct {
	opts options
}

func newNFTables(o options) *nftablesBackend {
	return &nftablesBackend{opts: o}
}

// Name implements Backend.
func (b *nftablesBackend) Name() string { return NFTablesName }

func (b *nftablesBackend) conn() (*nftables.Conn, error) {
	c, err := nftables.New()
	if err != nil {
		return nil, fmt.Errorf("open nftables netlink connection: %w", err)
	}
	return c, nil
}

func networkTable(name string) *nftables.Table {
	return &nftables.Table{Name: nftTableName(name), Family: nftables.TableFamilyINet}
}

// Ensure implements Backend. The network's table is written in one atomic
// transaction: created if missing, its chain flushed and refilled.
func (b *nftablesBackend) Ensure(n Network) error {
	_, err := b.Sync(n)
	return err
}

// Sync implements Backend.
func (b *nftablesBackend) Sync(n Network) (changed bool, err error) {
	n, err = n.normalize()
	if err != nil {
		return false, err
	}
	if !n.active() {
		return false, b.Remove(n.Name)
	}
	if n, err = n.withNodeBridges(true); err != nil {
		return false, err
	}
	fp := n.fingerprint()
	checked, ok := b.opts.stamped(networkMarker(n.Name), NFTablesName, fp)
	if ok {
		return false, nil // the hot path: nothing changed since found in place (stamp.go)
	}
	c, err := b.conn()
	if err != nil {
		return false, fmt.Errorf("network %q: %w", n.Name, err)
	}
	if err := b.syncForward(c, n.Name, &n); err != nil {
		return false, fmt.Errorf("network %q: %w", n.Name, err)
	}
	if b.masqUpToDate(c, n, fp) && b.isolationUpToDate(c, n, fp) {
		b.opts.recordStamp(NFTablesName, fp, checked)
		return false, nil // read, nothing written
	}
	// The shared part first: a network's own isolation chain exists
	// whenever it has a shared part (see isolationUpToDate).
	if err := b.syncShared(c, n.Name, &n, fp); err != nil {
		return true, fmt.Errorf("network %q: %w", n.Name, err)
	}
	t := c.AddTable(networkTable(n.Name))
	ch := c.AddChain(&nftables.Chain{
		Name:     nftMasqChain,
		Table:    t,
		Type:     nftables.ChainTypeNAT,
		Hooknum:  nftables.ChainHookPostrouting,
		Priority: nftables.ChainPriorityNATSource,
	})
	c.FlushChain(ch)
	if n.Masquerade {
		ud := commentUserData(jumpComment(n.Name, fp))
		for _, f := range n.families() {
			for _, exprs := range nftMasqueradeRules(n, f) {
				c.AddRule(&nftables.Rule{Table: t, Chain: ch, Exprs: exprs, UserData: ud})
			}
		}
	} else {
		c.DelChain(ch)
	}
	writeIsolationChain(c, t, n, fp)
	if err := c.Flush(); err != nil {
		return true, fmt.Errorf("network %q: write nftables table inet %s: %w", n.Name, t.Name, err)
	}
	return true, nil
}

// Remove implements Backend.
func (b *nftablesBackend) Remove(name string) error {
	if holdsNone(name) {
		return nil
	}
	c, err := b.conn()
	if err != nil {
		return fmt.Errorf("remove network %q: %w", name, err)
	}
	if err := b.syncForward(c, name, nil); err != nil {
		return fmt.Errorf("remove network %q: %w", name, err)
	}
	if err := b.syncShared(c, name, nil, ""); err != nil {
		return fmt.Errorf("remove network %q: %w", name, err)
	}
	// Adding before deleting makes the deletion succeed when the table
	// does not exist; both happen in one transaction.
	t := c.AddTable(networkTable(name))
	c.DelTable(t)
	if err := c.Flush(); err != nil {
		return fmt.Errorf("remove network %q: delete nftables table inet %s: %w", name, t.Name, err)
	}
	return nil
}

// Holds implements Backend: the network's table exists.
func (b *nftablesBackend) Holds(name string) bool {
	c, err := nftables.New()
	if err != nil {
		return false
	}
	tables, err := c.ListTablesOfFamily(nftables.TableFamilyINet)
	if err != nil {
		return false
	}
	want := nftTableName(name)
	return slices.ContainsFunc(tables, func(t *nftables.Table) bool { return t.Name == want })
}

// Networks implements Backend: the networks with a table of ours, or with
// rules of ours in iptables-nft's FORWARD chain.
func (b *nftablesBackend) Networks() ([]string, error) {
	c, err := b.conn()
	if err != nil {
		return nil, fmt.Errorf("list networks: %w", err)
	}
	tables, err := c.ListTablesOfFamily(nftables.TableFamilyINet)
	if err != nil {
		return nil, fmt.Errorf("list networks: list nftables tables: %w", err)
	}
	seen := map[string]bool{}
	for _, t := range tables {
		if name, ok := strings.CutPrefix(t.Name, nftTablePrefix); ok && validateName(name) == nil {
			seen[name] = true
		}
	}
	collectShared(c, seen)
	for _, f := range allFamilies() {
		rules, _, err := forwardRules(c, f)
		if err != nil {
			return nil, fmt.Errorf("list networks: %w", err)
		}
		for _, r := range rules {
			if name, ok := parseComment(userDataComment(r.UserData)); ok {
				seen[name] = true
			}
		}
	}
	return sortedKeys(seen), nil
}

// RemoveLegacy implements Backend for the reference's nftables rules: the
// rules of chain masq_checks in table inet cni_plugins_masquerade.
func (b *nftablesBackend) RemoveLegacy(network string, keep map[string]bool) error {
	return b.removeLegacy(network, staleUnlessKept(keep))
}

// RemoveLegacyOf implements Backend, as RemoveLegacy.
func (b *nftablesBackend) RemoveLegacyOf(network, containerID string) error {
	return b.removeLegacy(network, staleOnly(containerID))
}

func (b *nftablesBackend) removeLegacy(network string, stale legacyStale) error {
	c, err := b.conn()
	if err != nil {
		return fmt.Errorf("remove reference masquerade rules of network %q: %w", network, err)
	}
	chain, err := findChain(nftables.TableFamilyINet, legacyNFTTable, legacyNFTChain)
	if err != nil || chain == nil {
		return wrapIf(err, "remove reference masquerade rules of network %q", network)
	}
	rules, err := c.GetRules(chain.Table, chain)
	if err != nil {
		return fmt.Errorf("remove reference masquerade rules of network %q: list chain %s: %w", network, legacyNFTChain, err)
	}
	n := 0
	for _, r := range rules {
		if legacyNFTKeep(userDataComment(r.UserData), network, stale) {
			continue
		}
		if err := c.DelRule(r); err != nil {
			return fmt.Errorf("remove reference masquerade rules of network %q: %w", network, err)
		}
		n++
	}
	if n == 0 {
		return nil
	}
	if err := c.Flush(); err != nil {
		return fmt.Errorf("remove reference masquerade rules of network %q: %w", network, err)
	}
	return nil
}

// findChain returns the chain, or nil if it (or its table) does not exist:
// one GETCHAIN of that chain, where listing the family's chains would read
// every chain of the node (thousands of them under kube-proxy: ~5 ms with
// 2,000).
func findChain(fam nftables.TableFamily, table, chain string) (*nftables.Chain, error) {
	req := nl.NewNetlinkRequest(unix.NFNL_SUBSYS_NFTABLES<<8|unix.NFT_MSG_GETCHAIN, 0)
	req.AddData(&nl.Nfgenmsg{NfgenFamily: uint8(fam), Version: unix.NFNETLINK_V0})
	req.AddData(nl.NewRtAttr(unix.NFTA_CHAIN_TABLE, nl.ZeroTerminated(table)))
	req.AddData(nl.NewRtAttr(unix.NFTA_CHAIN_NAME, nl.ZeroTerminated(chain)))
	_, err := req.Execute(unix.NETLINK_NETFILTER, unix.NFNL_SUBSYS_NFTABLES<<8|unix.NFT_MSG_NEWCHAIN)
	switch {
	case errors.Is(err, unix.ENOENT), errors.Is(err, unix.EAFNOSUPPORT):
		return nil, nil // EAFNOSUPPORT: before Linux 4.16, a family not loaded
	case err != nil:
		return nil, fmt.Errorf("look up nftables chain %s in table %s: %w", chain, table, err)
	}
	return &nftables.Chain{Name: chain, Table: &nftables.Table{Name: table, Family: fam}}, nil
}

func wrapIf(err error, format string, args ...any) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf(format+": %w", append(args, err)...)
}

// masqUpToDate reports whether the network's table holds exactly the
// masquerade rules of this configuration: each rule carries the fingerprint
// of the configuration it was written for.
func (b *nftablesBackend) masqUpToDate(c *nftables.Conn, n Network, fp string) bool {
	t := networkTable(n.Name)
	if !n.Masquerade {
		// Up to date without the chain, if the table is there (it then
		// holds the isolation chain, checked by isolationUpToDate).
		_, exists, err := chainRules(c, t, nftMasqChain)
		return err == nil && !exists && n.isolates()
	}
	rules, err := c.GetRules(t, &nftables.Chain{Name: nftMasqChain, Table: t})
	if err != nil {
		return false
	}
	want := 0
	for _, f := range n.families() {
		want += len(nftMasqueradeRules(n, f))
	}
	if len(rules) != want {
		return false
	}
	comment := jumpComment(n.Name, fp)
	for _, r := range rules {
		if userDataComment(r.UserData) != comment {
			return false
		}
	}
	return true
}
