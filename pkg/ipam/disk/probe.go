package disk

import (
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"

	"golang.org/x/sys/unix"

	"github.com/flatcni/plugins/pkg/safefs"
)

// Probe tells, changing nothing, whether an ADD could record a lease of
// network under dataDir now, and returns the addresses leased there (by
// the lease files' names). It is STATUS's look at the store, which the
// spec wants purely informational: it takes no lock, creates no directory,
// lock file or index, and writes no file. What would make ADD fail is an
// error naming the path: a lease directory or lock entry that is not what
// it must be, a last_reserved_ip.<i> of one of the first sets range sets
// that ADD could not open, a directory ADD could not write in (a read-only
// mount, no permission, no free block or inode). A network without a lease
// directory has no lease; the directory ADD would make it in is checked
// instead (dataDir, or its nearest existing ancestor).
func Probe(dataDir, network string, sets int) ([]netip.Addr, error) {
	if dataDir == "" {
		dataDir = DefaultDataDir
	}
	if err := validName("network name", network); err != nil {
		return nil, err
	}
	parent, err := safefs.Open(dataDir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, probeAncestor(dataDir)
	}
	if err != nil {
		return nil, fmt.Errorf("lease directory: %w", err)
	}
	d, err := safefs.OpenDirAt(parent, network, false)
	if errors.Is(err, fs.ErrNotExist) {
		defer parent.Close()
		return nil, writable(parent)
	}
	parent.Close()
	if err != nil {
		return nil, fmt.Errorf("lease directory: %w", err)
	}
	defer d.Close()
	if err := checkDirOwner(d); err != nil {
		return nil, err
	}
	if err := probeLock(d); err != nil {
		return nil, fmt.Errorf("lease lock: %w", err)
	}
	if err := probeLastReserved(d, sets); err != nil {
		return nil, err
	}
	if err := writable(d); err != nil {
		return nil, err
	}
	return leaseNames(d)
}

// probeAncestor checks the nearest existing ancestor of a missing data
// directory, where ADD would make it.
func probeAncestor(dataDir string) error {
	path := filepath.Clean(dataDir)
	for {
		up := filepath.Dir(path)
		if up == path {
			return fmt.Errorf("lease directory %s: no existing ancestor", dataDir)
		}
		path = up
		d, err := safefs.Open(path)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return fmt.Errorf("lease directory %s: %w", dataDir, err)
		}
		defer d.Close()
		return writable(d)
	}
}

// probeLock checks the lock entry as openLock would use it, without
// creating one: missing, or a regular file of ours (or of the lease
// directory's owner).
func probeLock(d *safefs.Dir) error {
	f, err := openLock(d, 0)
	if errors.Is(err, unix.ENOENT) {
		return nil
	}
	if err == nil {
		f.Close()
	}
	return err
}

// probeLastReserved fails, naming the file, when a last_reserved_ip.<i>
// of one of the first sets range sets is there but cannot be opened as ADD
// opens it (a link, a FIFO): ADD could not record its reservation there.
func probeLastReserved(d *safefs.Dir, sets int) error {
	for i := range sets {
		f, err := d.OpenFile(lastPrefix+strconv.Itoa(i), unix.O_RDONLY, 0)
		if errors.Is(err, unix.ENOENT) {
			continue
		}
		if err != nil {
			return err
		}
		f.Close()
	}
	return nil
}

// writable tells whether a file could be made in d now: the kernel's
// access check for writing (which a read-only mount or an immutable
// directory fails even for root), and a free block and inode on its file
// system.
func writable(d *safefs.Dir) error {
	// Through the descriptor's /proc entry with the plain access(2) check:
	// faccessat2's AT_EMPTY_PATH would answer EPERM for an immutable
	// directory, which x/sys takes for a refused system call and then
	// emulates without AT_EMPTY_PATH (EINVAL).
	if err := unix.Access("/proc/self/fd/"+strconv.Itoa(d.Fd()), unix.W_OK); err != nil {
		return &os.PathError{Op: "access", Path: d.Path(), Err: err}
	}
	var st unix.Statfs_t
	if err := unix.Fstatfs(d.Fd(), &st); err != nil {
		return &os.PathError{Op: "statfs", Path: d.Path(), Err: err}
	}
	if st.Bfree == 0 || (st.Files > 0 && st.Ffree == 0) {
		return &os.PathError{Op: "statfs", Path: d.Path(), Err: unix.ENOSPC}
	}
	return nil
}
