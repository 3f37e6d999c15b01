package hostlocal

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"syscall"

	"github.com/containernetworking/cni/pkg/types"

	"github.com/flatcni/plugins/pkg/config"
	"github.com/flatcni/plugins/pkg/ipam"
	"github.com/flatcni/plugins/pkg/ipam/disk"
)

// storeUse says what a verb needs from the lease store.
type storeUse struct {
	// prepare: ADD's attachment, whose lease file is written and made
	// durable before the lock is taken.
	prepare *ipam.Attachment
	// teardown: DEL and GC, which must not fail for ever on a lock file
	// that is not one (see disk.OpenForTeardown).
	teardown bool
}

// withStore opens the network's lease store, runs fn under its lock, and turns
// storage failures into CNI I/O errors (code 5).
func withStore[T any](c *config.IPAM, use storeUse, fn func(ipam.Store) (T, error)) (T, error) {
	var zero T
	open := disk.Open
	if use.teardown {
		open = disk.OpenForTeardown
	}
	s, err := open(c.DataDir, c.Network)
	if use.teardown && errors.Is(err, disk.ErrForeignStore) {
		// No ADD made a lease of ours there.
		fmt.Fprintf(os.Stderr, "host-local: network %q: %v: no lease of ours to release, nothing there changed\n", c.Network, err)
		return zero, nil
	}
	if err != nil {
		return zero, ioError(c, err)
	}
	defer s.Close()
	if use.prepare != nil {
		// Best effort: Reserve writes the lease file under the lock otherwise.
		_ = s.Prepare(*use.prepare)
	}
	if err := s.Lock(); err != nil {
		return zero, ioError(c, err)
	}
	out, err := fn(s)
	if uerr := s.Unlock(); err == nil && uerr != nil {
		err = ioError(c, uerr)
	}
	return out, ioError(c, err)
}

// storeExists reports whether the network has a lease directory (DEL and GC
// on a network that never had one, or never could, have nothing to do and
// create nothing).
// Something else in its place (a symbolic link, a file) holds no lease of
// ours and is never followed: DEL and GC succeed, saying so on stderr.
func storeExists(c *config.IPAM) bool {
	path := leaseDir(c)
	fi, err := os.Lstat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return false
	}
	if errno := syscall.Errno(0); errors.As(err, &errno) && (errno == syscall.ENOTDIR || errno == syscall.ENAMETOOLONG || errno == syscall.EINVAL) {
		// A dataDir that is a file, a name longer than a file name may
		// be, a path no system call takes (a NUL byte in it): no ADD
		// can have made a lease there.
		fmt.Fprintf(os.Stderr, "host-local: network %q: no lease directory can be at %s (%v): no lease to release\n", c.Network, path, errno)
		return false
	}
	if err == nil && !fi.IsDir() {
		fmt.Fprintf(os.Stderr, "host-local: network %q: lease directory %s is not a directory (%s), ignored: no lease to release\n", c.Network, path, fi.Mode().Type())
		return false
	}
	return true
}

// ioError wraps a plain error (the store's) as a CNI I/O error; CNI errors pass.
func ioError(c *config.IPAM, err error) error {
	if err == nil {
		return nil
	}
	var te *types.Error
	if errors.As(err, &te) {
		return te
	}
	return types.NewError(types.ErrIOFailure, fmt.Sprintf("network %q lease store: %v", c.Network, err), "")
}
