// Package spawn starts a plugin process with its stdin, stdout and stderr on
// pipes. It is a leaf package (standard library only) so that the bridge
// plugin can start its IPAM plugin from a package initialiser, before the
// rest of the binary has initialised (see pkg/bridge/early).
package spawn

import (
	"os"
	"strings"
	"syscall"
)

// Proc is a started plugin process and the parent's ends of its pipes.
type Proc struct {
	Pid  int
	Path string
	Env  []string // as passed to the process
	// Stdin is written by the parent; Stdout and Stderr are read by it.
	Stdin, Stdout, Stderr *os.File
}

// Start runs the program at path with environ (argv is the path alone, as
// invoke does). It uses syscall.ForkExec: os/exec probes pidfd support with
// an extra fork on its first start.
func Start(path string, environ []string) (*Proc, error) {
	// Parent and child ends of stdin, stdout and stderr.
	var parent, child [3]*os.File
	for i := range parent {
		r, w, err := os.Pipe()
		if err != nil {
			closeAll(parent[:])
			closeAll(child[:])
			return nil, err
		}
		if i == 0 {
			parent[i], child[i] = w, r
		} else {
			parent[i], child[i] = r, w
		}
	}
	pid, err := syscall.ForkExec(path, []string{path}, &syscall.ProcAttr{
		Env:   environ,
		Files: []uintptr{child[0].Fd(), child[1].Fd(), child[2].Fd()},
	})
	closeAll(child[:])
	if err != nil {
		closeAll(parent[:])
		return nil, err
	}
	return &Proc{Pid: pid, Path: path, Env: environ, Stdin: parent[0], Stdout: parent[1], Stderr: parent[2]}, nil
}

func closeAll(fs []*os.File) {
	for _, f := range fs {
		if f != nil {
			f.Close()
		}
	}
}

// WithGOMAXPROCS adds GOMAXPROCS=1 unless environ sets GOMAXPROCS: an IPAM
// plugin is a short single-threaded job, and a Go runtime with one P starts
// fewer threads and touches fewer pages.
func WithGOMAXPROCS(environ []string) []string {
	for _, kv := range environ {
		if strings.HasPrefix(kv, "GOMAXPROCS=") {
			return environ
		}
	}
	return append(environ[:len(environ):len(environ)], "GOMAXPROCS=1")
}
