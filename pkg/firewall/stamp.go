package firewall

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"

	"github.com/vishvananda/netlink/nl"
	"golang.org/x/sys/unix"

	"github.com/flatcni/plugins/pkg/safefs"
)

// An ADD makes sure its network's rules are in place by reading them: a
// few netlink dumps whose rules are decoded one expression at a time, ~1
// ms a call. Once it found them so, it writes into the network's marker
// (lockDir/net-<name>.rules) the backend, the configuration's fingerprint
// and a stamp of the node's whole ruleset: the boot, the network namespace
// (its cookie, which unlike an inode number the kernel never hands out twice
// in one boot) and nftables' generation, which every commit of nftables or
// iptables-nft moves on. While the stamp is the same no commit happened,
// so the next ADD of the network reads one generation number instead of
// the rules. The stamp is taken before the rules are read: a commit between
// the two leaves a stamp that no later state matches. iptables-legacy's
// tables have no generation: a network whose rules only iptables commands
// could confirm is never stamped. (docs/design.md, Firewall: what a commit
// does not cover, and the one window left.)

// A stamp is the state of one node's ruleset: node is "<boot id> <netns
// cookie>", gen nftables' generation. The zero stamp is none.
type stamp struct {
	node string
	gen  uint32
}

// line is a stamp file's line saying that backend's rules for fingerprint
// fp were found in place at s. A file holds one line per node and backend
// (portsStamps: one per family): the tests and the bench run many nodes
// (namespaces) with one lock directory.
func (s stamp) line(backend, fp string) string {
	return fmt.Sprintf("%s %s %s %d", s.node, backend, fp, s.gen)
}

// rulesetStamp returns the stamp of the calling thread's network namespace
// now, or an error (a kernel without netns cookies, 5.14, or without
// nftables: no stamp, the rules are read).
func rulesetStamp() (stamp, error) {
	boot, err := bootID()
	if err != nil {
		return stamp{}, err
	}
	s, err := nl.Subscribe(unix.NETLINK_NETFILTER) // no groups: a plain socket, whose cookie we read
	if err != nil {
		return stamp{}, err
	}
	defer s.Close()
	cookie, err := unix.GetsockoptUint64(s.GetFd(), unix.SOL_SOCKET, unix.SO_NETNS_COOKIE)
	if err != nil {
		return stamp{}, fmt.Errorf("netns cookie: %w", err)
	}
	req := nl.NewNetlinkRequest(unix.NFNL_SUBSYS_NFTABLES<<8|unix.NFT_MSG_GETGEN, 0)
	req.AddData(&nl.Nfgenmsg{NfgenFamily: unix.AF_UNSPEC, Version: unix.NFNETLINK_V0})
	req.Sockets = map[int]*nl.SocketHandle{unix.NETLINK_NETFILTER: {Socket: s}}
	msgs, err := req.Execute(unix.NETLINK_NETFILTER, unix.NFNL_SUBSYS_NFTABLES<<8|unix.NFT_MSG_NEWGEN)
	if err != nil {
		return stamp{}, fmt.Errorf("nftables generation: %w", err)
	}
	for _, m := range msgs {
		if len(m) < nl.SizeofNfgenmsg {
			continue
		}
		attrs, err := nl.ParseRouteAttr(m[nl.SizeofNfgenmsg:])
		if err != nil {
			return stamp{}, fmt.Errorf("nftables generation: %w", err)
		}
		for _, a := range attrs {
			if a.Attr.Type == unix.NFTA_GEN_ID && len(a.Value) == 4 {
				node := boot + " " + strconv.FormatUint(cookie, 10)
				return stamp{node: node, gen: binary.BigEndian.Uint32(a.Value)}, nil
			}
		}
	}
	return stamp{}, fmt.Errorf("nftables generation: no id in the answer")
}

// bootID is the kernel's boot ID, read once a process (an ADD takes the
// ruleset's stamp up to three times).
var bootID = sync.OnceValues(func() (string, error) {
	b, err := os.ReadFile("/proc/sys/kernel/random/boot_id")
	return strings.TrimSpace(string(b)), err
})

// markerMax bounds what a marker may hold; markerLines, the lines kept.
const (
	markerMax   = 4096
	markerLines = 16
)

// A network's stamp lines live in two files of the lock directory: its
// marker (lock.go), for the masquerade and isolation rules, and
// net-<name>.ports, for the port backends' fixed rules, which publishing
// alone may write: a marker made for them would say that the network may
// have masquerade rules.

// portsStamps is the file of a network's port rules' stamp lines.
func portsStamps(network string) string { return "net-" + network + ".ports" }

// stampCheck is what stamped found: the ruleset's stamp now (zero: none),
// and the file it looked in and its text, for recordStamp.
type stampCheck struct {
	now        stamp
	file, text string
}

