package disk

import (
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/flatcni/plugins/pkg/ipam"
	"github.com/flatcni/plugins/pkg/safefs"
)

// ReadLeases reads every lease file of a network's lease directory (All does
// the same under the lock). It takes no lock and changes nothing; a
// directory that is a symbolic link is refused.
func ReadLeases(dir string) ([]ipam.Lease, error) {
	d, err := safefs.OpenDirAt(nil, dir, false)
	if err != nil {
		return nil, fmt.Errorf("read lease directory: %w", err)
	}
	defer d.Close()
	return scanLeases(d)
}

// LeasedIn returns those of prefixes that hold a lease of the network's
// lease directory dir, from the lease files' names alone (no file is
// read, no lock taken): the subnets still in use by the attachments of a
// network whose ranges moved. A missing directory holds none, nor does one
// of another user (ErrForeignStore: no ADD made a lease there).
func LeasedIn(dir string, prefixes []netip.Prefix) ([]netip.Prefix, error) {
	d, err := safefs.OpenDirAt(nil, dir, false)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read lease directory: %w", err)
	}
	defer d.Close()
	if err := checkDirOwner(d); errors.Is(err, ErrForeignStore) {
		return nil, nil
	}
	addrs, err := leaseNames(d)
	if err != nil {
		return nil, err
	}
	var out []netip.Prefix
	for _, addr := range addrs {
		for _, p := range prefixes {
			if p.Contains(addr) && !slices.Contains(out, p) {
				out = append(out, p)
			}
		}
		if len(out) == len(prefixes) {
			break
		}
	}
	return out, nil
}

// AnyLease reports whether the lease directory dir holds a lease file (by
// its name, as leaseNames; no file is read, no lock taken), reading its
// entries only until it finds one. A missing directory is an error (an
// fs.ErrNotExist): it tells nothing of the network's attachments. One of
// another user (ErrForeignStore) holds none of ours.
func AnyLease(dir string) (bool, error) {
	d, err := safefs.OpenDirAt(nil, dir, false)
	if err != nil {
		return false, fmt.Errorf("read lease directory: %w", err)
	}
	defer d.Close()
	if err := checkDirOwner(d); errors.Is(err, ErrForeignStore) {
		return false, nil
	}
	found := false
	err = d.EachEntry(func(e os.DirEntry) bool {
		found = isLeaseName(e)
		return found
	})
	if err != nil {
		return false, fmt.Errorf("read lease directory: %w", err)
	}
	return found, nil
}

// isLeaseName reports whether e is a lease file by its name (leaseNames).
func isLeaseName(e os.DirEntry) bool {
	addr, err := netip.ParseAddr(e.Name())
	return err == nil && e.Type().IsRegular() && addr.Unmap().String() == e.Name()
}

// leaseNames returns the addresses of d's lease files, by their names:
// regular files named by an address, spelled as both plugins write it
// (addr.String() of the unmapped address). Anything else of such a name (a
// link, a FIFO) is no lease, nor is a file of another spelling ("FD00::5",
// "::ffff:10.0.0.9"): it is not what Reserve and Release look up, and taken
// for the address it spells, releasing it would remove the canonical name,
// perhaps another holder's lease.
func leaseNames(d *safefs.Dir) ([]netip.Addr, error) {
	entries, err := d.Entries()
	if err != nil {
		return nil, fmt.Errorf("read lease directory: %w", err)
	}
	var out []netip.Addr
	for _, e := range entries {
		if isLeaseName(e) {
			out = append(out, netip.MustParseAddr(e.Name()))
		}
	}
	return out, nil
}

// scanLeases reads every lease file in d (leaseNames).
func scanLeases(d *safefs.Dir) ([]ipam.Lease, error) {
	addrs, err := leaseNames(d)
	if err != nil {
		return nil, err
	}
	var out []ipam.Lease
	for _, addr := range addrs {
		owner, err := readOwner(d, addr.String())
		if err != nil {
			continue
		}
		out = append(out, ipam.Lease{Addr: addr, Attachment: owner})
	}
	return out, nil
}

// Check reports what is wrong with a network's lease directory, for tests and
// for an operator's inspection: a lease file that names no container (it is
// read as the store reads it: "<id>\r\n<ifname>", or "<id>" from reference
// releases before 0.8), a lease missing from its attachment's index entry, an
// index entry listing an address not leased to that attachment. A missing
// directory has nothing wrong, nor has one without an index (.flatcni):
// only the reference plugin, or DEL and GC, have used it (the first ADD
// makes the index). It takes no lock: run it while no plugin runs.
func Check(dir string) []string {
	leases, err := ReadLeases(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return []string{err.Error()}
	}
	var probs []string
	want := map[string][]string{} // index key -> addresses
	for _, l := range leases {
		if l.ContainerID == "" {
			probs = append(probs, fmt.Sprintf("lease %s names no container", l.Addr))
			continue
		}
		key := indexKey(l.Attachment)
		want[key] = append(want[key], l.Addr.String())
	}
	if _, err := os.Lstat(filepath.Join(dir, indexDirName)); errors.Is(err, fs.ErrNotExist) {
		slices.Sort(probs)
		return probs
	}
	got := map[string][]string{}
	att, err := safefs.OpenDirAt(nil, filepath.Join(dir, indexDirName, attachDirName), false)
	var entries []os.DirEntry
	if err == nil {
		defer att.Close()
		entries, _ = att.Entries()
	}
	for _, e := range entries {
		b, err := att.ReadFile(e.Name(), maxIndexSize)
		if err != nil {
			probs = append(probs, fmt.Sprintf("index %s: %v", e.Name(), err))
			continue
		}
		if !strings.HasPrefix(string(b), indexHeader) {
			probs = append(probs, fmt.Sprintf("index %s has no header: %q", e.Name(), b))
			continue
		}
		got[e.Name()] = strings.Fields(strings.TrimPrefix(string(b), indexHeader))
	}
	for key, addrs := range want {
		for _, a := range addrs {
			if !slices.Contains(got[key], a) {
				probs = append(probs, fmt.Sprintf("lease %s of %s missing from the index", a, key))
			}
		}
	}
	for key, addrs := range got {
		for _, a := range addrs {
			if !slices.Contains(want[key], a) {
				probs = append(probs, fmt.Sprintf("index %s lists %s, which is not leased to it", key, a))
			}
		}
	}
	slices.Sort(probs)
	return probs
}

// TempFiles lists temporary files left in a network's lease directory by
// writers that were killed (GC, STATUS and index rebuilds remove them).
func TempFiles(dir string) []string {
	entries, _ := os.ReadDir(filepath.Join(dir, indexDirName))
	var out []string
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), tmpPrefix) {
			out = append(out, e.Name())
		}
	}
	return out
}
