// Package early runs the bridge plugin's first steps from a package
// initialiser, before the rest of the binary (netlink, nftables, iptables,
// CNI's types) has initialised and long before main.
//
// Its reason is speed: an ADD waits for its IPAM plugin, a process of its own
// whose start-up (a Go runtime) is the longest step of ADD. Started here, the
// IPAM process starts up while the bridge initialises and checks the node,
// instead of after. It is only started: it gets its configuration on stdin
// when ADD has checked the node (pkg/delegate's Gate), so an invalid ADD still
// changes nothing, and ADD kills it if it is not the process ADD would have
// run (another path or environment).
//
// It runs as early as a package initialiser can. The Go runtime initialises
// packages in dependency order and, among those whose imports are done, the
// lexically first; so everything early imports, directly or not, is ready
// by the time package syscall is: path, runtime, sync, syscall, and this
// project's pkg/rtnl, pkg/bridge/spawn, pkg/bridge/hostveth, pkg/pagecache
// and pkg/sha2, which keep to the same rule (they sort before pkg/shortrun,
// whose one P then comes after the IPAM start; pkg/shortrun/hugeheap, which
// needs no other package, has put the heap on huge pages before all of
// them). It reads its JSON itself (json.go): encoding/json, os, fmt, strings
// or crypto/sha256 would make it wait for reflect, unicode, os and the
// crypto packages. Measured
// (GODEBUG=inittrace=1, which counts from the runtime's first initialiser):
// early runs about 3.5 ms in instead of 7, and DEL's host veth removal
// starts as much sooner; the runtime's own start before that takes another
// 3.5 ms here. integration's TestBridgeEarlyInitOrder checks the order.
//
// It acts only when the process is a CNI plugin call (CNI_COMMAND is set):
//   - every command: the plugin's own-netns check is taken over from skel
//     (see RefusesNetns);
//   - ADD: stdin is read here (and replayed to skel through file descriptor 0) and,
//     when the configuration names an IPAM plugin found in CNI_PATH, that
//     plugin is started (TakeIPAM);
//   - DEL: the same IPAM start (DEL feeds it after its own checks), and the
//     removal of the attachment's host veth (HostVethDel), which DEL does in
//     any case and which is its longest step. It needs only the environment
//     (the veth's name and alias derive from the attachment), and is not
//     started for a configuration that is not JSON or a CNI_NETNS that is
//     the plugin's own netns, the two errors DEL could meet before it.
//
// When ADD never claims the process (skel refused the call before ADD ran),
// the IPAM plugin reads end of file on stdin as the bridge exits, and fails
// without doing anything.
package early

import (
	"path"
	"runtime"
	"sync"
	"syscall"

	"github.com/flatcni/plugins/pkg/bridge/hostveth"
	"github.com/flatcni/plugins/pkg/bridge/spawn"
	"github.com/flatcni/plugins/pkg/pagecache"
	"github.com/flatcni/plugins/pkg/rtnl"
)

var (
	ownNetnsCheck bool

	mu      sync.Mutex
	ipam    *spawn.Proc
	hostDel chan hostDelResult // nil unless DEL's host veth removal was started
)

type hostDelResult struct {
	deleted bool
	err     error
}

func init() {
	cmd, _ := syscall.Getenv("CNI_COMMAND")
	if cmd == "" {
		return
	}
	takeOverNetnsCheck()
	switch cmd {
	case "ADD":
		prestartIPAM()
	case "DEL":
		startDel()
	}
}

// takeOverNetnsCheck makes ADD and DEL refuse a CNI_NETNS that is the
// plugin's own network namespace before they change anything. skel makes the
// same check only after ADD or DEL has run (it cannot undo them), opening the
// namespace once more on the way out; setting CNI_NETNS_OVERRIDE turns that
// late check off, here and in the IPAM plugin, which inherits the
// environment. A runtime that sets CNI_NETNS_OVERRIDE itself turns both
// checks off, as with the reference plugin.
func takeOverNetnsCheck() {
	if v, _ := syscall.Getenv("CNI_NETNS_OVERRIDE"); v == "1" || foldEqual(v, "true") {
		return
	}
	ownNetnsCheck = true
	_ = syscall.Setenv("CNI_NETNS_OVERRIDE", "1")
}

