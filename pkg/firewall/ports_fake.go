package firewall

import (
	"fmt"
	"slices"
	"sync"
)

// FakePorts is an in-memory Ports for tests without root. It validates and
// detects conflicts as the real backends do, and keeps one "rule set" per
// network: the network's description and its mappings.
type FakePorts struct {
	mu       sync.Mutex
	networks map[string]PortNetwork
	mappings []Published
	calls    []string
	err      error
	hidden   bool   // see SetHidden
	name     string // Name ("": "fake")
}

var _ Ports = (*FakePorts)(nil)

// NewFakePorts returns an empty FakePorts.
func NewFakePorts() *FakePorts {
	return &FakePorts{networks: map[string]PortNetwork{}}
}

// NewFakePortsNamed returns an empty FakePorts whose Name is name: one
// backend of several.
func NewFakePortsNamed(name string) *FakePorts {
	f := NewFakePorts()
	f.name = name
	return f
}

// Name implements Ports; it returns "fake" unless made with a name.
func (f *FakePorts) Name() string {
	if f.name != "" {
		return f.name
	}
	return "fake"
}

// Publish implements Ports.
func (f *FakePorts) Publish(n PortNetwork, owner Attachment, maps []Mapping) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, "Publish "+n.Name+" "+owner.tag())
	if f.err != nil {
		return f.err
	}
	n, err := checkPublish(n, owner, maps, f.mappings)
	if err != nil {
		return err
	}
	f.drop(n.Name, func(a Attachment) bool { return a != owner })
	for _, m := range maps {
		f.mappings = append(f.mappings, Published{Network: n.Name, Owner: owner, Mapping: m})
	}
	sortPublished(f.mappings)
	if len(maps) > 0 {
		f.networks[n.Name] = n
	}
	return nil
}

// drop removes the network's mappings whose owner keep rejects, and the
// network when none is left.
func (f *FakePorts) drop(network string, keep func(Attachment) bool) {
	left := 0
	f.mappings = slices.DeleteFunc(f.mappings, func(p Published) bool {
		if p.Network != network {
			return false
		}
		if keep != nil && keep(p.Owner) {
			left++
			return false
		}
		return true
	})
	if left == 0 {
		delete(f.networks, network)
	}
}

// Refresh implements Ports (recorded only).
func (f *FakePorts) Refresh(n PortNetwork) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, "Refresh "+n.Name)
	return nil
}

// Holds implements Ports: the network has mappings (and the fake is not
// hidden).
func (f *FakePorts) Holds(network string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	_, ok := f.networks[network]
	return ok && !f.hidden
}

// Recorded implements Ports: the network has mappings, seen or not (the
// index records iptables-legacy's too).
func (f *FakePorts) Recorded(network string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	_, ok := f.networks[network]
	return ok
}

// SetHidden makes Holds (and Guarding) see nothing, as netlink sees nothing
// of iptables-legacy's rules.
func (f *FakePorts) SetHidden(hidden bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.hidden = hidden
}

// Guarding implements Ports: the fake's rule sets stand for their drops.
func (f *FakePorts) Guarding() map[string]string {
	f.mu.Lock()
	defer f.mu.Unlock()
	g := map[string]string{}
	if !f.hidden {
		for name, n := range f.networks {
			g[name] = n.Bridge
		}
	}
	return g
}

// Unpublish implements Ports.
func (f *FakePorts) Unpublish(network string, owner Attachment) error {
	return f.retain("Unpublish "+network+" "+owner.tag(), network, func(a Attachment) bool { return a != owner }, nil)
}

// Retain implements Ports.
func (f *FakePorts) Retain(network string, keep func(Attachment) bool) error {
	return f.retain("Retain "+network, network, keep, nil)
}

// WithUnguard returns f as a backend made with WithUnguard(fn): fn is
// called before a network's rule set (which stands for its 127.0.0.0/8
// drop) goes, and its error keeps the rule set.
func (f *FakePorts) WithUnguard(fn func(backend string) error) Ports { return unguardedFake{f, fn} }

type unguardedFake struct {
	*FakePorts
	unguard func(backend string) error
}

func (u unguardedFake) Unpublish(network string, owner Attachment) error {
	return u.retain("Unpublish "+network+" "+owner.tag(), network, func(a Attachment) bool { return a != owner }, u.unguard)
}

func (u unguardedFake) Retain(network string, keep func(Attachment) bool) error {
	return u.retain("Retain "+network, network, keep, u.unguard)
}

func (f *FakePorts) retain(call, network string, keep func(Attachment) bool, unguard func(backend string) error) error {
	f.mu.Lock()
	f.calls = append(f.calls, call)
	err := f.err
	if err == nil && holdsNone(network) {
		f.mu.Unlock()
		return nil
	}
	_, had := f.networks[network]
	kept := slices.ContainsFunc(f.mappings, func(p Published) bool {
		return p.Network == network && keep != nil && keep(p.Owner)
	})
	f.mu.Unlock()
	if err != nil {
		return err
	}
	// Unlocked, as the real backends call it (under the node's ports lock
	// only): unguard looks at every backend's rule sets, this one's too.
	if had && !kept {
		if err := (options{unguard: unguard}).beforeUnguard(f.Name()); err != nil {
			return fmt.Errorf("network %q: %w", network, err)
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.drop(network, keep)
	return nil
}

// Conflict implements Ports.
func (f *FakePorts) Conflict(network string, owner Attachment, maps []Mapping) error {
	l, err := f.List()
	if err != nil {
		return err
	}
	return FindConflict(l, network, owner, maps)
}

// List implements Ports.
func (f *FakePorts) List() ([]Published, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil {
		return nil, f.err
	}
	return slices.Clone(f.mappings), nil
}

// Network returns the network's description and whether it has a rule set.
func (f *FakePorts) Network(name string) (PortNetwork, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	n, ok := f.networks[name]
	return n, ok
}

// Calls returns the operations so far, like "Publish net id/eth0".
func (f *FakePorts) Calls() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.calls)
}

// SetError makes every later operation fail with err (nil: succeed again).
func (f *FakePorts) SetError(err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.err = err
}
