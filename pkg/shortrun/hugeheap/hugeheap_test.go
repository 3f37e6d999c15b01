package hugeheap

import (
	"runtime"
	"syscall"
	"testing"
	"unsafe"
)

// Collapse only gives hints to the kernel: whatever it answers, the heap
// must stay usable, including the chunk it advised.
func TestCollapseKeepsHeapUsable(t *testing.T) {
	n := Collapse()
	t.Logf("%d heap regions collapsed into huge pages", n)
	if n < 0 || n > 2 {
		t.Errorf("collapsed %d regions of a 2-region chunk", n)
	}
	anchor[0] = 1
	var keep [][]byte
	for i := range 512 {
		b := make([]byte, 4096)
		b[0], b[4095] = byte(i), byte(i)
		keep = append(keep, b)
	}
	runtime.GC()
	for i, b := range keep {
		if b[0] != byte(i) || b[4095] != byte(i) {
			t.Fatalf("block %d changed", i)
		}
	}
	if anchor[0] != 1 {
		t.Error("anchor changed")
	}
}

// The raw system call passes its arguments in the right registers and
// reports the kernel's errno. (Also run for arm64 under qemu-aarch64, which
// emulates these advices.)
func TestMadviseRawCall(t *testing.T) {
	mem, err := syscall.Mmap(-1, 0, 4*hugePage, syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_PRIVATE|syscall.MAP_ANON)
	if err != nil {
		t.Fatal(err)
	}
	defer syscall.Munmap(mem)
	addr := uintptr(unsafe.Pointer(&mem[0]))
	const madvDontneed, madvWillneed = 4, 3
	mem[0] = 7
	if e := madvise(addr, 4096, madvWillneed); e != 0 {
		t.Errorf("MADV_WILLNEED: errno %d", e)
	}
	// MADV_DONTNEED on private anonymous memory zeroes it: proof that the
	// address, length and advice reached the kernel as given.
	if e := madvise(addr, 4096, madvDontneed); e != 0 {
		t.Fatalf("MADV_DONTNEED: errno %d", e)
	}
	if mem[0] != 0 {
		t.Error("MADV_DONTNEED left the page's content")
	}
	if e := madvise(addr+1, 4096, madvWillneed); e != uintptr(syscall.EINVAL) {
		t.Errorf("unaligned address: errno %d, want EINVAL (%d)", e, syscall.EINVAL)
	}
}
