// Package hugeheap backs the Go heap of a plugin process with transparent
// huge pages, from the first package initialiser the Go runtime runs after
// its own start.
//
// A plugin call lives a few milliseconds, and on virtual machines most of
// that goes to the Go runtime's own costs: a page fault costs 15-20 us on
// this project's machines, and the heap, goroutine stacks included, grows to
// a megabyte or two, touched 4 KiB page by page. MADV_COLLAPSE turns the
// 2 MiB regions of the heap's first chunk that already have pages into huge
// pages, and MADV_HUGEPAGE makes the first touch of a region without pages
// map a huge page at once. Both are hints: a kernel without THP, or one that
// cannot find a free huge page, refuses them and nothing changes.
//
// The sooner this runs, the fewer pages are touched one by one before it:
// the package imports nothing that has an initialiser (its madvise is a
// raw system call in assembly on amd64 and arm64), so the runtime, which
// initialises packages in dependency order and otherwise in lexical order,
// runs it before sync, syscall, internal/godebug and the rest. Measured on
// the bridge ADD rig against the same collapse from pkg/shortrun (after
// package syscall): ADD 1.4 ms and DEL 0.5-1 ms faster; internal/godebug's
// initialiser, 0.2-1 ms of page faults before, then takes 0.05-0.15 ms.
//
// A plugin binary imports it (through pkg/shortrun) for that effect alone.
package hugeheap

import "unsafe"

const (
	hugePage  = 2 << 20
	heapChunk = 4 << 20 // the runtime's pallocChunkBytes: the unit it maps heap in

	madvHugepage = 14 // MADV_HUGEPAGE
	madvCollapse = 25 // MADV_COLLAPSE, Linux 6.1
)

func init() {
	Collapse()
}

// anchor is a heap object: its address tells where the heap is.
var anchor *[64]byte

// Collapse asks for huge pages for the heap chunk (the runtime maps its heap
// 4 MiB at a time) that holds a fresh allocation, and collapses its 2 MiB
// halves that already have pages into huge pages. It returns how many
// halves were collapsed.
func Collapse() int {
	anchor = new([64]byte)
	chunk := uintptr(unsafe.Pointer(anchor)) &^ (heapChunk - 1)
	// Errors are expected and harmless: THP may be off, a half may have no
	// pages yet (the hint then gives it a huge page at its first fault).
	_ = madvise(chunk, heapChunk, madvHugepage)
	n := 0
	for half := chunk; half < chunk+heapChunk; half += hugePage {
		if madvise(half, hugePage, madvCollapse) == 0 {
			n++
		}
	}
	return n
}
