package firewall

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/flatcni/plugins/pkg/safefs"
)

// The claims index lets an ADD check its host ports, and a DEL find its
// mappings, without listing every mapping of the node (which costs a few
// microseconds per nftables element and ~30 us per iptables rule read
// through netlink). It lives next to the ports lock, one directory per
// network namespace (a node; the tests run many in one /run):
//
//	<lockDir>/ports-index.<backend>.<dev>-<inode of the netns>/
//	    complete                  written last by a rebuild; no marker, no index
//	    claims/<ip4|ip6>-<proto>-<hostPort>   the claims on one host port
//	    owners/<network>/<sha256(owner tag)[:32]>  one attachment's mappings
//
// Each file holds lines "<network> <owner tag> <proto> <hostIP or *>
// <hostPort> <containerIP> <containerPort>". The rules stay the truth; the
// index may claim more than they hold, never less: claims are written
// before the rules are added and removed after the rules are gone. A claim
// that conflicts is confirmed against the rules (a full listing, on a
// conflict only) and dropped when it is stale. A missing index, or one with
// a file that is not what it should be, is rebuilt from one full listing.
// A host port is the node's whichever backend publishes it: an ADD's
// check (Publish, Conflict) reads the claims on its ports in the other
// backend's index too, when that exists (one lstat when not), and confirms
// a conflict there against that backend's rules (peersConflict).
// Everything is read, written and removed under the ports lock (one lock
// file for every backend's index), through safefs (never following a link;
// regular files of bounded size only; RemoveAll never descends into a
// mount point, and fails there instead).
const (
	indexDirPrefix  = "ports-index."
	indexMarker     = "complete"
	indexMarkerText = "flatcni ports index v1\n"
	indexFileMax    = 1 << 20
)

// indexAt is where a backend's index lives: each backend has its own, as a
// rebuild or a confirmation reads the rules of one backend only (an index
// shared by both would take the other's mappings for stale and drop them).
type indexAt struct {
	lockDir, backend string
	// node is the node's ID, "" until looked up (nodeID).
	node string
	// peers are the other backends, whose claims an ADD's conflict check
	// (lockedIndex, indexConflict) respects too: a host port is the
	// node's, whichever backend publishes it. None for DEL and GC.
	peers []indexPeer
}

// indexPeer is another backend seen from a Publish or Conflict: its name
// and how to list its mappings (the rules its claims are confirmed
// against and its index rebuilt from).
type indexPeer struct {
	backend string
	list    func() ([]Published, error)
}

// name is the index directory's name in lockDir.
func (at indexAt) name() (string, error) {
	if at.node == "" {
		return indexName(at.backend)
	}
	return indexDirPrefix + at.backend + "." + at.node, nil
}

// withNode returns at (and so its peers) with the node looked up once.
func (at indexAt) withNode() indexAt {
	if at.node == "" {
		at.node, _ = nodeID() // "": looked up again by name
	}
	return at
}

// peer returns where peer p's index lives: its own directory, beside at's
// in the same lock directory (the one ports lock guards both).
func (at indexAt) peer(p indexPeer) indexAt {
	return indexAt{lockDir: at.lockDir, backend: p.backend, node: at.node}
}

// there reports whether the index directory may exist: false only when
// one lstat found nothing (no port was published with the backend on the
// node since lockDir was emptied: it holds no claim).
func (at indexAt) there() bool {
	name, err := at.name()
	if err != nil {
		return true
	}
	_, err = os.Lstat(filepath.Join(at.lockDir, name))
	return !errors.Is(err, fs.ErrNotExist)
}

// errIndexDamaged marks an index file that cannot be trusted.
var errIndexDamaged = errors.New("ports index damaged")

// portIndex is an open claims index.
type portIndex struct {
	dir, claims, owners *safefs.Dir
	complete            bool
}

// indexName is the node's index directory name.
func indexName(backend string) (string, error) {
	node, err := nodeID()
	if err != nil {
		return "", err
	}
	return indexDirPrefix + backend + "." + node, nil
}

