package disk

import (
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/flatcni/plugins/pkg/ipam"
)

// DefaultDataDir is where leases live unless the configuration says otherwise.
const DefaultDataDir = "/var/lib/cni/networks"

const (
	lockName       = "lock"
	lastPrefix     = "last_reserved_ip."
	lineBreak      = "\r\n"
	indexDirName   = ".flatcni"
	attachDirName  = "a"
	stampName      = "stamp"
	tmpPrefix      = "tmp."
	indexHeader    = "flatcni-index v1\n"
	maxIndexKeyLen = 200
)

// Store is the on-disk lease store of one network. It is not safe for use by
// several goroutines; several processes share it through the lock file.
type Store struct {
	dir     string   // <dataDir>/<network>
	idxDir  string   // <dir>/.flatcni
	attDir  string   // <dir>/.flatcni/a
	lock    *os.File // <dir>/lock
	locked  bool
	fresh   bool // the index has been checked against the directory in this locked section
	changed bool // we changed the directory in this locked section
	// syncPending: lease files were linked or removed since the last fsync
	// of the lease directory.
	syncPending bool
	seq         int
}

var _ ipam.Store = (*Store)(nil)

// Open opens (creating when missing) the lease directory of a network.
func Open(dataDir, network string) (*Store, error) {
	if dataDir == "" {
		dataDir = DefaultDataDir
	}
	if err := validName("network name", network); err != nil {
		return nil, err
	}
	dir := filepath.Join(dataDir, network)
	s := &Store{dir: dir, idxDir: filepath.Join(dir, indexDirName)}
	s.attDir = filepath.Join(s.idxDir, attachDirName)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("lease directory: %w", err)
	}
	f, err := os.OpenFile(filepath.Join(dir, lockName), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("lease lock: %w", err)
	}
	s.lock = f
	return s, nil
}

// Dir returns the network's lease directory.
func (s *Store) Dir() string { return s.dir }

// Close releases the lock (if held) and closes the lock file.
func (s *Store) Close() error {
	if s.locked {
		_ = s.Unlock()
	}
	return s.lock.Close()
}

// Lock takes the network's lock (shared with the reference plugin).
func (s *Store) Lock() error {
	for {
		err := unix.Flock(int(s.lock.Fd()), unix.LOCK_EX)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return fmt.Errorf("lock %s: %w", s.lock.Name(), err)
		}
		break
	}
	s.locked, s.fresh, s.changed = true, false, false
	return nil
}

// Unlock records the directory's state for the index (when we changed it) and
// releases the lock.
//
// Lease files added or removed under the lock are made durable here, with one
// fsync of the lease directory for all of them, before the lock is released
// and before the caller reports success.
func (s *Store) Unlock() error {
	var err error
	if s.syncPending {
		err = syncDir(s.dir)
		s.syncPending = false
	}
	if s.changed && s.fresh {
		_ = s.writeStamp() // a stale stamp costs a rebuild next time, nothing more
	}
	s.locked = false
	return errors.Join(err, unix.Flock(int(s.lock.Fd()), unix.LOCK_UN))
}

// Reserve writes the lease file for addr unless it exists.
func (s *Store) Reserve(a ipam.Attachment, addr netip.Addr, setIndex int) (bool, error) {
	if err := s.ensureIndex(); err != nil {
		return false, err
	}
	path := filepath.Join(s.dir, addr.String())
	if _, err := os.Lstat(path); err == nil {
		return false, nil
	} else if !errors.Is(err, fs.ErrNotExist) {
		return false, fmt.Errorf("lease %s: %w", path, err)
	}
	s.changed = true
	ok, err := s.createExclusive(path, []byte(strings.TrimSpace(a.ContainerID)+lineBreak+a.IfName), true)
	if err == nil && ok {
		err = s.recordReserved(a, addr, setIndex)
	}
	if err != nil && ok {
		// The lease file is in place but its bookkeeping is not: take it back,
		// so that a failed reservation (ENOSPC, EIO) never leaves a lease that
		// nobody's index lists.
		if rerr := os.Remove(path); rerr != nil && !errors.Is(rerr, fs.ErrNotExist) {
			err = fmt.Errorf("%w (and removing lease %s failed: %v)", err, path, rerr)
		}
		return false, err
	}
	return ok, err
}

