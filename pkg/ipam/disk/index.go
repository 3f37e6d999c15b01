package disk

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/flatcni/plugins/pkg/ipam"
	"github.com/flatcni/plugins/pkg/safefs"
)

// indexPath names an attachment's index file.
func (s *Store) indexPath(a ipam.Attachment) string {
	return filepath.Join(s.attDir, indexKey(a))
}

// indexKey is the file name of an attachment's index entry. Container IDs
// cannot hold '@' (CNI allows [A-Za-z0-9_.-]), so "<id>@<ifname>" is
// unambiguous; names too long for a file name, or that could not be one, are
// hashed.
func indexKey(a ipam.Attachment) string {
	key := a.ContainerID + "@" + a.IfName
	if len(key) > maxIndexKeyLen || strings.ContainsAny(key, "/\x00") || key == "." || key == ".." {
		sum := sha256.Sum256([]byte(key))
		key = "sha256-" + hex.EncodeToString(sum[:])
	}
	return key
}

// held returns the addresses a holds. With a usable index, from a's entry
// (each address checked against its lease file); an entry that is not what
// it should be (unreadable, not a regular file, garbage, or listing an
// address not leased to a) is a damaged cache: the index is rebuilt from
// the lease files once per locked section. Without a usable index, from the
// lease files.
func (s *Store) held(a ipam.Attachment) ([]netip.Addr, error) {
	if !s.locked {
		return nil, fmt.Errorf("lease store %s used without its lock", s.dir)
	}
	key := indexKey(a)
	if e := s.entries[key]; e != nil && e.a == a {
		return e.cur, nil
	}
	if s.ensureIndex() != nil {
		return s.scanFor(a)
	}
	addrs, err := s.readEntry(a)
	if err != nil && !s.rebuilt {
		if s.rebuild() == nil {
			addrs, err = s.readEntry(a)
		}
	}
	if err != nil && s.noIndex == nil {
		s.disable(err)
	}
	if s.noIndex != nil {
		return s.scanFor(a)
	}
	s.entries[key] = &entry{a: a, onDisk: addrs, cur: append([]netip.Addr(nil), addrs...)}
	return addrs, nil
}

// readEntry reads a's index entry and checks it against the lease files.
func (s *Store) readEntry(a ipam.Attachment) ([]netip.Addr, error) {
	b, st, err := s.att.ReadFileStat(indexKey(a), maxIndexSize)
	if errors.Is(err, unix.ENOENT) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	if st.Ctim.Nano() > s.stampTime {
		return nil, fmt.Errorf("%s changed after the index was stamped", s.indexPath(a))
	}
	text, ok := strings.CutPrefix(string(b), indexHeader)
	if !ok {
		return nil, fmt.Errorf("%s: no index header", s.indexPath(a))
	}
	var out []netip.Addr
	for _, line := range strings.Split(text, "\n") {
		if line == "" {
			continue
		}
		addr, err := netip.ParseAddr(line)
		if err != nil {
			return nil, fmt.Errorf("%s: %q is not an address", s.indexPath(a), line)
		}
		if owner, err := s.owner(addr); err != nil || owner != a {
			return nil, fmt.Errorf("%s lists %s, which is not leased to %s", s.indexPath(a), addr, a)
		}
		out = append(out, addr)
	}
	return out, nil
}

// scanFor returns a's leases from the lease files (read once per locked
// section).
func (s *Store) scanFor(a ipam.Attachment) ([]netip.Addr, error) {
	if s.scanned == nil {
		leases, err := scanLeases(s.d)
		if err != nil {
			return nil, err
		}
		s.scanned = map[ipam.Attachment][]netip.Addr{}
		for _, l := range leases {
			s.scanned[l.Attachment] = append(s.scanned[l.Attachment], l.Addr)
		}
	}
	return s.scanned[a], nil
}

// disable stops using the index for this locked section (see noIndex).
func (s *Store) disable(err error) error {
	s.noIndex = fmt.Errorf("lease index of %s: %w", s.dir, err)
	s.entries = map[string]*entry{}
	if s.idx != nil {
		_ = s.idx.RemoveAll(stampName) // whatever it is (a directory too): the next call rebuilds
	}
	return s.noIndex
}