// stamped reports whether the stamp file (networkMarker or portsStamps)
// says that backend's rules for fingerprint fp were found in place at the
// ruleset's current stamp.
func (o options) stamped(file, backend, fp string) (c stampCheck, ok bool) {
	c.file = file
	now, err := rulesetStamp()
	if err != nil {
		return c, false
	}
	c.now = now
	d, text, ok := o.readStamps(file)
	if !ok {
		return c, false
	}
	d.Close()
	c.text = text
	return c, slices.Contains(strings.Split(text, "\n"), now.line(backend, fp))
}

// readStamps returns a stamp file's text, and the lock directory it is in
// (open: the caller closes it), when the file is there and ours: only what
// we wrote is trusted.
func (o options) readStamps(file string) (*safefs.Dir, string, bool) {
	d, err := openLockDirIfThere(o.lockDir)
	if d == nil || err != nil {
		return nil, "", false
	}
	got, st, err := d.ReadFileStat(file, markerMax)
	if err != nil || int(st.Uid) != os.Geteuid() {
		d.Close()
		return nil, "", false
	}
	return d, string(got), true
}

// recordStamp writes into c's file that backend's rules for fingerprint fp
// were found in place at c's stamp (taken before they were read), beside
// the other lines stamped read. Best effort: without it the next ADD reads
// the rules again.
func (o options) recordStamp(backend, fp string, c stampCheck) {
	if c.now.node == "" {
		return
	}
	d, err := openLockDirIfThere(o.lockDir)
	if d == nil || err != nil {
		return
	}
	defer d.Close()
	_ = d.Overwrite(c.file, []byte(withStampLine(c.text, c.now, backend, fp)))
}

// withStampLine returns the marker's text old with s's line of backend for
// fp in place of the line of s's node and backend, without the lines of
// other boots, and with at most markerLines lines (the latest).
func withStampLine(old string, s stamp, backend, fp string) string {
	boot, _, _ := strings.Cut(s.node, " ")
	key := s.node + " " + backend + " "
	var lines []string
	for _, l := range strings.Split(old, "\n") {
		if strings.HasPrefix(l, boot+" ") && !strings.HasPrefix(l, key) {
			lines = append(lines, l)
		}
	}
	if len(lines) >= markerLines {
		lines = lines[len(lines)-markerLines+1:]
	}
	return strings.Join(append(lines, s.line(backend, fp)), "\n") + "\n"
}

// A commit of our own moves the generation on as any other does, so a
// network that publishes ports would find its stamp stale on every ADD
// (each commits its mappings) and read its masquerade rules again. A
// commit of mappings only (nftables map elements, or rules in the network's
// own iptables ports chain) touches none of the rules a marker line vouches
// for (masquerade, forwarding, isolation, the port rules' fixed rules), so
// the lines may be carried across it. Which commits came between is not guessed from a count (a
// transaction that changes nothing, re-adding an element that is there,
// moves no generation, and a foreign commit would take its place): the
// kernel announces every commit to the nftables multicast group with its
// generation and the ID of the thread that made it. ownCommits holds the
// caller's goroutine on its thread, then listens from before the caller's
// first commit until it is done, so that no other goroutine of the process
// commits from that thread meanwhile; it carries the node's lines only when
// every generation since the line's was announced as made by that thread.
// That needs no lock: every line ever written is true of its generation.
// (A DEL carries across its mappings' removal without the network's lock;
// a marker write lost to a concurrent one only costs the next ADD a read.)
// The announced IDs are those of the kernel's first PID namespace: a
// plugin running in another carries nothing.

// ownCommits watches the caller's commits, to carry the network's marker
// line across them.
type ownCommits struct {
	o      options
	files  []string // the network's stamp files that may exist
	before stamp
	watch  *nl.NetlinkSocket // nil: nothing to carry
	thread int               // the thread the caller's goroutine is held on
}

// ownCommits holds the calling goroutine on its thread, then starts
// listening to the ruleset's commits and takes its stamp, when the network
// has a stamp file (a network without one was never stamped: nothing to
// carry, nothing opened) and the plugin runs in the first PID namespace. The
// commits the goroutine makes until close (or carry), which it calls too,
// are its own (a batch commits within the sendmsg call, on the caller's
// thread), and from the lock on no other goroutine commits from the
// thread: every commit announced with its ID after the stamp is the
// caller's.
func (o options) ownCommits(network string) *ownCommits {
	c := &ownCommits{o: o}
	if validateName(network) != nil {
		return c
	}
	for _, f := range []string{networkMarker(network), portsStamps(network)} {
		if _, err := os.Lstat(filepath.Join(o.lockDir, f)); !errors.Is(err, fs.ErrNotExist) {
			c.files = append(c.files, f)
		}
	}
	if len(c.files) == 0 || !initialPIDNamespace() {
		return c
	}
	runtime.LockOSThread()
	s, err := nl.Subscribe(unix.NETLINK_NETFILTER, unix.NFNLGRP_NFTABLES)
	if err == nil {
		if c.before, err = rulesetStamp(); err != nil {
			s.Close()
		}
	}
	if err != nil {
		runtime.UnlockOSThread()
		return c
	}
	c.watch, c.thread = s, unix.Gettid()
	return c
}