// recordReserved writes last_reserved_ip.<setIndex> and the index entry of a
// lease just created.
func (s *Store) recordReserved(a ipam.Attachment, addr netip.Addr, setIndex int) error {
	if err := overwrite(filepath.Join(s.dir, lastPrefix+strconv.Itoa(setIndex)), []byte(addr.String())); err != nil {
		return fmt.Errorf("record last reserved address: %w", err)
	}
	held, err := s.indexed(a)
	if err != nil {
		return err
	}
	return s.writeIndex(a, append(held, addr))
}

// CheckWritable writes and removes a temporary file in the store.
func (s *Store) CheckWritable() error {
	if err := s.ensureIndex(); err != nil {
		return err
	}
	s.changed = true // creating the index directory, if missing, changes the lease directory
	tmp, err := s.writeTemp(nil, true)
	if err != nil {
		return err
	}
	return os.Remove(tmp)
}

// LastReserved reads last_reserved_ip.<setIndex>.
func (s *Store) LastReserved(setIndex int) netip.Addr {
	b, err := os.ReadFile(filepath.Join(s.dir, lastPrefix+strconv.Itoa(setIndex)))
	if err != nil {
		return netip.Addr{}
	}
	addr, err := netip.ParseAddr(strings.TrimSpace(string(b)))
	if err != nil {
		return netip.Addr{}
	}
	return addr.Unmap()
}

// Leases returns the addresses the attachment holds, checked against the lease files.
func (s *Store) Leases(a ipam.Attachment) ([]netip.Addr, error) {
	_, held, err := s.lookup(a)
	return held, err
}

// lookup finds the attachment's leases and the index key they are kept under:
// the attachment itself, or for leases written by reference releases before
// 0.8 (container ID only), the container ID alone.
func (s *Store) lookup(a ipam.Attachment) (ipam.Attachment, []netip.Addr, error) {
	if err := s.ensureIndex(); err != nil {
		return a, nil, err
	}
	held, err := s.indexed(a)
	if err != nil || len(held) > 0 || a.IfName == "" {
		return a, held, err
	}
	old := ipam.Attachment{ContainerID: a.ContainerID}
	held, err = s.indexed(old)
	return old, held, err
}

// Release removes the attachment's lease files and index entry.
func (s *Store) Release(a ipam.Attachment) ([]netip.Addr, error) {
	key, held, err := s.lookup(a)
	if err != nil || len(held) == 0 {
		return nil, err
	}
	s.changed = true
	var errs []error
	for _, addr := range held {
		if err := os.Remove(filepath.Join(s.dir, addr.String())); err != nil && !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, fmt.Errorf("release %s: %w", addr, err))
		}
	}
	s.syncPending = true
	if err := os.Remove(s.indexPath(key)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		errs = append(errs, fmt.Errorf("index: %w", err))
	}
	return held, errors.Join(errs...)
}

// ReleaseAddrs removes those of addrs that the attachment holds and rewrites
// its index entry with the rest.
func (s *Store) ReleaseAddrs(a ipam.Attachment, addrs []netip.Addr) error {
	key, held, err := s.lookup(a)
	if err != nil || len(held) == 0 {
		return err
	}
	drop := map[netip.Addr]bool{}
	for _, addr := range addrs {
		drop[addr] = true
	}
	var keep []netip.Addr
	var errs []error
	for _, addr := range held {
		if !drop[addr] {
			keep = append(keep, addr)
			continue
		}
		s.changed = true
		if err := os.Remove(filepath.Join(s.dir, addr.String())); err != nil && !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, fmt.Errorf("release %s: %w", addr, err))
			keep = append(keep, addr)
		}
	}
	if len(keep) == len(held) {
		return errors.Join(errs...)
	}
	s.syncPending = true
	if err := s.writeIndex(key, keep); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// All reads every lease file, and removes temporary files left by crashed writers.
