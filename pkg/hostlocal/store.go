package hostlocal

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/containernetworking/cni/pkg/types"

	"github.com/flatcni/plugins/pkg/config"
	"github.com/flatcni/plugins/pkg/ipam"
	"github.com/flatcni/plugins/pkg/ipam/disk"
)

// withStore opens the network's lease store, runs fn under its lock, and turns
// storage failures into CNI I/O errors (code 5).
func withStore[T any](c *config.IPAM, fn func(ipam.Store) (T, error)) (T, error) {
	var zero T
	s, err := disk.Open(c.DataDir, c.Network)
	if err != nil {
		return zero, ioError(c, err)
	}
	defer s.Close()
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
// on a network that never had one have nothing to do and create nothing).
func storeExists(c *config.IPAM) bool {
	dir := c.DataDir
	if dir == "" {
		dir = disk.DefaultDataDir
	}
	_, err := os.Stat(filepath.Join(dir, c.Network))
	return !errors.Is(err, fs.ErrNotExist)
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