// writeEntry records the addresses an attachment holds (none: removes the
// entry), replacing the entry in one step (rename).
func (s *Store) writeEntry(key string, addrs []netip.Addr) error {
	if len(addrs) == 0 {
		return s.att.Remove(key)
	}
	var b strings.Builder
	b.WriteString(indexHeader)
	for _, addr := range addrs {
		b.WriteString(addr.String())
		b.WriteByte('\n')
	}
	tmp, err := s.writeTemp(s.idx, []byte(b.String()), false)
	if err != nil {
		return err
	}
	if err := unix.Renameat(s.idx.Fd(), tmp, s.att.Fd(), key); err != nil {
		_ = s.idx.Remove(tmp)
		return s.att.PathError("rename", key, err)
	}
	return nil
}

// stamp is what the index was last known to describe: the modification
// and status change times of the lease directory and of the index's entry
// directory (an entry added or removed by hand moves them; setting the
// mtime back by hand moves the ctime), and this boot's ID.
func (s *Store) stamp() (string, error) {
	var b strings.Builder
	for _, d := range []*safefs.Dir{s.d, s.att} {
		st, err := d.Stat()
		if err != nil {
			return "", err
		}
		b.WriteString(strconv.FormatInt(st.Mtim.Nano(), 10) + " " + strconv.FormatInt(st.Ctim.Nano(), 10) + " ")
	}
	return b.String() + bootID(), nil
}

// bootID is this boot's ID, read once per process (a stamp is taken before
// and after each change).
var bootID = sync.OnceValue(func() string {
	boot, _ := os.ReadFile("/proc/sys/kernel/random/boot_id")
	return strings.TrimSpace(string(boot))
})

// writeStamp records the directories as they are now. First it sets their
// mtimes to a whole second, two seconds or more in the past: every later
// change, by anyone, stamps a directory with a later time, so the stamp
// cannot match again after one. Without this, on kernels with coarse
// timestamps (before 6.13, or ext4 with 128-byte inodes: one second) a lease
// written by another plugin within the same clock tick as our change would
// leave the mtime, and so the stamp, as it was: the index would miss it.
// (A clock stepped back by two seconds or more can still hide such a lease;
// a fixed far-past mtime would not, but would make the directory look
// abandoned to clean-up scripts that go by age.)
// chtimes sets a directory's mtime; a test makes it fail.
var chtimes = (*safefs.Dir).SetMtime

func (s *Store) writeStamp() error {
	past := time.Now().Add(-2 * time.Second).Truncate(time.Second)
	for _, d := range []*safefs.Dir{s.d, s.att} {
		// Not the directory's owner (a dataDir shared with another user):
		// the mtime stays as the change left it, and so does the same-tick
		// gap; a stamp that never matched would rebuild the index on every
		// call.
		if err := chtimes(d, past); err != nil && !errors.Is(err, unix.EPERM) && !errors.Is(err, unix.EACCES) {
			return err
		}
	}
	st, err := s.stamp()
	if err != nil {
		return err
	}
	return s.idx.Overwrite(stampName, []byte(st)) // in place: a torn stamp forces a rebuild
}

// openIndex opens .flatcni and .flatcni/a for this locked section, creating
// them when missing (a teardown does not make .flatcni: see
// OpenForTeardown).
func (s *Store) openIndex() error {
	idx, err := safefs.OpenPrivateDirAt(s.d, indexDirName, !s.teardown)
	if err != nil {
		return err
	}
	att, err := safefs.OpenDirAt(idx, attachDirName, true)
	if err != nil {
		idx.Close()
		return err
	}
	s.idx, s.att = idx, att
	return nil
}

