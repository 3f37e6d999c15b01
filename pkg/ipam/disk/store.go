package disk

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/flatcni/plugins/pkg/ipam"
	"github.com/flatcni/plugins/pkg/safefs"
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

	// Read bounds: a lease holds a container ID (an environment variable,
	// at most 128 KiB) and an interface name; an index entry one address
	// per range set.
	maxLeaseSize = 1 << 20
	maxIndexSize = 64 << 20
	maxSmallFile = 256 // stamp, last_reserved_ip
)

// Store is the on-disk lease store of one network. It is not safe for use by
// several goroutines; several processes share it through the lock file.
type Store struct {
	dir    string      // <dataDir>/<network>
	idxDir string      // <dir>/.flatcni
	attDir string      // <dir>/.flatcni/a
	d      *safefs.Dir // the lease directory
	lock   *os.File    // nil when a teardown found it unusable (lockErr)
	locked bool
	seq    int

	// teardown: opened by OpenForTeardown, which makes no index where
	// there is none. lockErr: why the lock entry cannot be used (the
	// lease directory is locked instead), or EROFS: a read-only file
	// system without a lock file (nothing is locked).
	teardown bool
	lockErr  error

	// A temporary lease file written and fsynced before the lock is taken
	// (Prepare), linked under the lock to each address reserved.
	prepIdx *safefs.Dir
	prepTmp string
	prepFor ipam.Attachment

	// State of one locked section.
	idx, att *safefs.Dir // .flatcni and .flatcni/a, opened anew in each section
	fresh    bool        // the index has been checked against the directory
	rebuilt  bool        // ... and rebuilt from the lease files
	changed  bool        // we changed the directory
	// stampTime: entries whose status changed after it (ns) were not
	// written by us before the stamp (an entry rewritten in place leaves
	// the directories' mtimes alone): the stamp file's mtime when the index
	// was found fresh, no limit once rebuilt in this section.
	stampTime int64
	// noIndex says why the index cannot be used in this section (a full
	// disk, an entry that is not what it should be): lookups read the lease
	// files instead and nothing is written to the index, whose stamp is
	// removed so that the next call rebuilds it.
	noIndex error
	entries map[string]*entry                // index entries read in this section, by key
	scanned map[ipam.Attachment][]netip.Addr // every lease by holder, when noIndex
	// syncPending: lease files were linked or removed; the lease directory
	// is fsynced once, after the lock is released and before the caller
	// reports success.
	syncPending bool
	done        []string // temporary files of this process to remove after the lock
}

// entry is an attachment's index entry: as on disk and as changed in this
// locked section (written by Flush or Unlock).
type entry struct {
	a      ipam.Attachment
	onDisk []netip.Addr
	cur    []netip.Addr
}

var _ ipam.Store = (*Store)(nil)

// Open opens (creating when missing) the lease directory of a network. The
// data directory is the administrator's and may be reached through symbolic
// links; below it nothing is: <network>, its lock file and everything else
// must be what they should be, or the error names the path. The lock file
// must be ours (owned by this user): a file someone else made there could
// be held by them for ever.
func Open(dataDir, network string) (*Store, error) { return openStore(dataDir, network, false) }

// OpenForTeardown is Open for DEL and GC, which must not fail for ever, nor
// wait for ever, nor change what is not theirs. A lock entry that cannot be
// used (a symbolic link, a FIFO, a directory, a file of another user) is
// left as it is: ADD keeps failing on it, naming it, and teardowns lock
// the lease directory itself instead. Nobody else can hold the lock of the
// network meanwhile: every writer opens the lock by its name, without
// following links, and fails on anything else. Nor does a teardown make a
// lease index where there is none (a directory that is not a lease store,
// or one only the reference plugin has used): it reads the lease files
// then, and changes only those of the attachments it releases. On a
// read-only file system it locks the lock file (opened read-only, as
// always), or nothing where there is none: a teardown with nothing to
// release succeeds there.
func OpenForTeardown(dataDir, network string) (*Store, error) {
	return openStore(dataDir, network, true)
}

