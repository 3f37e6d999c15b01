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
// The package imports only the standard library and pkg/spawn, so that the
// Go runtime initialises it early (packages initialise as soon as their
// imports have).
//
// It acts only when the process is a CNI plugin call (CNI_COMMAND is set):
//   - every command: the plugin's own-netns check is taken over from skel
//     (see RefusesNetns);
//   - ADD: stdin is read here (and replayed to skel through os.Stdin) and,
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
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"github.com/flatcni/plugins/pkg/bridge/hostveth"
	"github.com/flatcni/plugins/pkg/rtnl"
	"github.com/flatcni/plugins/pkg/spawn"
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
	if os.Getenv("CNI_COMMAND") == "" {
		return
	}
	takeOverNetnsCheck()
	switch os.Getenv("CNI_COMMAND") {
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
	if v := os.Getenv("CNI_NETNS_OVERRIDE"); v == "1" || strings.EqualFold(v, "true") {
		return
	}
	ownNetnsCheck = true
	_ = os.Setenv("CNI_NETNS_OVERRIDE", "1")
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
	if p := startIPAM(conf, os.Getenv("CNI_PATH"), os.Environ()); p != nil {
		mu.Lock()
		ipam = p
		mu.Unlock()
	}
}

// startDel starts DEL's two long steps, both of which DEL does whatever
// else it finds: removing the attachment's host veth (the kernel then waits
// for an RCU grace period, 15-20 ms here) and IPAM DEL (started, and fed by
// DEL). Nothing starts when the configuration is not JSON or CNI_NETNS is
// the plugin's own netns: DEL reports those errors without changing anything.
func startDel() {
	conf := replayStdin()
	if !json.Valid(conf) {
		return
	}
	if RefusesNetns(os.Getenv("CNI_NETNS")) {
		return
	}
	id, ifName := os.Getenv("CNI_CONTAINERID"), os.Getenv("CNI_IFNAME")
	if id != "" && ifName != "" {
		ch := make(chan hostDelResult, 1)
		go func() {
			deleted, err := rtnl.DelLinkWithAlias(hostveth.Name(id, ifName), hostveth.Alias(id, ifName))
			ch <- hostDelResult{deleted, err}
		}()
		mu.Lock()
		hostDel = ch
		mu.Unlock()
	}
	if p := startIPAM(conf, os.Getenv("CNI_PATH"), os.Environ()); p != nil {
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
// bytes in os.Stdin's place. A read error leaves what was read, for skel to
// reject.
func replayStdin() []byte {
	data, _ := io.ReadAll(os.Stdin)
	r, w, err := os.Pipe()
	if err != nil {
		// stdin is consumed: skel sees an empty configuration and says so.
		os.Stdin = nil
		return nil
	}
	go func() {
		_, _ = w.Write(data)
		w.Close()
	}()
	os.Stdin = r
	return data
}

// startIPAM starts the IPAM plugin that conf names (ipam.type), looked up in
// cniPath, with environ as the bridge would pass it (plus GOMAXPROCS=1). It
// returns nil when conf names none, or it is not found or does not start:
// ADD then reports the error as usual.
func startIPAM(conf []byte, cniPath string, environ []string) *spawn.Proc {
	var c struct {
		IPAM struct {
			Type string `json:"type"`
		} `json:"ipam"`
	}
	if json.Unmarshal(conf, &c) != nil {
		return nil
	}
	path := findInPath(c.IPAM.Type, filepath.SplitList(cniPath))
	if path == "" {
		return nil
	}
	p, err := spawn.Start(path, spawn.WithGOMAXPROCS(environ))
	if err != nil {
		return nil
	}
	return p
}

// findInPath finds a plugin binary as invoke.FindInPath does: the first
// directory in paths that holds a regular file of that name.
func findInPath(plugin string, paths []string) string {
	if plugin == "" || strings.ContainsRune(plugin, os.PathSeparator) {
		return ""
	}
	for _, dir := range paths {
		full := filepath.Join(dir, plugin)
		if fi, err := os.Stat(full); err == nil && fi.Mode().IsRegular() {
			return full
		}
	}
	return ""
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