func (s *Store) All() ([]ipam.Lease, error) {
	if s.locked {
		s.removeTemps()
	}
	return ReadLeases(s.dir)
}

// owner reads the holder of a lease file.
func (s *Store) owner(addr netip.Addr) (ipam.Attachment, error) {
	return readOwner(s.dir, addr)
}

func readOwner(dir string, addr netip.Addr) (ipam.Attachment, error) {
	b, err := os.ReadFile(filepath.Join(dir, addr.String()))
	if err != nil {
		return ipam.Attachment{}, err
	}
	return parseLease(b), nil
}

// parseLease reads "<id>\r\n<ifname>" (or "<id>" from old releases).
func parseLease(b []byte) ipam.Attachment {
	text := strings.TrimSpace(string(b))
	id, ifname, _ := strings.Cut(text, lineBreak)
	if ifname == "" {
		id, ifname, _ = strings.Cut(text, "\n")
	}
	return ipam.Attachment{ContainerID: strings.TrimSpace(id), IfName: strings.TrimSpace(ifname)}
}

// createExclusive writes data to a temporary file, optionally fsyncs it, and
// links it to path; false when path exists.
func (s *Store) createExclusive(path string, data []byte, durable bool) (bool, error) {
	tmp, err := s.writeTemp(data, durable)
	if err != nil {
		return false, err
	}
	defer os.Remove(tmp)
	if err := os.Link(tmp, path); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return false, nil
		}
		return false, fmt.Errorf("lease %s: %w", path, err)
	}
	if durable {
		s.syncPending = true // the directory is fsynced once, at Unlock
	}
	return true, nil
}

// overwrite writes data over path's content in place (creating path when
// missing), for the files whose torn content is harmless because they are
// only read under the lock and only steer: a torn last_reserved_ip moves
// where the next search starts (the reference writes it in place too), a torn
// stamp forces a rebuild of the index. Renaming a new file over an existing
// one would make ext4 (auto_da_alloc) start writing the new file out at once:
// 0.1-0.4 ms per rename here, on every ADD and DEL. Truncating to zero first
// would do the same at close, so the data is written first and the file is
// cut only when it was longer.
func overwrite(path string, data []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE, 0o600)
	if err != nil {
		return err
	}
	fi, err := f.Stat()
	if err == nil {
		_, err = f.WriteAt(data, 0)
	}
	if err == nil && fi.Size() > int64(len(data)) {
		err = f.Truncate(int64(len(data)))
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// writeAtomic replaces path's content in one step (rename).
func (s *Store) writeAtomic(path string, data []byte) error {
	tmp, err := s.writeTemp(data, false)
	if err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return err
	}
	return nil
}

// writeTemp writes data to a new temporary file in the index directory.
func (s *Store) writeTemp(data []byte, durable bool) (string, error) {
	for {
		s.seq++
		name := filepath.Join(s.idxDir, tmpPrefix+strconv.Itoa(os.Getpid())+"."+strconv.Itoa(s.seq))
		f, err := os.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if errors.Is(err, fs.ErrExist) {
			continue // left by a crashed process with our PID
		}
		if errors.Is(err, fs.ErrNotExist) {
			if err := os.MkdirAll(s.attDir, 0o755); err != nil {
				return "", fmt.Errorf("index directory: %w", err)
			}
			continue
		}
		if err != nil {
			return "", fmt.Errorf("write %s: %w", name, err)
		}
		_, err = f.Write(data)
		if err == nil && durable {
			err = f.Sync()
		}
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			os.Remove(name)
			return "", err // an *os.PathError: it names the file already
		}
		return name, nil
	}
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("sync %s: %w", dir, err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("sync %s: %w", dir, err)
	}
	return nil
}

// validName rejects names that could make a path leave the data directory.
func validName(what, name string) error {
	if name == "" || name == "." || name == ".." || strings.ContainsAny(name, "/\x00") || name == indexDirName {
		return fmt.Errorf("invalid %s %q", what, name)
	}
	return nil
}