func openStore(dataDir, network string, teardown bool) (*Store, error) {
	if dataDir == "" {
		dataDir = DefaultDataDir
	}
	if err := validName("network name", network); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dataDir, 0o755); err != nil {
		return nil, fmt.Errorf("lease directory: %w", err)
	}
	parent, err := safefs.Open(dataDir)
	if err != nil {
		return nil, fmt.Errorf("lease directory: %w", err)
	}
	d, err := safefs.OpenDirAt(parent, network, true)
	parent.Close()
	if err != nil {
		return nil, fmt.Errorf("lease directory: %w", err)
	}
	if err := checkDirOwner(d); err != nil {
		d.Close()
		return nil, err
	}
	s := &Store{dir: d.Path(), d: d, idxDir: filepath.Join(d.Path(), indexDirName), teardown: teardown}
	s.attDir = filepath.Join(s.idxDir, attachDirName)
	lock, err := openLock(d, unix.O_CREAT)
	switch {
	case err == nil:
		s.lock = lock
	case teardown && errors.Is(err, unix.EROFS):
		// No lock file on a read-only file system: nobody writes a
		// lease there, and the teardown only reads (an attachment with
		// nothing to release succeeds). It locks nothing (the
		// directory's lock anyone who can open it could hold for
		// ever): writableUnderLock refuses any change.
		s.lockErr = err // s.lock stays nil: Lock locks nothing
	case teardown && unusableLock(err):
		s.lockErr = err // s.lock stays nil: Lock locks the directory
	default:
		d.Close()
		return nil, fmt.Errorf("lease lock: %w", err)
	}
	return s, nil
}

// ErrForeignStore: the lease directory belongs to another user, on a file
// system that does not map this user to another (squashing):
// someone made it beforehand, in a dataDir others can write in. Its owner
// could hold its lock for ever or choose the leases, so ADD refuses it; no
// ADD made a lease of ours there, so DEL and GC have none to release.
var ErrForeignStore = errors.New("is owned by another user, not a lease store of ours")

// checkDirOwner fails with ErrForeignStore unless the open lease directory
// d belongs to this user or lies on a file system that maps this user to
// another (squashing).
func checkDirOwner(d *safefs.Dir) error {
	st, err := d.Stat()
	if err != nil {
		return fmt.Errorf("lease directory: %w", err)
	}
	if int(st.Uid) == os.Geteuid() || squashing(d.Fd()) {
		return nil
	}
	return fmt.Errorf("lease directory %s %w (uid %d): refusing it; remove it, or choose a dataDir only this user can write in", d.Path(), ErrForeignStore, st.Uid)
}

// squashing tells a file system that may give this user's files to another
// user: a network or user-space one, whose server maps owners (NFS's
// root_squash, CephFS's and SMB's squash or uid= options, a FUSE file
// system's own rules). A variable for tests.
var squashing = rootSquashing

func rootSquashing(fd int) bool {
	var sfs unix.Statfs_t
	if unix.Fstatfs(fd, &sfs) != nil {
		return false
	}
	switch uint32(sfs.Type) {
	case unix.NFS_SUPER_MAGIC, unix.CEPH_SUPER_MAGIC, unix.CIFS_SUPER_MAGIC, unix.SMB_SUPER_MAGIC, unix.SMB2_SUPER_MAGIC,
		unix.FUSE_SUPER_MAGIC, unix.V9FS_MAGIC, unix.AFS_SUPER_MAGIC, unix.AFS_FS_MAGIC:
		return true
	}
	return false
}

// errNotOurs: the lock file belongs to another user.
var errNotOurs = errors.New("is not owned by this user, refusing it")

