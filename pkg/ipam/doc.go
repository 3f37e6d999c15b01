// Package ipam decides which addresses to hand out: ranges and range sets
// (net/netip values), round-robin allocation from the last reserved address,
// and the Store interface behind which leases live. It does not know where
// leases are kept: see package disk for the on-disk store and NewMemStore for
// the in-memory one used by tests.
package ipam
