// Package hostlocal implements the host-local IPAM plugin's verbs (ADD, DEL,
// CHECK, GC, STATUS) on top of package ipam (what to allocate) and package
// disk (where leases live). plugins/host-local only wires these to skel.
package hostlocal