// nodeID names the node's network namespace: "<dev>-<inode>" of the
// calling thread's (a test switches one thread).
func nodeID() (string, error) {
	var st unix.Stat_t
	err := unix.Stat("/proc/thread-self/ns/net", &st)
	if err != nil {
		err = unix.Stat("/proc/self/ns/net", &st)
	}
	if err != nil {
		return "", fmt.Errorf("network namespace: %w", err)
	}
	return fmt.Sprintf("%d-%d", st.Dev, st.Ino), nil
}

// PortsIndexed reports whether lockDir holds a claims index of either
// backend for the node (indexed), and whether one records an attachment of
// network (recorded: its directory of owner records; iptables-legacy's
// mappings too, which netlink does not show). Not indexed means no port was
// published on the node since lockDir was emptied (a reboot empties it, and
// takes the rules too): Publish makes the index before it writes a rule,
// and nothing removes it but a clean-up of lockDir. A few stats, where
// asking the backends whether they hold a rule set reads netlink. When it
// cannot tell: indexed, not recorded (the caller asks the backends).
func PortsIndexed(lockDir, network string) (indexed, recorded bool) {
	node, err := nodeID()
	if err != nil {
		return true, false
	}
	for _, backend := range Names("") {
		dir := filepath.Join(lockDir, indexDirPrefix+backend+"."+node)
		if _, err := os.Lstat(dir); errors.Is(err, fs.ErrNotExist) {
			continue
		}
		indexed = true
		if (indexAt{lockDir: lockDir, backend: backend, node: node}).records(network) {
			return true, true
		}
	}
	return indexed, false
}

// records reports whether the index holds a record of the network's
// attachments (owners/<network>): a rule set of ours published its
// mappings. An lstat (and the node's ID, a stat, unless known).
func (at indexAt) records(network string) bool {
	if validateName(network) != nil {
		return false
	}
	name, err := at.name()
	if err != nil {
		return false
	}
	_, err = os.Lstat(filepath.Join(at.lockDir, name, "owners", network))
	return err == nil
}

// openSub opens directory name in parent; with create, a missing one is
// made and anything else in its place (a link, a file) removed first, and
// made reports it.
func openSub(parent *safefs.Dir, name string, create bool) (d *safefs.Dir, made bool, err error) {
	if create {
		existed, err := parent.Exists(name)
		if err != nil {
			return nil, false, err
		}
		made = !existed
	}
	d, err = safefs.OpenDirAt(parent, name, create)
	if err != nil && create && (errors.Is(err, safefs.ErrSymlink) || errors.Is(err, safefs.ErrNotDir)) {
		if err := parent.Remove(name); err != nil {
			return nil, false, err
		}
		d, err = safefs.OpenDirAt(parent, name, true)
		made = true
	}
	return d, made, err
}

// openIndex opens the node's index in lockDir. Without create, a missing
// index is returned incomplete (or an error).
func openIndex(at indexAt, create bool) (*portIndex, error) {
	name, err := at.name()
	if err != nil {
		return nil, err
	}
	top, err := openLockDir(at.lockDir, false) // ours, as for the locks
	if err != nil {
		return nil, err
	}
	defer top.Close()
	x := &portIndex{}
	if x.dir, _, err = openSub(top, name, create); err != nil {
		return nil, err
	}
	// A directory of claims or records made anew (gone, or something else
	// in its place) leaves the index incomplete, whatever the marker says.
	var madeClaims, madeOwners bool
	if x.claims, madeClaims, err = openSub(x.dir, "claims", create); err == nil {
		x.owners, madeOwners, err = openSub(x.dir, "owners", create)
	}
	if err != nil {
		x.close()
		return nil, err
	}
	b, err := x.dir.ReadFile(indexMarker, 64)
	x.complete = err == nil && string(b) == indexMarkerText && !madeClaims && !madeOwners
	return x, nil
}

