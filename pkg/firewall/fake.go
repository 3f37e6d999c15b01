package firewall

import (
	"maps"
	"slices"
	"sync"
)

// Fake is an in-memory Backend for tests that must not need root. It
// applies the same validation and normalization as the real backends and
// records what it was asked to do. It is safe for concurrent use.
type Fake struct {
	mu       sync.Mutex
	networks map[string]Network
	legacy   map[string]map[string]bool // network -> container IDs
	calls    []string
	err      error
	// partial: Ensure writes the rules, then fails (SetEnsurePartial).
	partial error
}

var _ Backend = (*Fake)(nil)

// NewFake returns an empty Fake.
func NewFake() *Fake {
	return &Fake{networks: map[string]Network{}, legacy: map[string]map[string]bool{}}
}

// Name implements Backend; it returns "fake".
func (f *Fake) Name() string { return "fake" }

// Ensure implements Backend.
func (f *Fake) Ensure(n Network) error {
	_, err := f.Sync(n)
	return err
}

// Sync implements Backend: changed when the network's description is new
// or differs.
func (f *Fake) Sync(n Network) (changed bool, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, "Ensure "+n.Name)
	if f.err != nil {
		return false, f.err
	}
	n, err = n.normalize()
	if err != nil {
		return false, err
	}
	if !n.active() {
		delete(f.networks, n.Name)
		return false, nil
	}
	old, had := f.networks[n.Name]
	f.networks[n.Name] = n
	return !had || old.fingerprint() != n.fingerprint(), f.partial
}

// SetEnsurePartial makes every later Ensure write the rules and then fail
// with err (nil: succeed again), as a real backend that failed half way:
// the iptables backend writes family by family and table by table, the
// nftables backend the FORWARD accepts and the shared isolation table
// before the network's own table.
func (f *Fake) SetEnsurePartial(err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.partial = err
}

// Remove implements Backend.
func (f *Fake) Remove(name string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, "Remove "+name)
	if f.err != nil {
		return f.err
	}
	if holdsNone(name) {
		return nil
	}
	delete(f.networks, name)
	return nil
}

// Holds implements Backend.
func (f *Fake) Holds(name string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	_, ok := f.networks[name]
	return ok
}

// Networks implements Backend.
func (f *Fake) Networks() ([]string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, "Networks")
	if f.err != nil {
		return nil, f.err
	}
	return slices.Sorted(maps.Keys(f.networks)), nil
}

// RemoveLegacyOf implements Backend on the entries made by AddLegacy.
func (f *Fake) RemoveLegacyOf(network, containerID string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, "RemoveLegacyOf "+network+" "+containerID)
	if f.err != nil {
		return f.err
	}
	delete(f.legacy[network], containerID)
	return nil
}

// RemoveLegacy implements Backend on the entries made by AddLegacy.
func (f *Fake) RemoveLegacy(network string, keep map[string]bool) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, "RemoveLegacy "+network)
	if f.err != nil {
		return f.err
	}
	for id := range f.legacy[network] {
		if !keep[id] {
			delete(f.legacy[network], id)
		}
	}
	return nil
}

// Network returns the (normalized) description the network's rules were
// last ensured with, and whether it has rules.
func (f *Fake) Network(name string) (Network, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	n, ok := f.networks[name]
	return n, ok
}

// AddLegacy records a reference-plugin per-container rule set.
func (f *Fake) AddLegacy(network, containerID string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.legacy[network] == nil {
		f.legacy[network] = map[string]bool{}
	}
	f.legacy[network][containerID] = true
}

// Legacy returns the container IDs with reference rule sets in the network.
func (f *Fake) Legacy(network string) []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Sorted(maps.Keys(f.legacy[network]))
}

// Calls returns the operations made so far, like "Ensure mynet",
// "Remove mynet", "Networks" or "RemoveLegacy mynet".
func (f *Fake) Calls() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.calls)
}

// SetError makes every later operation fail with err (nil: succeed again).
func (f *Fake) SetError(err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.err = err
}
