// Package disk keeps host-local leases on disk, in the reference plugin's layout,
// so that either plugin can read and release the other's leases:
//
//	<dataDir>/<network>/lock                 flock(2)ed around every change
//	<dataDir>/<network>/<ip>                 "<containerID>\r\n<ifname>"
//	<dataDir>/<network>/last_reserved_ip.<N> last address reserved in range set N
//
// Two things are added, both invisible to the reference:
//
// Crash safety. A lease file is written to a temporary file, fsynced, then
// hard-linked into place (link(2) fails if the name exists, so reservation is
// exclusive) and the directory is fsynced: a lease file is never seen half-written.
//
// An index by attachment. <network>/.flatcni/a/<containerID>@<ifname> lists
// the addresses an attachment holds, so DEL, CHECK and a repeated ADD read a
// couple of files instead of every lease. The index is trusted only while it
// describes the directory as it is: <network>/.flatcni/stamp records the lease
// directory's modification time (nanoseconds) and the boot ID as of our last
// change, after setting that time two seconds back so that any later change,
// even within the same tick of a coarse clock, moves it. When another writer (the reference plugin, a person) has added or
// removed a lease since, the directory's mtime differs and the index is rebuilt
// from the lease files once; after a reboot (when unsynced index writes may be
// lost) likewise. Addresses listed in the index are always checked against their
// lease file before use.
package disk