func (x *portIndex) close() {
	x.dir.Close()
	x.claims.Close()
	x.owners.Close()
}

// invalidate makes the next locked use rebuild the index (best effort: a
// failure to is said on stderr).
func (x *portIndex) invalidate(why error) {
	x.complete = false
	fmt.Fprintf(os.Stderr, "ports index: %v; it will be rebuilt\n", why)
	if err := x.dir.RemoveAll(indexMarker); err != nil {
		fmt.Fprintf(os.Stderr, "ports index: %v\n", err)
	}
}

// rebuild rewrites the whole index from all, the node's mappings.
func (x *portIndex) rebuild(all []Published) error {
	if err := x.dir.RemoveAll(indexMarker); err != nil {
		return err
	}
	for _, sub := range []struct {
		d    **safefs.Dir
		name string
	}{{&x.claims, "claims"}, {&x.owners, "owners"}} {
		(*sub.d).Close()
		*sub.d = nil
		if err := x.dir.RemoveAll(sub.name); err != nil {
			return err
		}
		d, _, err := openSub(x.dir, sub.name, true)
		if err != nil {
			return err
		}
		*sub.d = d
	}
	byKey := map[string][]Published{}
	type ownerKey struct {
		net   string
		owner Attachment
	}
	byOwner := map[ownerKey][]Mapping{}
	for _, p := range all {
		byKey[claimKey(p.Mapping)] = append(byKey[claimKey(p.Mapping)], p)
		k := ownerKey{p.Network, p.Owner}
		byOwner[k] = append(byOwner[k], p.Mapping)
	}
	for key, ps := range byKey {
		if err := writeIndexFile(x.claims, key, ps); err != nil {
			return err
		}
	}
	for k, maps := range byOwner {
		if err := x.setOwner(k.net, k.owner, maps); err != nil {
			return err
		}
	}
	if err := writeFileAt(x.dir, indexMarker, []byte(indexMarkerText)); err != nil {
		return err
	}
	x.complete = true
	return nil
}

// claimKey names the claim file of m's host port.
func claimKey(m Mapping) string {
	f := "ip4"
	if m.family() == ipv6 {
		f = "ip6"
	}
	return f + "-" + m.Protocol + "-" + strconv.Itoa(int(m.HostPort))
}

// ownerFile names the record of owner in its network's directory.
func ownerFile(owner Attachment) string {
	sum := sha256.Sum256([]byte(owner.tag()))
	return hex.EncodeToString(sum[:16])
}

func formatIndexLine(p Published) string {
	host := "*"
	if p.HostIP.IsValid() {
		host = p.HostIP.String()
	}
	return fmt.Sprintf("%s %s %s %s %d %s %d\n", p.Network, p.Owner.tag(), p.Protocol, host, p.HostPort, p.ContainerIP, p.ContainerPort)
}

func parseIndexLine(s string) (Published, bool) {
	f := strings.Split(s, " ")
	if len(f) != 7 || validateName(f[0]) != nil {
		return Published{}, false
	}
	owner, ok := parseTag(f[1])
	if !ok || owner.validate() != nil {
		return Published{}, false
	}
	hp, err1 := strconv.ParseUint(f[4], 10, 16)
	cp, err2 := strconv.ParseUint(f[6], 10, 16)
	cip, err3 := netip.ParseAddr(f[5])
	if err1 != nil || err2 != nil || err3 != nil {
		return Published{}, false
	}
	p := Published{Network: f[0], Owner: owner, Mapping: Mapping{Protocol: f[2], HostPort: uint16(hp), ContainerIP: cip, ContainerPort: uint16(cp)}}
	if f[3] != "*" {
		if p.HostIP, err1 = netip.ParseAddr(f[3]); err1 != nil {
			return Published{}, false
		}
	}
	return p, p.validate() == nil
}

