// Package shortrun tunes the Go runtime for a short-lived CNI plugin call,
// from a package initialiser, when the process is one (CNI_COMMAND is set).
// A plugin binary imports it for that effect alone.
//
// A plugin call lives a few milliseconds, and on virtual machines most of
// that goes to the Go runtime's own costs rather than to the plugin's work
// (measured on this project's machines: a bridge ADD took about 700 page
// faults at 15-25 us each, and 250 context switches). So:
//
//   - The heap is backed by transparent huge pages. The heap, goroutine
//     stacks included, grows to one or two megabytes, touched page by page;
//     each first touch is a page fault. MADV_COLLAPSE turns the 2 MiB regions
//     of the heap's first chunk that already have pages into huge pages, and
//     MADV_HUGEPAGE makes the first touch of a region without pages map a
//     huge page at once. Both are hints: a kernel without THP, or one that
//     cannot find a free huge page, refuses them and nothing changes.
//   - GOMAXPROCS is 1 unless the environment sets it: a plugin's goroutines
//     mostly wait for the kernel or for another process, and with one P the
//     runtime keeps fewer threads spinning and waking each other.
//   - Memory profiling is off (no profile is ever read).
//
// The package imports only the runtime's lowest layers so that it initialises
// among the first.
package shortrun

import (
	"runtime"
	"syscall"
	"unsafe"
)

const (
	hugePage  = 2 << 20
	heapChunk = 4 << 20 // the runtime's pallocChunkBytes: the unit it maps heap in

	madvHugepage = 14 // MADV_HUGEPAGE
	madvCollapse = 25 // MADV_COLLAPSE, Linux 6.1
)

func init() {
	if _, ok := syscall.Getenv("CNI_COMMAND"); !ok {
		return
	}
	runtime.MemProfileRate = 0
	HugeHeap()
	if _, ok := syscall.Getenv("GOMAXPROCS"); !ok {
		runtime.GOMAXPROCS(1)
	}
}

// anchor is a heap object: its address tells where the heap is.
var anchor *[64]byte

// HugeHeap asks for huge pages for the heap chunk (the runtime maps its heap
// 4 MiB at a time) that holds a fresh allocation, and collapses its 2 MiB
// halves that already have pages into huge pages. It returns how many
// halves were collapsed.
func HugeHeap() int {
	anchor = new([64]byte)
	chunk := uintptr(unsafe.Pointer(anchor)) &^ (heapChunk - 1)
	// Errors are expected and harmless: THP may be off, a half may have no
	// pages yet (the hint then gives it a huge page at its first fault).
	_ = madvise(chunk, heapChunk, madvHugepage)
	n := 0
	for half := chunk; half < chunk+heapChunk; half += hugePage {
		if madvise(half, hugePage, madvCollapse) == nil {
			n++
		}
	}
	return n
}

func madvise(addr, n, advice uintptr) error {
	if _, _, e := syscall.Syscall(syscall.SYS_MADVISE, addr, n, advice); e != 0 {
		return e
	}
	return nil
}