// RefusesNetns tells whether the plugin must refuse netns (CNI_NETNS): it is
// the plugin's own network namespace and the check was taken over from skel.
// A path that cannot be read is left to the caller.
func RefusesNetns(netns string) bool {
	if !ownNetnsCheck || netns == "" {
		return false
	}
	own, err := rtnl.IsOwnNetNS(netns)
	return err == nil && own
}

// prestartIPAM reads the configuration from stdin, gives it back to skel
// through os.Stdin, and starts the IPAM plugin it names.
func prestartIPAM() {
	conf := replayStdin()
	if p := startIPAM(conf, getenv("CNI_PATH"), syscall.Environ()); p != nil {
		mu.Lock()
		ipam = p
		mu.Unlock()
	}
}

func getenv(key string) string {
	v, _ := syscall.Getenv(key)
	return v
}

// startDel starts DEL's two long steps, both of which DEL does whatever
// else it finds: removing the attachment's host veth (the kernel then waits
// for an RCU grace period, 15-20 ms here) and IPAM DEL (started, and fed by
// DEL). Nothing starts when the configuration is not JSON or CNI_NETNS is
// the plugin's own netns: DEL reports those errors without changing anything.
func startDel() {
	conf := replayStdin()
	valid, ipamType := scanConfig(conf)
	if !valid {
		return
	}
	if RefusesNetns(getenv("CNI_NETNS")) {
		return
	}
	id, ifName := getenv("CNI_CONTAINERID"), getenv("CNI_IFNAME")
	if id != "" && ifName != "" {
		ch := make(chan hostDelResult, 1)
		go func() {
			deleted, err := rtnl.DelLinkWithAlias(hostveth.Name(id, ifName), hostveth.Alias(id, ifName))
			ch <- hostDelResult{deleted, err}
		}()
		mu.Lock()
		hostDel = ch
		mu.Unlock()
		// Let the removal goroutine start before the IPAM fork holds this
		// thread (vfork): measured on the rig, DEL 1.4 ms faster (8 of 8
		// runs of 50), the removal being DEL's longest step.
		runtime.Gosched()
	}
	if p := startNamedIPAM(ipamType, getenv("CNI_PATH"), syscall.Environ()); p != nil {
		mu.Lock()
		ipam = p
		mu.Unlock()
	}
}

// HostVethDel waits for the host veth removal that DEL started, and returns
// its outcome (see rtnl.DelLinkWithAlias); started is false when none was.
func HostVethDel() (deleted bool, err error, started bool) {
	mu.Lock()
	ch := hostDel
	hostDel = nil
	mu.Unlock()
	if ch == nil {
		return false, nil, false
	}
	r := <-ch
	return r.deleted, r.err, true
}

// replayStdin reads stdin to its end and puts a pipe that yields the same
// bytes in its place (file descriptor 0, which os.Stdin wraps once package os
// initialises), for skel to read. A read error leaves what was read, for
// skel to reject.
func replayStdin() []byte {
	var data []byte
	buf := make([]byte, 4096)
	for {
		n, err := syscall.Read(0, buf)
		if err == syscall.EINTR {
			continue
		}
		if err == syscall.EAGAIN {
			// The runtime handed over a non-blocking stdin: wait until it
			// has more (its flags are shared with the runtime: left as is).
			waitReadable(0)
			continue
		}
		if n <= 0 || err != nil {
			break
		}
		data = append(data, buf[:n]...)
	}
	var p [2]int // read end, write end
	if err := syscall.Pipe2(p[:], syscall.O_CLOEXEC); err != nil {
		// stdin is consumed: skel sees an empty configuration and says so.
		return data
	}
	// The read end becomes stdin (without close-on-exec, as stdin was).
	if err := syscall.Dup3(p[0], 0, 0); err != nil {
		syscall.Close(p[0])
		syscall.Close(p[1])
		return data
	}
	syscall.Close(p[0])
	// Write what the pipe takes now (a configuration fits, in practice) and
	// leave any rest to a goroutine that blocks until skel reads.
	rest := data
	if syscall.SetNonblock(p[1], true) == nil {
		rest = writeSome(p[1], rest)
		_ = syscall.SetNonblock(p[1], false)
	}
	if len(rest) == 0 {
		syscall.Close(p[1])
		return data
	}
	go func() {
		writeSome(p[1], rest)
		syscall.Close(p[1])
	}()
	return data
}