// readIndexFile reads the lines of name in d (none when it is missing);
// anything unexpected is errIndexDamaged.
func readIndexFile(d *safefs.Dir, name string, valid func(Published) bool) ([]Published, error) {
	b, err := d.ReadFile(name, indexFileMax)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("%w: %w", errIndexDamaged, err)
	}
	s, ok := strings.CutSuffix(string(b), "\n")
	if !ok || s == "" {
		return nil, fmt.Errorf("%w: %s: not a list of claims", errIndexDamaged, filepath.Join(d.Path(), name))
	}
	var out []Published
	for _, line := range strings.Split(s, "\n") {
		p, ok := parseIndexLine(line)
		if !ok || !valid(p) {
			return nil, fmt.Errorf("%w: %s: bad line %q", errIndexDamaged, filepath.Join(d.Path(), name), line)
		}
		out = append(out, p)
	}
	return out, nil
}

// writeIndexFile replaces name in d by ps (removes it for none).
func writeIndexFile(d *safefs.Dir, name string, ps []Published) error {
	if len(ps) == 0 {
		return d.Remove(name)
	}
	var b strings.Builder
	for _, p := range ps {
		b.WriteString(formatIndexLine(p))
	}
	return writeFileAt(d, name, []byte(b.String()))
}

// writeFileAt replaces name in d atomically (a new file renamed over it;
// rename replaces a link itself, never its target).
func writeFileAt(d *safefs.Dir, name string, data []byte) error {
	tmp := ".tmp-" + strconv.Itoa(os.Getpid())
	if err := d.RemoveAll(tmp); err != nil {
		return err
	}
	f, err := d.OpenFile(tmp, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	_, err = f.Write(data)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = unix.Renameat(d.Fd(), tmp, d.Fd(), name)
	}
	if err != nil {
		d.Remove(tmp)
		return d.PathError("write", name, err)
	}
	return nil
}

func (x *portIndex) readClaims(key string) ([]Published, error) {
	return readIndexFile(x.claims, key, func(p Published) bool { return claimKey(p.Mapping) == key })
}

// claimKeys returns the claim files of maps' host ports, each once, in
// the order of maps.
func claimKeys(maps []Mapping) []string {
	var keys []string
	for _, m := range maps {
		if key := claimKey(m); !slices.Contains(keys, key) {
			keys = append(keys, key)
		}
	}
	return keys
}

// claimsOf returns the claims on the host ports of maps.
func (x *portIndex) claimsOf(maps []Mapping) ([]Published, error) {
	var out []Published
	for _, key := range claimKeys(maps) {
		ps, err := x.readClaims(key)
		if err != nil {
			return nil, err
		}
		out = append(out, ps...)
	}
	return out, nil
}

// updateClaims rewrites the claims of owner on network for maps' ports:
// add or drop (network, owner, m) for each m.
func (x *portIndex) updateClaims(network string, owner Attachment, maps []Mapping, add bool) error {
	byKey := map[string][]Mapping{}
	for _, m := range maps {
		byKey[claimKey(m)] = append(byKey[claimKey(m)], m)
	}
	for key, ms := range byKey {
		ps, err := x.readClaims(key)
		if err != nil {
			return err
		}
		n := len(ps)
		for _, m := range ms {
			p := Published{Network: network, Owner: owner, Mapping: m}
			i := slices.Index(ps, p)
			switch {
			case add && i < 0:
				ps = append(ps, p)
			case !add && i >= 0:
				ps = slices.Delete(ps, i, i+1)
			}
		}
		if len(ps) != n {
			if err := writeIndexFile(x.claims, key, ps); err != nil {
				return err
			}
		}
	}
	return nil
}

// owned returns the recorded mappings of owner on network.
func (x *portIndex) owned(network string, owner Attachment) ([]Mapping, error) {
	d, err := safefs.OpenDirAt(x.owners, network, false)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("%w: %w", errIndexDamaged, err)
	}
	defer d.Close()
	ps, err := readIndexFile(d, ownerFile(owner), func(p Published) bool { return p.Network == network && p.Owner == owner })
	return mappingsOf(ps), err
}