// openLock opens the network's lock file, creating it when missing with
// create (unix.O_CREAT; 0 opens an existing one only), which must be a
// regular file of ours (or, on a squashing file system, of the lease
// directory's owner). It is opened read-only, as the reference opens it:
// flock(2) needs no write access, so an existing one is locked on a
// read-only file system too (a teardown there holds the writers' lock).
func openLock(d *safefs.Dir, create int) (*os.File, error) {
	f, err := d.OpenFile(lockName, unix.O_RDONLY|create, 0o600)
	if err != nil {
		return nil, err
	}
	if err := checkLockOwner(d, f); err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

// checkLockOwner fails unless the open lock file f belongs to this user or
// to the lease directory's owner (checkDirOwner: that is this user but on
// a squashing file system).
func checkLockOwner(d *safefs.Dir, f *os.File) error {
	var st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil {
		return d.PathError("stat", lockName, err)
	}
	if int(st.Uid) != os.Geteuid() {
		// Or the lease directory's owner's: on a file system that maps
		// root to another user (NFS's root_squash) both are that user's.
		dst, err := d.Stat()
		if err != nil || dst.Uid != st.Uid {
			return d.PathError("open", lockName, fmt.Errorf("%w (uid %d)", errNotOurs, st.Uid))
		}
	}
	return nil
}

// writableUnderLock fails when the store was "locked" without a lock (a
// read-only file system without a lock file), and the lock file can be
// opened now: the file system was made writable since, and writers lock
// the file. The teardown then fails (the runtime's retry locks the file)
// rather than change leases beside an ADD.
func (s *Store) writableUnderLock() error {
	if s.lock != nil || !errors.Is(s.lockErr, unix.EROFS) {
		return nil
	}
	f, err := openLock(s.d, unix.O_CREAT)
	if err != nil {
		return nil // still read-only: a write fails on its own
	}
	f.Close()
	return fmt.Errorf("lease store %s became writable while read without a lock: try again", s.dir)
}

// unusableLock tells a lock entry that is there but cannot be used from a
// failure to open one.
func unusableLock(err error) bool {
	return errors.Is(err, safefs.ErrSymlink) || errors.Is(err, safefs.ErrNotRegular) || errors.Is(err, errNotOurs)
}

// Dir returns the network's lease directory.
func (s *Store) Dir() string { return s.dir }

// Close releases the lock (if held) and closes the store.
func (s *Store) Close() error {
	if s.locked {
		_ = s.Unlock()
	}
	if s.prepTmp != "" {
		_ = s.prepIdx.Remove(s.prepTmp)
	}
	s.prepIdx.Close()
	s.d.Close()
	if s.lock == nil {
		return nil
	}
	return s.lock.Close()
}

// Prepare writes the lease file of the attachment (its content does not
// depend on the address) and makes it durable before the lock is taken, so
// that this fsync is not paid while other callers wait. Optional: Reserve
// writes it under the lock otherwise.
func (s *Store) Prepare(a ipam.Attachment) error { return s.prepare(a, false) }

// prepare writes a durable temporary lease file for a in .flatcni (opened
// anew when reopen is set or not yet open).
func (s *Store) prepare(a ipam.Attachment, reopen bool) error {
	if s.prepTmp != "" {
		s.done = append(s.done, s.prepTmp)
		s.prepTmp = ""
	}
	if s.prepIdx == nil || reopen {
		s.prepIdx.Close()
		s.prepIdx = nil
		idx, err := safefs.OpenPrivateDirAt(s.d, indexDirName, true)
		if err != nil {
			return fmt.Errorf("lease index: %w", err)
		}
		s.prepIdx = idx
	}
	name, err := s.writeTemp(s.prepIdx, leaseContent(a), true)
	if err != nil {
		return err
	}
	s.prepTmp, s.prepFor = name, a
	return nil
}

// Lock takes the network's lock (shared with the reference plugin). The
// file locked must be the one the name holds once the lock is granted (an
// administrator may have removed it meanwhile, and a lock on a removed file
// orders nothing with whoever opens the name now): the name is then opened
// again. Without a usable lock file (lockErr), a teardown locks the lease
// directory instead; on a read-only file system without one it locks
// nothing (see openStore).
func (s *Store) Lock() error {
	// Read-only without a lock file (EROFS): nothing to order with.
	if s.lock == nil && !errors.Is(s.lockErr, unix.EROFS) {
		if err := flock(s.d.Fd(), unix.LOCK_EX); err != nil {
			return s.d.PathError("lock", ".", err)
		}
		// Repaired since (an administrator removed the entry, and an
		// ADD made the lock file): the others lock that, so this store
		// does too, and lets the directory go.
		if f, err := openLock(s.d, unix.O_CREAT); err == nil {
			s.lock, s.lockErr = f, nil
			_ = unix.Flock(s.d.Fd(), unix.LOCK_UN)
		}
	}
	for s.lock != nil {
		if err := flock(int(s.lock.Fd()), unix.LOCK_EX); err != nil {
			return fmt.Errorf("lock %s: %w", s.lock.Name(), err)
		}
		if s.d.Holds(lockName, s.lock) {
			break
		}
		lock, err := openLock(s.d, unix.O_CREAT)
		if err != nil {
			return fmt.Errorf("lease lock: %w", err)
		}
		s.lock.Close() // releases the lock on the replaced file
		s.lock = lock
	}
	s.locked, s.fresh, s.rebuilt, s.changed = true, false, false, false
	s.noIndex, s.entries, s.scanned = nil, map[string]*entry{}, nil
	return nil
}

// flock is flock(2), retried when interrupted.
func flock(fd, how int) error {
	for {
		if err := unix.Flock(fd, how); err != unix.EINTR {
			return err
		}
	}
}

// Flush writes the index entries changed in this locked section. An error
// means the reservations made are not recorded: the caller undoes them.
func (s *Store) Flush() error {
	if s.noIndex != nil {
		return s.noIndex
	}
	return s.flush()
}

func (s *Store) flush() error {
	var errs []error
	for key, e := range s.entries {
		if slices.Equal(e.cur, e.onDisk) {
			continue
		}
		if err := s.writeEntry(key, e.cur); err != nil {
			errs = append(errs, err)
			continue
		}
		e.onDisk = slices.Clone(e.cur)
	}
	return errors.Join(errs...)
}

// Unlock writes what is left of the index and records the directory's state
// for it (when we changed it), releases the lock, and then makes the lease
// files added or removed durable, with one fsync of the lease directory: the
// caller reports success only after that, and others need not wait for it.
func (s *Store) Unlock() error {
	if s.changed {
		if s.noIndex == nil && s.flush() == nil {
			_ = s.writeStamp() // a stale stamp costs a rebuild next time, nothing more
		} else if s.idx != nil {
			_ = s.idx.RemoveAll(stampName) // the index no longer describes the directory
		}
	}
	s.idx.Close()
	s.att.Close()
	s.idx, s.att, s.entries, s.scanned = nil, nil, nil, nil
	s.locked = false
	var err error
	switch {
	case s.lock != nil:
		err = unix.Flock(int(s.lock.Fd()), unix.LOCK_UN)
	case !errors.Is(s.lockErr, unix.EROFS):
		err = unix.Flock(s.d.Fd(), unix.LOCK_UN)
	}
	if s.syncPending {
		err = errors.Join(err, s.d.Sync())
		s.syncPending = false
	}
	if s.prepIdx != nil {
		for _, name := range s.done {
			_ = s.prepIdx.Remove(name)
		}
	}
	if slices.Contains(s.done, s.prepTmp) {
		s.prepTmp = ""
	}
	s.done = nil
	return err
}

// Reserve links a lease file for addr into place unless the name is taken
// (by anything: a lease, or an entry that is not one).
func (s *Store) Reserve(a ipam.Attachment, addr netip.Addr, setIndex int) (bool, error) {
	if err := s.ensureIndex(); err != nil {
		return false, err
	}
	name := addr.String()
	if taken, err := s.d.Exists(name); err != nil || taken {
		return false, err
	}
	if _, err := s.held(a); err != nil {
		return false, err
	}
	e := s.entries[indexKey(a)]
	if e == nil { // the index became unusable in the lookup
		return false, s.noIndex
	}
	ok, err := s.linkLease(a, name)
	if err != nil || !ok {
		return false, err
	}
	s.changed = true
	// In place: a torn last_reserved_ip only moves where the next search
	// starts (the reference writes it in place too).
	if err := s.d.Overwrite(lastPrefix+strconv.Itoa(setIndex), []byte(name)); err != nil {
		// Take the lease back: a failed reservation (ENOSPC, EIO) never
		// leaves a lease that nobody asked for.
		err = fmt.Errorf("record last reserved address: %w", err)
		if rerr := s.d.Remove(name); rerr != nil {
			err = fmt.Errorf("%w (and removing lease %s failed: %v)", err, name, rerr)
		}
		return false, err
	}
	e.cur = append(e.cur, addr)
	return true, nil
}

// leaseContent is what a lease file holds: "<containerID>\r\n<ifname>".
func leaseContent(a ipam.Attachment) []byte {
	return []byte(strings.TrimSpace(a.ContainerID) + lineBreak + a.IfName)
}

// linkLease links a durable temporary file holding a's lease to name in the
// lease directory; false when name exists. The prepared file (Prepare) is
// used when it is a's; else, or when it is gone (a GC of a process that
// took us for dead), or has as many links as the file system allows, one is
// written now.
func (s *Store) linkLease(a ipam.Attachment, name string) (bool, error) {
	for retry := false; ; retry = true {
		if s.prepTmp == "" || s.prepFor != a {
			if err := s.prepare(a, retry); err != nil {
				return false, err
			}
		}
		err := unix.Linkat(s.prepIdx.Fd(), s.prepTmp, s.d.Fd(), name, 0)
		switch {
		case err == nil:
			s.syncPending = true
			if !slices.Contains(s.done, s.prepTmp) {
				s.done = append(s.done, s.prepTmp) // removed after the lock, once linked
			}
			return true, nil
		case err == unix.EEXIST:
			return false, nil
		case (err == unix.ENOENT || err == unix.EMLINK) && !retry:
			s.done = append(s.done, s.prepTmp)
			s.prepTmp = ""
		default:
			return false, s.d.PathError("link", name, err)
		}
	}
}

// LastReserved reads last_reserved_ip.<setIndex>.
func (s *Store) LastReserved(setIndex int) netip.Addr {
	b, err := s.d.ReadFile(lastPrefix+strconv.Itoa(setIndex), maxSmallFile)
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
	return slices.Clone(held), err
}

// lookup finds the attachment's leases and the holder they are kept under:
// the attachment itself, or for leases written by reference releases before
// 0.8 (container ID only), the container ID alone.
func (s *Store) lookup(a ipam.Attachment) (ipam.Attachment, []netip.Addr, error) {
	held, err := s.held(a)
	if err != nil || len(held) > 0 || a.IfName == "" {
		return a, held, err
	}
	old := ipam.Attachment{ContainerID: a.ContainerID}
	held, err = s.held(old)
	return old, held, err
}

// Release removes the attachment's lease files and index entry.
func (s *Store) Release(a ipam.Attachment) ([]netip.Addr, error) {
	key, held, err := s.lookup(a)
	if err != nil || len(held) == 0 {
		return nil, err
	}
	held = slices.Clone(held)
	return held, s.drop(key, held, held)
}

// ReleaseAddrs removes those of addrs that the attachment holds and keeps
// its other leases.
func (s *Store) ReleaseAddrs(a ipam.Attachment, addrs []netip.Addr) error {
	key, held, err := s.lookup(a)
	if err != nil || len(held) == 0 {
		return err
	}
	return s.drop(key, slices.Clone(held), addrs)
}

// drop removes the lease files of those of addrs in held (key's leases)
// and records what key still holds.
func (s *Store) drop(key ipam.Attachment, held, addrs []netip.Addr) error {
	if err := s.writableUnderLock(); err != nil {
		return err
	}
	gone := make(map[netip.Addr]bool, len(addrs))
	for _, addr := range addrs {
		gone[addr] = true
	}
	var keep []netip.Addr
	var errs []error
	for _, addr := range held {
		if !gone[addr] {
			keep = append(keep, addr)
			continue
		}
		s.changed, s.syncPending = true, true
		if err := s.d.Remove(addr.String()); err != nil {
			errs = append(errs, fmt.Errorf("release %s: %w", addr, err))
			keep = append(keep, addr)
		}
	}
	if s.noIndex != nil {
		s.scanned[key] = keep
		if len(keep) == 0 && s.att != nil {
			_ = s.att.Remove(indexKey(key)) // needs no space; the rest waits for a rebuild
		}
	} else if e := s.entries[indexKey(key)]; e != nil {
		e.cur = keep
	}
	return errors.Join(errs...)
}

// All reads every lease file, and removes temporary files left by crashed writers.
func (s *Store) All() ([]ipam.Lease, error) {
	if s.locked {
		s.removeTemps()
	}
	return scanLeases(s.d)
}

// owner reads the holder of a lease file.
func (s *Store) owner(addr netip.Addr) (ipam.Attachment, error) {
	return readOwner(s.d, addr.String())
}

func readOwner(d *safefs.Dir, name string) (ipam.Attachment, error) {
	b, err := d.ReadFile(name, maxLeaseSize)
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

// writeTemp writes data to a new temporary file in idx (.flatcni) and
// returns its name.
func (s *Store) writeTemp(idx *safefs.Dir, data []byte, durable bool) (string, error) {
	for {
		s.seq++
		name := tmpPrefix + strconv.Itoa(os.Getpid()) + "." + strconv.Itoa(s.seq)
		// O_EXCL: a symbolic link of that name fails too, never followed.
		f, err := idx.OpenFile(name, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL, 0o600)
		if errors.Is(err, unix.EEXIST) {
			continue // left by a crashed process with our PID
		}
		if err != nil {
			return "", err // names the file already
		}
		_, err = f.Write(data)
		if err == nil && durable {
			err = f.Sync()
		}
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			_ = idx.Remove(name)
			return "", err
		}
		return name, nil
	}
}

// validName rejects names that could make a path leave the data directory.
func validName(what, name string) error {
	if name == "" || name == "." || name == ".." || strings.ContainsAny(name, "/\x00") || name == indexDirName {
		return fmt.Errorf("invalid %s %q", what, name)
	}
	return nil
}
