package disk

import (
	"encoding/hex"
	"errors"
	"fmt"
	"hash/fnv"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/flatcni/plugins/pkg/ipam"
)

// indexPath names an attachment's index file. Container IDs cannot hold '@'
// (CNI allows [A-Za-z0-9_.-]), so "<id>@<ifname>" is unambiguous; names too long
// for a file name are hashed (FNV-1a, 128 bits).
func (s *Store) indexPath(a ipam.Attachment) string {
	return filepath.Join(s.attDir, indexKey(a))
}

// indexKey is the file name of an attachment's index entry.
func indexKey(a ipam.Attachment) string {
	key := a.ContainerID + "@" + a.IfName
	if len(key) > maxIndexKeyLen || strings.ContainsAny(key, "/\x00") || key == "." || key == ".." {
		// FNV-1a, 128 bits: no collision in practice, and unlike crypto/sha256
		// it adds nothing to the plugin's start-up.
		h := fnv.New128a()
		h.Write([]byte(key))
		key = "fnv128a-" + hex.EncodeToString(h.Sum(nil))
	}
	return key
}

// indexed returns the addresses the index lists for an attachment that are
// still leased to it (each is checked against its lease file).
func (s *Store) indexed(a ipam.Attachment) ([]netip.Addr, error) {
	b, err := os.ReadFile(s.indexPath(a))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read lease index: %w", err)
	}
	var out []netip.Addr
	for _, line := range strings.Split(strings.TrimPrefix(string(b), indexHeader), "\n") {
		addr, err := netip.ParseAddr(strings.TrimSpace(line))
		if err != nil {
			continue
		}
		if owner, err := s.owner(addr); err == nil && owner == a {
			out = append(out, addr)
		}
	}
	return out, nil
}

// writeIndex records the addresses an attachment holds (none: removes the entry).
func (s *Store) writeIndex(a ipam.Attachment, addrs []netip.Addr) error {
	path := s.indexPath(a)
	if len(addrs) == 0 {
		if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("lease index: %w", err)
		}
		return nil
	}
	var b strings.Builder
	b.WriteString(indexHeader)
	for _, addr := range addrs {
		b.WriteString(addr.String())
		b.WriteByte('\n')
	}
	if err := s.writeAtomic(path, []byte(b.String())); err != nil {
		return fmt.Errorf("lease index: %w", err)
	}
	return nil
}

// stamp is what the index was last known to describe: the lease directory's
// mtime and this boot's ID.
func (s *Store) stamp() (string, error) {
	fi, err := os.Stat(s.dir)
	if err != nil {
		return "", err
	}
	return strconv.FormatInt(fi.ModTime().UnixNano(), 10) + " " + bootID(), nil
}

// bootID is this boot's ID, read once per process (a stamp is taken before
// and after each change).
var bootID = sync.OnceValue(func() string {
	boot, _ := os.ReadFile("/proc/sys/kernel/random/boot_id")
	return strings.TrimSpace(string(boot))
})

// writeStamp records the directory as it is now. First it sets the
// directory's mtime to a whole second, two seconds or more in the past: every
// later change, by anyone, stamps the directory with a later time, so the
// stamp cannot match again after one. Without this, on kernels with coarse
// timestamps (before 6.13, or ext4 with 128-byte inodes: one second) a lease
// written by another plugin within the same clock tick as our change would
// leave the mtime, and so the stamp, as it was: the index would miss it.
// (A clock stepped back by two seconds or more can still hide such a lease;
// a fixed far-past mtime would not, but would make the directory look
// abandoned to clean-up scripts that go by age.)
// chtimes is os.Chtimes; a test makes it fail.
var chtimes = os.Chtimes

func (s *Store) writeStamp() error {
	past := time.Now().Add(-2 * time.Second).Truncate(time.Second)
	if err := chtimes(s.dir, time.Time{}, past); err != nil && !errors.Is(err, fs.ErrPermission) {
		return err
	}
	// Not the directory's owner (a dataDir shared with another user): the
	// mtime stays as the change left it, and so does the same-tick gap; a
	// stamp that never matched would rebuild the index on every call.
	st, err := s.stamp()
	if err != nil {
		return err
	}
	return overwrite(filepath.Join(s.idxDir, stampName), []byte(st))
}

// ensureIndex rebuilds the index from the lease files unless the stamp shows
// that nobody else changed the directory since our last change. Once per locked
// section.
func (s *Store) ensureIndex() error {
	if s.fresh {
		return nil
	}
	if !s.locked {
		return fmt.Errorf("lease store %s used without its lock", s.dir)
	}
	now, err := s.stamp()
	if err != nil {
		return fmt.Errorf("lease directory: %w", err)
	}
	if old, err := os.ReadFile(filepath.Join(s.idxDir, stampName)); err == nil && string(old) == now {
		s.fresh = true
		return nil
	}
	if err := s.rebuild(); err != nil {
		return fmt.Errorf("rebuild lease index of %s: %w", s.dir, err)
	}
	s.fresh, s.changed = true, true
	return nil
}

// rebuild rewrites the whole index from the lease files (All also drops
// stale temporary files). O(number of leases): runs only after foreign changes.
func (s *Store) rebuild() error {
	leases, err := s.All()
	if err != nil {
		return err
	}
	want := map[string][]netip.Addr{}
	atts := map[string]ipam.Attachment{}
	for _, l := range leases {
		p := s.indexPath(l.Attachment)
		want[p] = append(want[p], l.Addr)
		atts[p] = l.Attachment
	}
	if err := os.MkdirAll(s.attDir, 0o755); err != nil {
		return err
	}
	existing, err := os.ReadDir(s.attDir)
	if err != nil {
		return err
	}
	for _, e := range existing {
		p := filepath.Join(s.attDir, e.Name())
		if _, ok := want[p]; !ok {
			os.Remove(p)
		}
	}
	for p, addrs := range want {
		if err := s.writeIndex(atts[p], addrs); err != nil {
			return err
		}
	}
	return nil
}

// removeTemps drops temporary files left by writers that died before renaming
// or linking them. A crash there changes nothing the stamp covers, so rebuild
// alone would never see them; All (GC, STATUS, rebuild) calls this. The
// caller holds the lock: nobody is writing them.
func (s *Store) removeTemps() {
	entries, err := os.ReadDir(s.idxDir)
	if err != nil {
		return
	}
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), tmpPrefix) {
			os.Remove(filepath.Join(s.idxDir, e.Name()))
		}
	}
}
