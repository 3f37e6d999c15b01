package firewall

import (
	"bytes"
	"fmt"
	"os/exec"
	"slices"
	"strconv"
	"strings"

	"github.com/google/nftables"
)

// The first Ensure of a network (or the first after its removal) with the
// iptables backend, when netlink can tell the node's tables hold nothing of
// it: its chains, jumps and isolation member are written with one
// iptables-restore --noflush per family, where the commands take some 30
// processes (create, append, insert and list, table by table, and the
// leftovers of the unused family looked for one by one). iptables-nft-restore
// commits table by table, so a process killed half way may leave some
// tables' parts, each whole (its chain, rules and jump are in the same
// table); the next ADD misses a jump and the commands write the rest.
// Anything else (a rule set to change or
// repair, iptables-legacy tables in the namespace, a restore that fails)
// is left to the commands, as before.

// ensureFresh writes n's rule set when it applies (see above) and reports
// whether it did. It takes the backend's lock.
func (b *iptablesBackend) ensureFresh(n Network, fp string) (done bool, err error) {
	lock, err := b.opts.lock(iptablesLockName)
	if err != nil {
		return false, fmt.Errorf("network %q: %w", n.Name, err)
	}
	defer lock.unlock()
	if ok, _ := iptablesNFTUpToDate(n, fp); ok { // written meanwhile
		return true, nil
	}
	c, err := nftables.New()
	if err != nil {
		return false, nil
	}
	used := n.ruleFamilies()
	inputs := map[family]string{}
	for _, f := range allFamilies() {
		v, ok := readIPTNFTOnly(c, f)
		if !ok {
			return false, nil
		}
		isolatedExists, member, err := v.freshFor(n.Name)
		if err != nil || member {
			return false, nil
		}
		if !slices.Contains(used, f) {
			continue // and nothing of the network is there: nothing to do
		}
		if _, err := exec.LookPath(iptCommand(f) + "-restore"); err != nil {
			return false, nil
		}
		pos := 1
		if ch := v.chain(filterTable, forwardChain); ch != nil {
			rules, err := v.rules(ch)
			if err != nil {
				return false, nil
			}
			pos = nftInsertPos(rules)
		}
		inputs[f] = iptFreshInput(n, f, fp, isolatedExists, pos)
	}
	for _, f := range allFamilies() {
		in, ok := inputs[f]
		if !ok {
			continue
		}
		if err := iptRestore(f, in); err != nil {
			// The tables before the failing one may be written (a commit
			// per table): the commands take it from here, and repair.
			return false, nil
		}
	}
	return true, nil
}

// freshFor reports whether the view holds nothing of network name: none of
// its chains in any table, no rule of it in the shared isolation chain
// (member), and whether that chain exists (then it is shared with other
// networks and must not be declared again: iptables-restore --noflush
// flushes a chain it declares).
func (v *iptNFTView) freshFor(name string) (isolatedExists, member bool, err error) {
	chain := iptChainName(name)
	for _, table := range iptTables {
		if v.chain(table, chain) != nil {
			return false, true, nil
		}
	}
	iso := v.chain(mangleTable, iptIsolatedChain)
	if iso == nil {
		return false, false, nil
	}
	rules, err := v.rules(iso)
	if err != nil {
		return true, false, err
	}
	for _, r := range rules {
		if got, ok := parseComment(xtComment(r)); ok && got == name {
			return true, true, nil
		}
	}
	return true, false, nil
}

// iptFreshInput is the iptables-restore input that writes n's rule set of
// family f from nothing: per table, the network's chain with its rules and
// the jump to it; in mangle, the shared isolation chain (declared only when
// it does not exist yet) with the network's member rule before the chain
// that jumps to it. The filter FORWARD jump goes in at rule number
// forwardPos (forwardInsertPos).
func iptFreshInput(n Network, f family, fp string, isolatedExists bool, forwardPos int) string {
	chain := iptChainName(n.Name)
	jump := iptJumpRule(n.Name, fp)
	var in strings.Builder
	line := func(args ...string) { in.WriteString(restoreLine(args...) + "\n") }
	for _, p := range iptParts(n, f) {
		in.WriteString("*" + p.table + "\n")
		in.WriteString(":" + chain + " - [0:0]\n")
		if p.table == mangleTable && n.Isolation == IsolationIsolated {
			if !isolatedExists {
				in.WriteString(":" + iptIsolatedChain + " - [0:0]\n")
			}
			line(append([]string{"-A", iptIsolatedChain}, iptIsolatedMember(n)...)...)
		}
		for _, r := range p.rules {
			line(append([]string{"-A", chain}, r...)...)
		}
		if p.insert {
			pos := 1
			if p.table == filterTable {
				pos = forwardPos
			}
			line(append([]string{"-I", p.hook, strconv.Itoa(pos)}, jump...)...)
		} else {
			line(append([]string{"-A", p.hook}, jump...)...)
		}
		in.WriteString("COMMIT\n")
	}
	return in.String()
}

// restoreLine is one line of iptables-restore input: args, each quoted as
// needed (restoreQuote), separated by spaces.
func restoreLine(args ...string) string {
	q := make([]string, len(args))
	for i, a := range args {
		q[i] = restoreQuote(a)
	}
	return strings.Join(q, " ")
}

// iptRestore feeds in to iptables-restore --noflush (ip6tables-restore for
// IPv6).
func iptRestore(f family, in string) error {
	name := iptCommand(f) + "-restore"
	cmd := exec.Command(name, "-w", "--noflush")
	cmd.Stdin = strings.NewReader(in)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("%s: %w: %s", name, err, bytes.TrimSpace(out))
	}
	return nil
}