// initialPIDNamespace reports whether the process is in the kernel's first
// PID namespace, whose IDs are those the kernel announces commits with
// (its inode number is fixed: PROC_PID_INIT_INO).
func initialPIDNamespace() bool {
	var st unix.Stat_t
	return unix.Stat("/proc/self/ns/pid", &st) == nil && st.Ino == 0xEFFFFFFC
}

// close stops listening and lets the goroutine go from its thread.
func (c *ownCommits) close() {
	if c != nil && c.watch != nil {
		c.watch.Close()
		c.watch = nil
		runtime.UnlockOSThread()
	}
}

// carry moves the node's stamp lines from the generation before the
// caller's commits to the one now, when every commit between was one of
// them, then stops listening. Best effort, as recordStamp: without it the
// next ADD reads the rules.
func (c *ownCommits) carry() {
	if c == nil || c.watch == nil {
		return
	}
	defer c.close()
	now, err := rulesetStamp()
	if err != nil || now.node != c.before.node || now.gen == c.before.gen {
		return
	}
	by, ok := committers(c.watch)
	if !ok {
		return
	}
	for g := c.before.gen; g != now.gen; {
		g++
		if tid, seen := by[g]; !seen || tid != c.thread {
			return
		}
	}
	for _, f := range c.files {
		d, text, ok := c.o.readStamps(f)
		if !ok {
			continue
		}
		if text, ok := carriedLines(text, c.before, now); ok {
			// Never made anew: a DEL's carry may come after the
			// network's last rules and stamp files went.
			_ = d.OverwriteExisting(f, []byte(text))
		}
		d.Close()
	}
}

// committers reads the commit announcements queued on s: the thread that
// made each generation. Not ok when some may be missing (the socket's
// buffer overflowed) or unreadable.
func committers(s *nl.NetlinkSocket) (map[uint32]int, bool) {
	by := map[uint32]int{}
	buf := make([]byte, 64<<10)
	for {
		n, from, err := unix.Recvfrom(s.GetFd(), buf, unix.MSG_DONTWAIT)
		if err == unix.EAGAIN {
			return by, true
		}
		if err == unix.EINTR {
			continue
		}
		if err != nil || n < unix.NLMSG_HDRLEN {
			return nil, false
		}
		if sa, ok := from.(*unix.SockaddrNetlink); !ok || sa.Pid != 0 {
			continue // not the kernel's
		}
		msgs, err := syscall.ParseNetlinkMessage(buf[:n])
		if err != nil {
			return nil, false
		}
		for _, m := range msgs {
			if m.Header.Type != unix.NFNL_SUBSYS_NFTABLES<<8|unix.NFT_MSG_NEWGEN || len(m.Data) < nl.SizeofNfgenmsg {
				continue
			}
			attrs, err := nl.ParseRouteAttr(m.Data[nl.SizeofNfgenmsg:])
			if err != nil {
				return nil, false
			}
			var gen, pid uint32
			var hasGen, hasPID bool
			for _, a := range attrs {
				switch {
				case a.Attr.Type == unix.NFTA_GEN_ID && len(a.Value) == 4:
					gen, hasGen = binary.BigEndian.Uint32(a.Value), true
				case a.Attr.Type == unix.NFTA_GEN_PROC_PID && len(a.Value) == 4:
					pid, hasPID = binary.BigEndian.Uint32(a.Value), true
				}
			}
			if hasGen && hasPID {
				by[gen] = int(pid)
			}
		}
	}
}

// carriedLines returns the marker's text with the lines of before's node
// that were at before's generation at now's, if there was one.
func carriedLines(marker string, before, now stamp) (string, bool) {
	lines := strings.Split(marker, "\n")
	carried := false
	for i, l := range lines {
		rest, ok := strings.CutPrefix(l, before.node+" ")
		if !ok {
			continue
		}
		j := strings.LastIndexByte(rest, ' ')
		if j < 0 || rest[j+1:] != strconv.FormatUint(uint64(before.gen), 10) {
			continue
		}
		lines[i] = before.node + " " + rest[:j+1] + strconv.FormatUint(uint64(now.gen), 10)
		carried = true
	}
	if !carried {
		return "", false
	}
	return strings.Join(lines, "\n"), true
}