// ensureIndex checks, once per locked section, that the index describes
// the lease directory as it is (the stamp), and rebuilds it from the lease
// files otherwise. It returns why the index cannot be used, if it cannot.
func (s *Store) ensureIndex() error {
	if !s.locked {
		return fmt.Errorf("lease store %s used without its lock", s.dir)
	}
	if s.fresh {
		return s.noIndex
	}
	s.fresh = true
	if s.lock == nil && errors.Is(s.lockErr, unix.EROFS) {
		// A read-only file system without a lock file, so without a
		// lock: the lease files are read, nothing of the index is
		// written (writableUnderLock). With the lock file (opened
		// read-only) the index is used as anywhere, and what cannot be
		// written of it disables it.
		s.noIndex = fmt.Errorf("lease index of %s: %w", s.dir, s.lockErr)
		return s.noIndex
	}
	if err := s.openIndex(); err != nil {
		return s.disable(err)
	}
	now, err := s.stamp()
	if err != nil {
		return s.disable(err)
	}
	old, st, err := s.idx.ReadFileStat(stampName, maxSmallFile)
	if err == nil && string(old) == now {
		s.stampTime = st.Mtim.Nano()
		return nil
	}
	if err != nil && !errors.Is(err, unix.ENOENT) && !errors.Is(err, safefs.ErrTooLarge) {
		return s.disable(err) // a link, a FIFO: removed, so the next call rebuilds
	}
	return s.rebuild()
}

// rebuild rewrites the whole index from the lease files (and drops stale
// temporary files). O(number of leases): runs only after foreign changes,
// or on a damaged entry. On failure (a full disk) the index is not used in
// this section.
func (s *Store) rebuild() error {
	s.rebuilt, s.changed = true, true
	s.entries = map[string]*entry{}
	s.stampTime = math.MaxInt64
	if err := s.rebuildEntries(); err != nil {
		return s.disable(fmt.Errorf("rebuild: %w", err))
	}
	return nil
}

func (s *Store) rebuildEntries() error {
	leases, err := s.All()
	if err != nil {
		return err
	}
	want := map[string][]netip.Addr{}
	for _, l := range leases {
		key := indexKey(l.Attachment)
		want[key] = append(want[key], l.Addr)
	}
	existing, err := s.att.Entries()
	if err != nil {
		return err
	}
	for _, e := range existing {
		if e.IsDir() {
			// Not an entry (no one but us writes here): in the way of one.
			if err := s.att.RemoveAll(e.Name()); err != nil {
				return err
			}
			continue
		}
		if _, ok := want[e.Name()]; !ok {
			if err := s.att.Remove(e.Name()); err != nil {
				return err
			}
		}
	}
	for key, addrs := range want {
		if err := s.writeEntry(key, addrs); err != nil {
			return err
		}
	}
	return nil
}

// removeTemps drops temporary files left by writers that died before renaming
// or linking them. A crash there changes nothing the stamp covers, so rebuild
// alone would never see them; All (GC, STATUS, rebuild) calls this. Files of
// a live process are kept: it may be about to link the lease file it
// prepared before taking the lock.
func (s *Store) removeTemps() {
	idx := s.idx
	if idx == nil { // GC and STATUS read the leases before anything else
		var err error
		if idx, err = safefs.OpenPrivateDirAt(s.d, indexDirName, false); err != nil {
			return
		}
		defer idx.Close()
	}
	entries, err := idx.Entries()
	if err != nil {
		return
	}
	for _, e := range entries {
		if pid, ok := tempOwner(e.Name()); ok && !alive(pid) {
			_ = idx.Remove(e.Name())
		}
	}
}

// tempOwner returns the PID in a temporary file's name.
func tempOwner(name string) (int, bool) {
	rest, ok := strings.CutPrefix(name, tmpPrefix)
	if !ok {
		return 0, false
	}
	pid, _, _ := strings.Cut(rest, ".")
	n, err := strconv.Atoi(pid)
	return n, err == nil
}

// alive reports whether a process with this PID exists (another process
// may have taken a dead writer's PID: its files are then kept a while longer).
func alive(pid int) bool {
	if pid <= 0 {
		return false
	}
	if pid == os.Getpid() {
		return true
	}
	err := unix.Kill(pid, 0)
	return err == nil || err == unix.EPERM
}
