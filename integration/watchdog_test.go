package integration

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
)

// watchdog is what a test that starts a runtime leaves should its process
// die without its clean-up (a go test -timeout panic, a kill): the runtime
// (containerd, podman's conmon) and its containers would run on, and keep
// the namespaces and directories they use. A watchdog process, started by
// start, then kills and removes it instead.
type watchdog struct {
	// pgids: process groups whose processes are killed, with their
	// descendants.
	pgids []int
	// dirs: a process whose command line names a path below one of these
	// is killed, with its descendants.
	dirs []string
	// cgroups: paths below the cgroup root (a v1 hierarchy's or the v2
	// one), in every hierarchy: their processes are killed, the cgroups
	// (and those below them) removed.
	cgroups []string
	netns   []*Netns // deleted
	remove  []string // removed (rm -rf), after the processes are gone
	// rmdirs: mount points the run made, removed last if empty, unless
	// (after up to 5 s) a mount namespace has a file system mounted on
	// one: another run's, which the removal would take off.
	rmdirs []string
}

// watchdogScript is the watchdog process. It waits for the end of its
// standard input, a pipe only the test process writes to (close-on-exec:
// no child holds it), so it goes on when that process dies. The processes
// of the groups and those naming a directory are stopped as they are found,
// then their descendants (a stopped process forks no more, and its
// children are found before they are orphaned) until a round over /proc
// finds none; then all are killed.
const watchdogScript = `read _
found=" "
fields() { ppid=$2 pgrp=$3; }
while :; do
	more=
	for p in /proc/[0-9]*; do
		pid=${p#/proc/}
		[ "$pid" = "$$" ] && continue
		case $found in *" $pid "*) continue ;; esac
		stat=
		read -r stat 2>/dev/null <"$p/stat" || continue
		fields ${stat##*) }
		hit=
		case $found in *" $ppid "*) hit=1 ;; esac
		for g in $WD_PGIDS; do [ "$pgrp" = "$g" ] && hit=1; done
		if [ -z "$hit" ]; then
			for d in $WD_DIRS; do grep -qsF -- "$d/" "$p/cmdline" && hit=1 && break; done
		fi
		[ -n "$hit" ] || continue
		kill -STOP "$pid" 2>/dev/null
		found="$found$pid "
		more=1
	done
	[ -n "$more" ] || break
done
kill -KILL $found 2>/dev/null
for g in $WD_PGIDS; do kill -KILL -"$g" 2>/dev/null; done
if [ -n "$WD_CGROUPS" ]; then
	for try in 1 2 3 4 5 6 7 8 9 10; do
		for c in $WD_CGROUPS; do
			cat /sys/fs/cgroup/*"$c"/cgroup.procs /sys/fs/cgroup/*"$c"/*/cgroup.procs \
				/sys/fs/cgroup"$c"/cgroup.procs /sys/fs/cgroup"$c"/*/cgroup.procs 2>/dev/null | xargs -r kill -KILL 2>/dev/null
		done
		sleep 0.2
		for c in $WD_CGROUPS; do
			for d in /sys/fs/cgroup/*"$c" /sys/fs/cgroup"$c"; do
				[ -d "$d" ] && find "$d" -depth -type d -exec rmdir {} + 2>/dev/null
			done
		done
	done
fi
for d in $WD_REMOVE; do rm -rf "$d"; done
for n in $WD_NETNS; do ip netns del "$n" 2>/dev/null; done
for d in $WD_RMDIRS; do
	for try in 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20 21 22 23 24 25; do
		if ! cat /proc/[0-9]*/mountinfo 2>/dev/null | awk -v d="$d" '$5 == d { f = 1 } END { exit !f }'; then
			rmdir "$d" 2>/dev/null
			break
		fi
		sleep 0.2
	done
done
`

