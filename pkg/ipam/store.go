package ipam

import "net/netip"

// Attachment names one container interface: the key every lease is kept under.
type Attachment struct {
	ContainerID string
	IfName      string
}

func (a Attachment) String() string { return a.ContainerID + "/" + a.IfName }

// Lease is one reserved address and its holder.
type Lease struct {
	Addr netip.Addr
	Attachment
}

// Store keeps leases. Callers hold the lock (Lock/Unlock) around every sequence
// of calls that must be atomic, e.g. all allocations of one ADD.
type Store interface {
	Lock() error
	// Unlock ends the locked section; for the disk store, the changes made
	// in it are durable once it returns without error.
	Unlock() error
	Close() error
	// Flush completes the bookkeeping of the reservations made in this
	// locked section (the disk store's index). An error means they are not
	// recorded: the caller releases them.
	Flush() error

	// Reserve records addr for the attachment; false when addr is already taken.
	// setIndex names the range set, whose last reserved address it also records.
	Reserve(a Attachment, addr netip.Addr, setIndex int) (bool, error)
	// LastReserved returns the last address reserved in a range set, or the zero Addr.
	LastReserved(setIndex int) netip.Addr
	// Leases returns the addresses the attachment holds.
	Leases(a Attachment) ([]netip.Addr, error)
	// Release drops every lease of the attachment and returns the addresses freed.
	// Releasing an attachment that holds nothing is not an error.
	Release(a Attachment) ([]netip.Addr, error)
	// ReleaseAddrs drops those of addrs that the attachment holds, keeping its
	// other leases (undoing part of an ADD that failed).
	ReleaseAddrs(a Attachment, addrs []netip.Addr) error
	// All returns every lease of the network (O(number of leases): GC and STATUS only).
	All() ([]Lease, error)
}