// setOwner records maps as owner's on network (none: removes the record,
// and the network's directory with its last record).
func (x *portIndex) setOwner(network string, owner Attachment, maps []Mapping) error {
	d, _, err := openSub(x.owners, network, len(maps) > 0)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	defer d.Close()
	ps := make([]Published, len(maps))
	for i, m := range maps {
		ps[i] = Published{Network: network, Owner: owner, Mapping: m}
	}
	if err := writeIndexFile(d, ownerFile(owner), ps); err != nil {
		return err
	}
	if len(maps) == 0 {
		if err := unix.Unlinkat(x.owners.Fd(), network, unix.AT_REMOVEDIR); err != nil && err != unix.ENOTEMPTY && err != unix.EEXIST && err != unix.ENOENT {
			return x.owners.PathError("remove", network, err)
		}
	}
	return nil
}

// networkEmpty reports whether no attachment of network has a record.
func (x *portIndex) networkEmpty(network string) bool {
	ok, err := x.owners.Exists(network)
	return err == nil && !ok
}

// held returns the mappings among maps whose claim names owner on network.
func (x *portIndex) held(network string, owner Attachment, maps []Mapping) ([]Mapping, error) {
	claims, err := x.claimsOf(maps)
	if err != nil {
		return nil, err
	}
	var out []Mapping
	for _, m := range maps {
		if slices.Contains(claims, Published{Network: network, Owner: owner, Mapping: m}) {
			out = append(out, m)
		}
	}
	return out, nil
}

// claim records, before the rules change, that owner on network will hold
// maps (its record keeps old too until settle).
func (x *portIndex) claim(network string, owner Attachment, old, maps []Mapping) error {
	all := slices.Clone(old)
	for _, m := range maps {
		if !slices.Contains(all, m) {
			all = append(all, m)
		}
	}
	if err := x.setOwner(network, owner, all); err != nil {
		return err
	}
	return x.updateClaims(network, owner, maps, true)
}

// settle records, after the rules changed, that owner on network holds
// maps instead of old. A failure only leaves claims in excess: it
// invalidates the index and is no error. When maps kept all of old (an
// ADD's usual case), claim's record already says just that: nothing to
// write.
func (x *portIndex) settle(network string, owner Attachment, old, maps []Mapping) {
	var gone []Mapping
	for _, m := range old {
		if !slices.Contains(maps, m) {
			gone = append(gone, m)
		}
	}
	if len(gone) == 0 && len(maps) > 0 {
		return
	}
	err := x.setOwner(network, owner, maps)
	if err == nil {
		err = x.updateClaims(network, owner, gone, false)
	}
	if err != nil {
		x.invalidate(err)
	}
}

// fixPorts rewrites the claims on maps' host ports from all (the node's
// mappings, just listed), and the records of the attachments whose claims
// there were stale, with their claims on the other ports their records
// named and the rules no longer hold (left, nothing would remove those: the
// network's last DEL and GC reconcile its records only).
func (x *portIndex) fixPorts(maps []Mapping, all []Published) error {
	for _, key := range claimKeys(maps) {
		old, err := x.readClaims(key)
		if err != nil {
			return err
		}
		var truth []Published
		for _, p := range all {
			if claimKey(p.Mapping) == key {
				truth = append(truth, p)
			}
		}
		if err := writeIndexFile(x.claims, key, truth); err != nil {
			return err
		}
		for _, p := range old {
			if slices.Contains(truth, p) {
				continue
			}
			var mine []Mapping
			for _, q := range all {
				if q.Network == p.Network && q.Owner == p.Owner {
					mine = append(mine, q.Mapping)
				}
			}
			// A damaged record is rewritten all the same (its claims
			// elsewhere, unknown, stay as a claim in excess may).
			recorded, _ := x.owned(p.Network, p.Owner)
			if err := x.setOwner(p.Network, p.Owner, mine); err != nil {
				return err
			}
			gone := slices.DeleteFunc(recorded, func(m Mapping) bool { return slices.Contains(mine, m) || claimKey(m) == key })
			if err := x.updateClaims(p.Network, p.Owner, gone, false); err != nil {
				return err
			}
		}
	}
	return nil
}

