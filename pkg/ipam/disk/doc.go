// Package disk keeps host-local leases on disk, in the reference plugin's layout,
// so that either plugin can read and release the other's leases:
//
//	<dataDir>/<network>/lock                 flock(2)ed around every change
//	<dataDir>/<network>/<ip>                 "<containerID>\r\n<ifname>"
//	<dataDir>/<network>/last_reserved_ip.<N> last address reserved in range set N
//
// Nothing below <dataDir> is trusted (fsx.go): every entry is opened relative
// to a descriptor of its folder without following a symbolic link, and must
// be a regular file (or directory) or is refused, without blocking on a FIFO.
//
// Two things are added, both invisible to the reference:
//
// Crash safety. A lease file is written to a temporary file and fsynced
// (before the lock is taken: Prepare), then hard-linked into place under the
// lock (link(2) fails if the name exists, so reservation is exclusive); the
// directory is fsynced after the lock is released and before the caller
// reports success. A lease file is never seen half-written. The leases one
// ADD reserves in several range sets are hard links of one file (their
// content is the same; each is released by removing its name).
//
// An index by attachment. <network>/.flatcni/a/<containerID>@<ifname> lists
// the addresses an attachment holds, so DEL, CHECK and a repeated ADD read a
// couple of files instead of every lease. It is a cache and never overrides
// the lease files. It is trusted only while <network>/.flatcni/stamp matches
// the modification times of the lease directory and of .flatcni/a
// (nanoseconds) and the boot ID as of our last change, after setting those
// times two seconds back so that any later change, even within the same tick
// of a coarse clock, moves them. When another writer (the reference plugin, a
// person) has added or removed a lease or an entry since, or after a reboot
// (when unsynced index writes may be lost), the index is rebuilt from the
// lease files once. An entry that does not match the lease files (garbage, an
// address leased to someone else) is damage: the index is rebuilt. When the
// index cannot be used or written (a full disk, an entry that is not a file),
// lookups read the lease files, nothing is written to the index and its
// stamp is removed: DEL and GC still release leases; ADD fails.
package disk
