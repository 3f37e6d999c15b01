// Package hostlocal implements the host-local IPAM plugin's verbs (ADD, DEL,
// CHECK, GC, STATUS) on top of package ipam (what to allocate) and package
// disk (where leases live). plugins/flatcni only wires these to skel
// (Funcs), and package bridge runs them in-process (AddResult and the rest
// return instead of printing).
package hostlocal