// reconcile makes the records of network, and their claims, those of kept
// (the network's mappings, just listed after GC or the last DEL).
func (x *portIndex) reconcile(network string, kept []Published) error {
	truth := map[Attachment][]Mapping{}
	for _, p := range kept {
		truth[p.Owner] = append(truth[p.Owner], p.Mapping)
	}
	recorded := map[Attachment][]Mapping{}
	d, err := safefs.OpenDirAt(x.owners, network, false)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	if err == nil {
		entries, err := d.Entries()
		if err == nil {
			for _, e := range entries {
				var ps []Published
				if ps, err = readIndexFile(d, e.Name(), func(p Published) bool { return p.Network == network }); err != nil {
					break
				}
				same := func(p Published) bool { return p.Owner == ps[0].Owner }
				if len(ps) > 0 && ownerFile(ps[0].Owner) == e.Name() && !slices.ContainsFunc(ps, func(p Published) bool { return !same(p) }) {
					recorded[ps[0].Owner] = mappingsOf(ps)
				} else if err = d.Remove(e.Name()); err != nil {
					break
				}
			}
		}
		d.Close()
		if err != nil {
			return err
		}
	}
	for owner, maps := range recorded {
		want := truth[owner]
		var gone []Mapping
		for _, m := range maps {
			if !slices.Contains(want, m) {
				gone = append(gone, m)
			}
		}
		if err := x.updateClaims(network, owner, gone, false); err != nil {
			return err
		}
		if err := x.setOwner(network, owner, want); err != nil {
			return err
		}
	}
	for owner, maps := range truth {
		if _, ok := recorded[owner]; !ok {
			if err := x.claim(network, owner, nil, maps); err != nil {
				return err
			}
		}
	}
	return nil
}

// lockedIndex opens the index under the ports lock for a Publish of maps
// by owner on network: rebuilt from list when missing or damaged, and
// with the claims on maps' ports confirmed against list when one
// conflicts. A true conflict is a *PortConflictError. The peers' claims
// on maps' ports are checked too (peersConflict).
func lockedIndex(at indexAt, network string, owner Attachment, maps []Mapping, list func() ([]Published, error)) (*portIndex, error) {
	at = at.withNode()
	x, err := ownLockedIndex(at, network, owner, maps, list)
	if err != nil || len(at.peers) == 0 {
		return x, err
	}
	if err := peersConflict(at, network, owner, maps); err != nil {
		x.close()
		return nil, err
	}
	return x, nil
}

// peersConflict is lockedIndex's check of maps against the claims of the
// other backends (at.peers), under the ports lock: the one lock file in
// lockDir that every backend takes around its index, so it orders this
// with the peer's own Publish, Unpublish and Retain, and no second lock is
// taken. A peer without an index on the node holds nothing: one lstat.
// Otherwise its index is used as its own Publish uses it (ownLockedIndex:
// rebuilt from the peer's rules when incomplete or damaged, a conflicting
// claim confirmed against them, a stale one dropped): its rules are listed
// only then. A true conflict is a *PortConflictError naming the peer.
func peersConflict(at indexAt, network string, owner Attachment, maps []Mapping) error {
	for _, p := range at.peers {
		pat := at.peer(p)
		claims, there, ok := peerClaims(pat, maps)
		var claimed error // a conflict the peer's claims show, unconfirmed
		if ok {
			claimed = FindConflict(claims, network, owner, maps)
		}
		if !there || ok && claimed == nil {
			continue
		}
		x, err := ownLockedIndex(pat, network, owner, maps, p.list)
		var ce *PortConflictError
		switch {
		case errors.As(err, &ce):
			return peerError(p, err)
		case err != nil && claimed != nil:
			// The peer's rules cannot be read to confirm its claim:
			// the claim holds (an index never claims less than the
			// rules hold).
			return peerError(p, claimed)
		case err != nil:
			// The other backend cannot be read now (its command
			// gone) and its index cannot be used: this network's ADD
			// does not fail for it; its own conflicts were checked.
			fmt.Fprintf(os.Stderr, "portMappings: %v: ports not checked against it\n", peerError(p, err))
			continue
		}
		x.close()
	}
	return nil
}

