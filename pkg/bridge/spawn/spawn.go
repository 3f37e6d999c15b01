// Package spawn starts a plugin process with its stdin, stdout and stderr on
// pipes. It imports only packages syscall and runtime, so that the bridge
// plugin can start its IPAM plugin from a package initialiser that runs
// before most of the standard library has initialised (see
// pkg/bridge/early); the caller wraps the pipe ends it returns (os.NewFile).
package spawn

import (
	"runtime"
	"syscall"
)

// Proc is a started plugin process and the parent's ends of its pipes, as
// file descriptors (close-on-exec) that the caller owns.
type Proc struct {
	Pid  int
	Path string
	Env  []string // as passed to the process
	// Stdin is written by the parent; Stdout and Stderr are read by it.
	Stdin, Stdout, Stderr int
}

// Start runs the program at path with environ (argv is the path alone, as
// invoke does). It uses syscall.ForkExec: os/exec probes pidfd support with
// an extra fork on its first start.
func Start(path string, environ []string) (*Proc, error) {
	return start(path, environ, true)
}

// StartLocked is Start for a caller whose goroutine is already locked to its
// thread, such as a package initialiser (the runtime runs them all on the
// main thread, locked). Start locks the thread around the fork so that the
// timer slack it sets is the forking thread's; the first
// runtime.LockOSThread of a process also starts the runtime's template
// thread, a thread creation (0.2-0.3 ms here) that would otherwise come
// just before the fork.
func StartLocked(path string, environ []string) (*Proc, error) {
	return start(path, environ, false)
}

func start(path string, environ []string, lock bool) (*Proc, error) {
	// Parent and child ends of stdin, stdout and stderr.
	var parent, child [3]int
	for i := range parent {
		parent[i], child[i] = -1, -1
	}
	for i := range parent {
		var p [2]int // read end, write end
		if err := syscall.Pipe2(p[:], syscall.O_CLOEXEC); err != nil {
			closeAll(parent[:])
			closeAll(child[:])
			return nil, err
		}
		if i == 0 {
			parent[i], child[i] = p[1], p[0]
		} else {
			parent[i], child[i] = p[0], p[1]
		}
	}
	pid, err := forkExec(path, environ, child, lock)
	closeAll(child[:])
	if err != nil {
		closeAll(parent[:])
		return nil, err
	}
	return &Proc{Pid: pid, Path: path, Env: environ, Stdin: parent[0], Stdout: parent[1], Stderr: parent[2]}, nil
}

// ChildTimerSlack is the timer slack, in nanoseconds, a started process gets
// (Linux's default is 50 us).
//
// A Go program's system monitor thread sleeps 20 us plus the timer slack
// between rounds, for its first fifty rounds: in a plugin call of 10 ms that
// is some sixty wake-ups and context switches on the other CPU, which slow
// what runs there (measured here: host-local ADD takes 1.7 ms less CPU and
// 35 fewer context switches with a 1 ms slack, a little less again with 2 ms,
// nothing more beyond). A process inherits its timer slack across fork and
// execve; none of its timers is then late by more than 2 ms, which a plugin
// call does not notice. The bridge keeps the default for itself: with a
// larger slack its DEL was slower.
const ChildTimerSlack = 2_000_000

// forkExec starts path with the calling thread's timer slack set to
// ChildTimerSlack, and then restores it; lock: the goroutine is not locked
// to its thread yet and must be for the while.
func forkExec(path string, environ []string, child [3]int, lock bool) (int, error) {
	if lock {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
	}
	old, _, errno := syscall.RawSyscall(syscall.SYS_PRCTL, prGetTimerSlack, 0, 0)
	if errno == 0 {
		setTimerSlack(ChildTimerSlack)
		defer setTimerSlack(old)
	}
	return syscall.ForkExec(path, []string{path}, &syscall.ProcAttr{
		Env:   environ,
		Files: []uintptr{uintptr(child[0]), uintptr(child[1]), uintptr(child[2])},
	})
}

const (
	prSetTimerSlack = 29 // PR_SET_TIMERSLACK
	prGetTimerSlack = 30 // PR_GET_TIMERSLACK
)

func setTimerSlack(ns uintptr) {
	_, _, _ = syscall.RawSyscall(syscall.SYS_PRCTL, prSetTimerSlack, ns, 0)
}

func closeAll(fds []int) {
	for _, fd := range fds {
		if fd >= 0 {
			syscall.Close(fd)
		}
	}
}

// WithGOMAXPROCS adds GOMAXPROCS=1 unless environ sets GOMAXPROCS: an IPAM
// plugin is a short single-threaded job, and a Go runtime with one P starts
// fewer threads and touches fewer pages.
func WithGOMAXPROCS(environ []string) []string {
	const key = "GOMAXPROCS="
	for _, kv := range environ {
		if len(kv) >= len(key) && kv[:len(key)] == key {
			return environ
		}
	}
	return append(environ[:len(environ):len(environ)], key+"1")
}
