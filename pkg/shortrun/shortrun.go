// Package shortrun tunes the Go runtime for a short-lived CNI plugin call,
// from a package initialiser. A plugin binary imports it for that effect
// alone.
//
// A plugin call lives a few milliseconds, and on virtual machines most of
// that goes to the Go runtime's own costs rather than to the plugin's work
// (measured on this project's machines: a bridge ADD took about 700 page
// faults at 15-25 us each, and 250 context switches). So:
//
//   - The heap is backed by transparent huge pages: see pkg/shortrun/hugeheap,
//     imported from here, which runs among the first initialisers (before
//     this package, which needs package syscall).
//   - When the process is a plugin call (CNI_COMMAND is set), GOMAXPROCS is
//     1 unless the environment sets it: a plugin's goroutines mostly wait for
//     the kernel or for another process, and with one P the runtime keeps
//     fewer threads spinning and waking each other. The bridge's
//     pkg/bridge/early runs before this: it starts the IPAM plugin with the
//     runtime's start-up P count (one P from there on was slower).
//   - Memory profiling is off (no profile is ever read).
//
// The package imports only the runtime's lowest layers so that it initialises
// among the first.
package shortrun

import (
	"runtime"
	"syscall"

	_ "github.com/flatcni/plugins/pkg/shortrun/hugeheap" // heap on huge pages, first thing
)

func init() {
	if _, ok := syscall.Getenv("CNI_COMMAND"); !ok {
		return
	}
	runtime.MemProfileRate = 0
	if _, ok := syscall.Getenv("GOMAXPROCS"); !ok {
		runtime.GOMAXPROCS(1)
	}
}