// peerError names peer p in err: a conflict with one of its mappings, or
// why its claims could not be read.
func peerError(p indexPeer, err error) error {
	var ce *PortConflictError
	if errors.As(err, &ce) {
		ce.Backend = p.backend
		return ce
	}
	return fmt.Errorf("the claims of ipMasqBackend %s: %w", p.backend, err)
}

// peersFree is Conflict's check of maps against the peers' claims without
// the lock: true when each peer has no index on the node (one lstat) or a
// complete one without a claim on maps' ports; anything else is for the
// locked check (peersConflict).
func peersFree(at indexAt, network string, owner Attachment, maps []Mapping) bool {
	for _, p := range at.peers {
		claims, there, ok := peerClaims(at.peer(p), maps)
		if there && (!ok || FindConflict(claims, network, owner, maps) != nil) {
			return false
		}
	}
	return true
}

// peerClaims reads the claims on maps' host ports in the peer index at,
// all that an ADD's check needs of it: there is false when the peer has
// no index on the node (one lstat), ok false when the index cannot be
// used as it is (incomplete or damaged: the peer's own locked path,
// ownLockedIndex, mends it). Lighter than openIndex, as it runs on every
// publishing ADD once the peer has an index: its marker is looked at (a
// regular file of the marker's size), not read, and its records are not
// opened; a claim file is read only when there is one.
func peerClaims(at indexAt, maps []Mapping) (claims []Published, there, ok bool) {
	if !at.there() {
		return nil, false, true
	}
	name, err := at.name()
	if err != nil {
		return nil, true, false
	}
	top, err := openLockDir(at.lockDir, false) // ours, as for the locks
	if err != nil {
		return nil, true, false
	}
	defer top.Close()
	x := &portIndex{}
	defer x.close()
	if x.dir, err = safefs.OpenDirAt(top, name, false); err != nil {
		return nil, true, false
	}
	var st unix.Stat_t
	if unix.Fstatat(x.dir.Fd(), indexMarker, &st, unix.AT_SYMLINK_NOFOLLOW) != nil ||
		st.Mode&unix.S_IFMT != unix.S_IFREG || st.Size != int64(len(indexMarkerText)) {
		return nil, true, false
	}
	if x.claims, err = safefs.OpenDirAt(x.dir, "claims", false); err != nil {
		return nil, true, false
	}
	claims, err = x.claimsOf(maps)
	return claims, true, err == nil
}

// ownLockedIndex is lockedIndex on at's own index alone.
func ownLockedIndex(at indexAt, network string, owner Attachment, maps []Mapping, list func() ([]Published, error)) (*portIndex, error) {
	x, err := openIndex(at, true)
	if err != nil {
		return nil, fmt.Errorf("ports index: %w", err)
	}
	for try := 0; ; try++ {
		if !x.complete {
			all, err := list()
			if err != nil {
				x.close()
				return nil, err
			}
			if err := x.rebuild(all); err != nil {
				x.close()
				return nil, fmt.Errorf("rebuild ports index: %w", err)
			}
		}
		claims, err := x.claimsOf(maps)
		if err != nil && try == 0 {
			x.invalidate(err)
			continue
		}
		if err == nil && FindConflict(claims, network, owner, maps) != nil {
			// Confirm: the rules are the truth.
			var all []Published
			if all, err = list(); err == nil {
				if err = FindConflict(all, network, owner, maps); err == nil {
					err = x.fixPorts(maps, all)
				}
			}
		}
		if err != nil {
			x.close()
			return nil, err
		}
		return x, nil
	}
}

