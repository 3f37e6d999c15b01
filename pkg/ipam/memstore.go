package ipam

import (
	"net/netip"
	"sort"
	"sync"
)

// MemStore is an in-memory Store for tests.
type MemStore struct {
	mu     sync.Mutex
	leases map[netip.Addr]Attachment
	last   map[int]netip.Addr
}

// NewMemStore returns an empty in-memory store.
func NewMemStore() *MemStore {
	return &MemStore{leases: map[netip.Addr]Attachment{}, last: map[int]netip.Addr{}}
}

func (m *MemStore) Lock() error   { m.mu.Lock(); return nil }
func (m *MemStore) Unlock() error { m.mu.Unlock(); return nil }
func (m *MemStore) Close() error  { return nil }
func (m *MemStore) Flush() error  { return nil }

func (m *MemStore) Reserve(a Attachment, addr netip.Addr, setIndex int) (bool, error) {
	if _, taken := m.leases[addr]; taken {
		return false, nil
	}
	m.leases[addr] = a
	m.last[setIndex] = addr
	return true, nil
}

func (m *MemStore) LastReserved(setIndex int) netip.Addr { return m.last[setIndex] }

func (m *MemStore) Leases(a Attachment) ([]netip.Addr, error) {
	var out []netip.Addr
	for addr, holder := range m.leases {
		if holder == a {
			out = append(out, addr)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Less(out[j]) })
	return out, nil
}

func (m *MemStore) Release(a Attachment) ([]netip.Addr, error) {
	out, _ := m.Leases(a)
	for _, addr := range out {
		delete(m.leases, addr)
	}
	return out, nil
}

func (m *MemStore) ReleaseAddrs(a Attachment, addrs []netip.Addr) error {
	for _, addr := range addrs {
		if m.leases[addr] == a {
			delete(m.leases, addr)
		}
	}
	return nil
}

func (m *MemStore) All() ([]Lease, error) {
	out := make([]Lease, 0, len(m.leases))
	for addr, a := range m.leases {
		out = append(out, Lease{Addr: addr, Attachment: a})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Addr.Less(out[j].Addr) })
	return out, nil
}
