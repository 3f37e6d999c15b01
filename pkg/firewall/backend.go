package firewall

import (
	"fmt"
	"os/exec"

	"github.com/coreos/go-iptables/iptables"
	"github.com/google/nftables"
)

// Backend manages the per-network rule sets in one firewall implementation.
type Backend interface {
	// Name returns "iptables" or "nftables".
	Name() string
	// Ensure makes the network's rule set exist and match n. It is
	// idempotent and safe to call concurrently from many processes. A
	// network with neither Masquerade nor Forward (or without subnets)
	// needs no rules: Ensure then behaves like Remove.
	Ensure(n Network) error
	// Sync is Ensure reporting whether it wrote rules (false when they
	// were up to date, or for a network that needs none).
	Sync(n Network) (changed bool, err error)
	// Remove deletes everything naming the network. Removing a network
	// without rules is not an error.
	Remove(name string) error
	// Networks returns the names of the networks that have rule sets.
	Networks() ([]string, error)
	// Holds reports, from netlink alone (no process started), whether the
	// network has rules in this backend: its nftables table, or a chain of
	// iptables-nft named for it. Rules of iptables-legacy are not seen.
	Holds(name string) bool
	// RemoveLegacy deletes the reference plugin's per-container masquerade
	// rules of the network whose container ID is not in keepContainerIDs.
	RemoveLegacy(network string, keepContainerIDs map[string]bool) error
	// RemoveLegacyOf deletes the reference plugin's per-container
	// masquerade rules of one container of the network, as the
	// reference's DEL does.
	RemoveLegacyOf(network, containerID string) error
}

// Backend names, as used by the ipMasqBackend configuration key.
const (
	IPTablesName = "iptables"
	NFTablesName = "nftables"
)

// Names returns the backend names other than except ("": all of them).
func Names(except string) []string {
	var out []string
	for _, name := range []string{IPTablesName, NFTablesName} {
		if name != except {
			out = append(out, name)
		}
	}
	return out
}

// DefaultLockDir is where the iptables backend keeps its lock file.
const DefaultLockDir = "/run/flatcni"

// Option adjusts a backend made by New.
type Option func(*options)

type options struct {
	lockDir        string
	bestEffortLock bool                       // see WithBestEffortLock
	unguard        func(backend string) error // see WithUnguard
}

// WithLockDir sets the directory of the lock file that serialises rule
// updates between processes (default DefaultLockDir).
func WithLockDir(dir string) Option {
	return func(o *options) { o.lockDir = dir }
}

// WithUnguard gives port publishing what to call right before a removal
// takes a network's drop of packets to 127.0.0.0/8 away (its rule set, or
// the rule set's IPv4 part, going with its last mapping): turning the
// bridge's route_localnet off, which is safe only beside that drop. It is
// called under the ports lock, with the name of the backend removing it,
// when the drop is there, or when a removal finds a rule set the index
// records gone without us (unguardGone); its error keeps the drop, and
// what goes with it, in place.
func WithUnguard(fn func(backend string) error) Option {
	return func(o *options) { o.unguard = fn }
}

// beforeUnguard calls the WithUnguard function, if any, for backend.
func (o options) beforeUnguard(backend string) error {
	if o.unguard == nil {
		return nil
	}
	if err := o.unguard(backend); err != nil {
		return fmt.Errorf("the 127.0.0.0/8 drop stays: %w", err)
	}
	return nil
}

// unguardGone calls the WithUnguard function for a network whose rule set
// is gone though the index still records it: removed without us (a
// firewall reload, nft flush ruleset), its drop of packets to 127.0.0.0/8
// with it, while the bridge's route_localnet, which the rule set had
// turned on, stayed on. A network the index does not record (one whose
// ports the reference portmap publishes, which sets route_localnet
// itself) is left alone.
func (o options) unguardGone(at indexAt, network, backend string) error {
	if !at.records(network) {
		return nil
	}
	return o.beforeUnguard(backend)
}

func buildOptions(opts []Option) options {
	o := options{lockDir: DefaultLockDir}
	for _, opt := range opts {
		opt(&o)
	}
	return o
}

// New returns the backend called name: "iptables", "nftables", or "" for
// the reference plugin's default, which is iptables unless iptables is
// unusable and nftables is usable.
func New(name string, opts ...Option) (Backend, error) {
	o := buildOptions(opts)
	switch name {
	case IPTablesName:
		return newIPTables(o), nil
	case NFTablesName:
		return newNFTables(o), nil
	case "":
		if !supportsIPTables() && supportsNFTables() {
			return newNFTables(o), nil
		}
		return newIPTables(o), nil
	default:
		return nil, fmt.Errorf("unknown ipMasqBackend %q: must be %q or %q", name, IPTablesName, NFTablesName)
	}
}

// Holder returns the backend whose rules of network netlink shows (no
// process started): iptables (iptables-nft) first, the default's choice,
// then nftables; "" when neither shows any. The default backend ("")
// resolves to it when set, so that a network's ADDs and DELs after its
// first do not start iptables to choose again (New("") does).
func Holder(network string) string {
	for _, name := range Names("") {
		if b, err := New(name); err == nil && b.Holds(network) {
			return name
		}
	}
	return ""
}

// supportsIPTables reports whether the iptables command can be used.
func supportsIPTables() bool {
	ipt, err := iptables.NewWithProtocol(iptables.ProtocolIPv4)
	if err != nil {
		return false
	}
	_, err = ipt.ChainExists("filter", "INPUT")
	return err == nil
}

// Usable reports, without starting a process, whether the backend name
// can run on this node (for STATUS): iptables needs its command in PATH,
// nftables a netlink socket that lists tables, the default ("") either.
// The error names what is missing.
func Usable(name string) error {
	_, err := exec.LookPath(iptCommand(ipv4))
	switch {
	case name == IPTablesName && err != nil:
		return fmt.Errorf("ipMasqBackend %q: %w", name, err)
	case name == NFTablesName && !supportsNFTables():
		return fmt.Errorf("ipMasqBackend %q: nftables cannot be read through netlink", name)
	case name == "" && err != nil && !supportsNFTables():
		return fmt.Errorf("no ipMasqBackend usable: %v, and nftables cannot be read through netlink", err)
	}
	return nil
}

// supportsNFTables reports whether nftables can be used through netlink.
func supportsNFTables() bool {
	c, err := nftables.New()
	if err != nil {
		return false
	}
	_, err = c.ListTablesOfFamily(nftables.TableFamilyIPv4)
	return err == nil
}