// start starts the watchdog process. The test's clean-up stops it: start
// registers that, so a clean-up that start's caller registers afterwards
// runs before it, and a death during that clean-up is covered too.
func (w watchdog) start(t *testing.T) {
	t.Helper()
	r, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	var pgids, names []string
	for _, g := range w.pgids {
		pgids = append(pgids, fmt.Sprint(g))
	}
	for _, n := range w.netns {
		names = append(names, n.Name)
	}
	for _, s := range append(append(append(append([]string{}, w.dirs...), w.cgroups...), w.remove...), w.rmdirs...) {
		if s == "" || strings.ContainsAny(s, " \t\n*?[") {
			t.Fatalf("watchdog: %q: no spaces or patterns", s)
		}
	}
	// Its arguments come in the environment: its command line names
	// nothing it kills.
	wd := exec.Command("sh", "-c", watchdogScript)
	wd.Env = append(os.Environ(), "WD_PGIDS="+strings.Join(pgids, " "), "WD_DIRS="+strings.Join(w.dirs, " "),
		"WD_CGROUPS="+strings.Join(w.cgroups, " "), "WD_REMOVE="+strings.Join(w.remove, " "), "WD_NETNS="+strings.Join(names, " "), "WD_RMDIRS="+strings.Join(w.rmdirs, " "))
	wd.Stdin = r
	// Its own process group: a terminal's ^C reaches the test, not it.
	wd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := wd.Start(); err != nil {
		t.Fatal(err)
	}
	r.Close()
	t.Cleanup(func() {
		_ = wd.Process.Kill()
		_ = wd.Wait()
		pw.Close()
	})
}

// leftovers is what a run of a test that starts a runtime may leave should
// its process die without its clean-up, for a test that kills one (as
// TestCRIKilled, TestPodmanKilled) to look for once the watchdog is done.
type leftovers struct {
	cmdline    string   // a process whose command line holds this (the run's directory)
	namespaces []string // a process in one of these namespaces (mount or network, as /proc/*/ns/* name them)
	globs      []string // files and directories (filepath.Glob patterns)
	// newDirs: directories missing before the run (missingDirs), found
	// again and empty (a mount point, libmount's /run/mount; one with
	// files has another's, as another run may make them).
	newDirs []string
	more    func() []string // anything else found
}

// find lists what is left, looking again for up to wait while something is
// (the watchdog works after the run's death).
func (l leftovers) find(wait time.Duration) []string {
	var found []string
	for deadline := time.Now().Add(wait); ; time.Sleep(200 * time.Millisecond) {
		found = nil
		procs, _ := filepath.Glob("/proc/[0-9]*")
		for _, p := range procs {
			if b, err := os.ReadFile(p + "/cmdline"); err == nil && l.cmdline != "" && bytes.Contains(b, []byte(l.cmdline)) {
				found = append(found, p+": "+strings.ReplaceAll(string(b), "\x00", " "))
				continue
			}
			for _, ns := range []string{"mnt", "net"} {
				if n, err := os.Readlink(p + "/ns/" + ns); err == nil && slices.Contains(l.namespaces, n) {
					b, _ := os.ReadFile(p + "/cmdline")
					found = append(found, fmt.Sprintf("%s (in %s): %s", p, n, strings.ReplaceAll(string(b), "\x00", " ")))
					break
				}
			}
		}
		for _, g := range l.globs {
			m, _ := filepath.Glob(g)
			found = append(found, m...)
		}
		for _, d := range l.newDirs {
			if entries, err := os.ReadDir(d); err == nil && len(entries) == 0 {
				found = append(found, d)
			}
		}
		if l.more != nil {
			found = append(found, l.more()...)
		}
		if len(found) == 0 || time.Now().After(deadline) {
			return found
		}
	}
}

// missingDirs lists those of dirs that do not exist.
func missingDirs(dirs ...string) []string {
	var out []string
	for _, d := range dirs {
		if _, err := os.Lstat(d); os.IsNotExist(err) {
			out = append(out, d)
		}
	}
	return out
}

// runDying runs test in a child test process told by the environment
// variable die to exit without its clean-up once its runtime has work in
// flight; the child prints what it leaves as one JSON line after prefix,
// decoded into left. It returns the child's output and exit error.
func runDying(t *testing.T, test, die, prefix string, left any) ([]byte, error) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^"+test+"$", "-test.count=1", "-test.v")
	cmd.Env = append(os.Environ(), die+"=1")
	out, err := cmd.Output()
	for _, line := range strings.Split(string(out), "\n") {
		if j, ok := strings.CutPrefix(line, prefix); ok {
			if err := json.Unmarshal([]byte(j), left); err != nil {
				t.Fatalf("%q: %v", line, err)
			}
		}
	}
	return out, err
}

// exitDying is the child's side of runDying: it prints left as one JSON
// line after prefix and exits at once, without any clean-up.
func exitDying(t *testing.T, prefix string, left any) {
	b, err := json.Marshal(left)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Printf("%s%s\n", prefix, b)
	os.Exit(3)
}