// indexConflict is Ports.Conflict: the claims on maps' ports, read
// without the lock. Anything else than a clean "free" (a conflict to
// confirm, a missing or damaged index) goes the way of Publish, under the
// lock: the rules decide and the index is mended.
func indexConflict(at indexAt, network string, owner Attachment, maps []Mapping, list func() ([]Published, error)) error {
	at = at.withNode()
	if x, err := openIndex(at, false); err == nil {
		claims, err := x.claimsOf(maps)
		complete := x.complete
		x.close()
		if complete && err == nil && FindConflict(claims, network, owner, maps) == nil && peersFree(at, network, owner, maps) {
			return nil
		}
	}
	l, err := lockFile(at.lockDir, portsLockName)
	if err != nil {
		// No lock, no index: the rules, of each backend that may hold
		// some.
		all, err := list()
		if err != nil {
			return err
		}
		if err := FindConflict(all, network, owner, maps); err != nil {
			return err
		}
		for _, p := range at.peers {
			if at.peer(p).there() {
				all, err := p.list()
				if err == nil {
					err = FindConflict(all, network, owner, maps)
				}
				if err != nil {
					return peerError(p, err)
				}
			}
		}
		return nil
	}
	defer l.unlock()
	x, err := lockedIndex(at, network, owner, maps, list)
	if err != nil {
		return err
	}
	x.close()
	return nil
}

// teardownIndex opens the index for Unpublish's fast path: nil (and the
// reason on stderr, unless it is only missing) when it cannot be used.
func teardownIndex(at indexAt) *portIndex {
	x, err := openIndex(at, false)
	if err != nil {
		if !errors.Is(err, fs.ErrNotExist) {
			fmt.Fprintf(os.Stderr, "ports index: %v; going on without it\n", err)
		}
		return nil
	}
	if !x.complete {
		x.close()
		return nil
	}
	return x
}

// unpublishIndexed is the backends' Unpublish with the claims index, under
// the ports lock: the owner's mappings from its record (with checkHeld, only
// those whose claim still names it), removed by remove, then their claims;
// when the index shows no attachment of the network left, retain(true)
// removes the network's rule set. Without a usable index, or when the
// removal fails, retain(false) removes the owner's mappings by listing the
// network's rules (DEL must get through).
func unpublishIndexed(at indexAt, network string, owner Attachment, checkHeld bool, remove func([]Mapping) error, retain func(last bool) error) error {
	x := teardownIndex(at)
	if x == nil {
		return retain(false)
	}
	defer x.close()
	old, err := x.owned(network, owner)
	if err == nil && checkHeld {
		old, err = x.held(network, owner, old)
	}
	if err != nil {
		x.invalidate(err)
		return retain(false)
	}
	if len(old) == 0 {
		return nil
	}
	if err := remove(old); err != nil {
		return retain(false)
	}
	x.settle(network, owner, old, nil)
	if x.complete && x.networkEmpty(network) {
		return errors.Join(retain(true), flushUDP(old))
	}
	return flushUDP(old)
}

// reconcileIndex is reconcile for Retain, best effort: a failure
// invalidates the index (said on stderr).
func reconcileIndex(at indexAt, network string, kept []Published) {
	x, err := openIndex(at, false)
	if err != nil {
		return
	}
	defer x.close()
	if !x.complete {
		return
	}
	if err := x.reconcile(network, kept); err != nil {
		x.invalidate(err)
	}
}

// indexError names the network in an error of lockedIndex, except a
// conflict, which names it already.
func indexError(network string, err error) error {
	var ce *PortConflictError
	if errors.As(err, &ce) {
		return err
	}
	return fmt.Errorf("network %q: %w", network, err)
}