// writeSome writes b to fd until it is written or a write fails (on a
// non-blocking fd: until the pipe is full), and returns what is left.
func writeSome(fd int, b []byte) []byte {
	for len(b) > 0 {
		n, err := syscall.Write(fd, b)
		if err == syscall.EINTR {
			continue
		}
		if n <= 0 || err != nil {
			break
		}
		b = b[n:]
	}
	return b
}

// waitReadable blocks until fd has something to read (or is at its end).
func waitReadable(fd int) {
	var set syscall.FdSet
	set.Bits[fd/64] |= 1 << (uint(fd) % 64)
	_, _ = syscall.Select(fd+1, &set, nil, nil, nil) // EINTR: the caller reads again
}

// startIPAM starts the IPAM plugin that conf names (ipam.type), looked up in
// cniPath, with environ as the bridge would pass it (plus GOMAXPROCS=1). It
// returns nil when conf names none, or it is not found or does not start:
// ADD then reports the error as usual.
func startIPAM(conf []byte, cniPath string, environ []string) *spawn.Proc {
	valid, ipamType := scanConfig(conf)
	if !valid {
		return nil
	}
	return startNamedIPAM(ipamType, cniPath, environ)
}

// startNamedIPAM is startIPAM for a configuration already read: ipamType
// is the plugin it names.
func startNamedIPAM(ipamType, cniPath string, environ []string) *spawn.Proc {
	file, size := findInPath(ipamType, splitList(cniPath))
	if file == "" {
		return nil
	}
	// If the kernel has dropped some of the plugin from the page cache, load
	// it back in 2 MiB folios before its exec would read it page by page.
	pagecache.Heal(file, size)
	// Only ever called from init (package initialisers run locked).
	p, err := spawn.StartLocked(file, spawn.WithGOMAXPROCS(environ))
	if err != nil {
		return nil
	}
	return p
}

// findInPath finds a plugin binary as invoke.FindInPath does: the first
// directory in paths that holds a regular file of that name (path.Join is
// filepath.Join on Linux). It returns the file's path and size, or "".
func findInPath(plugin string, paths []string) (string, int64) {
	if plugin == "" {
		return "", 0
	}
	for i := 0; i < len(plugin); i++ {
		if plugin[i] == '/' {
			return "", 0
		}
	}
	for _, dir := range paths {
		full := path.Join(dir, plugin)
		var st syscall.Stat_t
		if syscall.Stat(full, &st) == nil && st.Mode&syscall.S_IFMT == syscall.S_IFREG {
			return full, st.Size
		}
	}
	return "", 0
}

// splitList is filepath.SplitList on Linux: CNI_PATH's directories.
func splitList(list string) []string {
	if list == "" {
		return nil
	}
	var dirs []string
	for {
		i := 0
		for i < len(list) && list[i] != ':' {
			i++
		}
		dirs = append(dirs, list[:i])
		if i == len(list) {
			return dirs
		}
		list = list[i+1:]
	}
}

// TakeIPAM returns the IPAM process started for this ADD or DEL, once; nil
// if none was started.
func TakeIPAM() *spawn.Proc {
	mu.Lock()
	defer mu.Unlock()
	p := ipam
	ipam = nil
	return p
}
