// Package pagecache keeps plugin binaries in the page cache in 2 MiB folios,
// so that each exec maps their code and read-only data with huge pages (see
// internal/hugetext, which lays the binaries out for it and loads them at
// install).
//
// The kernel may drop a cached file at any time: under memory pressure, or,
// on machines that reclaim idle memory proactively (this project's machines
// page out memory that looks idle for a minute, and a binary run for a few
// milliseconds at a time looks idle), while the plugins are in use. The next
// exec then reads the file back in small folios, and every later exec maps
// it page by page: on the bridge ADD rig, ADD took 1.25 ms longer with
// host-local read back so, 2.8 ms with both plugins. Heal lets the bridge
// load its IPAM plugin back in 2 MiB folios before it starts it.
//
// It imports only packages syscall and unsafe, so that pkg/bridge/early can
// use it from its initialiser.
package pagecache

import (
	"syscall"
	"unsafe"
)

// Block is the size of a PMD mapping (a huge page) on amd64, and on arm64
// with 4 KiB pages.
const Block = 2 << 20

const (
	pageSize     = 4096
	sysCachestat = 451 // cachestat(2), Linux 6.5; the same number on amd64 and arm64
	madvHugepage = 14  // MADV_HUGEPAGE
	fadvDontneed = 4   // POSIX_FADV_DONTNEED
)

// Resident tells whether every page of the first size bytes of the file
// open at fd is in the page cache. It fails where cachestat(2) does not
// exist (before Linux 6.5).
func Resident(fd int, size int64) (bool, error) {
	return resident(fd, 0, size)
}

// resident is Resident for the size bytes at off.
func resident(fd int, off, size int64) (bool, error) {
	rng := struct{ off, len uint64 }{uint64(off), uint64(size)}
	var st struct {
		cache, dirty, writeback, evicted, recentlyEvicted uint64
	}
	_, _, e := syscall.Syscall6(sysCachestat, uintptr(fd), uintptr(unsafe.Pointer(&rng)), uintptr(unsafe.Pointer(&st)), 0, 0, 0)
	if e != 0 {
		return false, e
	}
	return st.cache >= uint64((size+pageSize-1)/pageSize), nil
}

// LoadHuge reads the file open at fd (size bytes) into the page cache
// through a 2 MiB aligned mapping advised with MADV_HUGEPAGE: the kernel
// then reads it ahead in 2 MiB folios (on a filesystem with large folios,
// and with transparent huge pages not "never"). Pages already cached stay as
// they are: Drop them first to have the whole file in 2 MiB folios. It
// returns the mapping's address, for a caller that wants to inspect it, and
// the function that unmaps it, which the caller must call.
func LoadHuge(fd int, size int64) (addr uintptr, unmap func(), err error) {
	if size <= 0 {
		return 0, func() {}, nil
	}
	length := uintptr(size+Block-1) &^ (Block - 1)
	// Reserve a block more than needed, to place the file on a boundary.
	reserve, err := mmap(0, length+Block, syscall.PROT_NONE, syscall.MAP_PRIVATE|syscall.MAP_ANON, -1)
	if err != nil {
		return 0, nil, err
	}
	unmap = func() { _ = munmap(reserve, length+Block) }
	at := (reserve + Block - 1) &^ (Block - 1)
	if _, err := mmap(at, length, syscall.PROT_READ, syscall.MAP_PRIVATE|syscall.MAP_FIXED, fd); err != nil {
		unmap()
		return 0, nil, err
	}
	// Without THP (or with it "never") the advice fails: read it anyway.
	_, _, _ = syscall.RawSyscall(syscall.SYS_MADVISE, at, length, madvHugepage)
	// The mapping is not Go memory: the address is taken over as it is.
	mem := unsafe.Slice((*byte)(*(*unsafe.Pointer)(unsafe.Pointer(&at))), length)
	for off := int64(0); off < size; off += pageSize {
		sink += mem[off]
	}
	return at, unmap, nil
}

// sink keeps the reads in LoadHuge from being optimised away.
var sink byte

// Drop writes the file's dirty pages back and drops its pages from the page
// cache, but those some process has mapped (a running binary's).
func Drop(fd int) error {
	if err := syscall.Fdatasync(fd); err != nil {
		return err
	}
	return dontneed(fd, 0, 0)
}

// dontneed drops the n bytes at off (n 0: to the end) of the file open at
// fd from the page cache, but pages some process has mapped.
func dontneed(fd int, off, n int64) error {
	_, _, e := syscall.Syscall6(syscall.SYS_FADVISE64, uintptr(fd), uintptr(off), uintptr(n), fadvDontneed, 0, 0)
	if e != 0 {
		return e
	}
	return nil
}

// Heal loads the binary at path back into the page cache in 2 MiB folios if
// the kernel has dropped any of it, and if it is laid out for huge pages
// (HugeLayout). Otherwise, and on any error, it does nothing: an exec reads
// what it needs as usual. size is the file's size, as the caller's lookup
// of the file found it. It costs three system calls when the file is fully
// cached. A file cached whole but in small folios (an exec read it back
// before anything healed it, or it was copied in without internal/hugetext)
// is not detected: `hugetext -warm` mends that.
func Heal(path string, size int64) {
	if size <= 0 {
		return
	}
	fd, err := syscall.Open(path, syscall.O_RDONLY|syscall.O_CLOEXEC, 0)
	if err != nil {
		return
	}
	defer syscall.Close(fd)
	if ok, err := Resident(fd, size); err != nil || ok {
		return
	}
	var head [4096]byte
	n, err := syscall.Pread(fd, head[:], 0)
	if err != nil || !HugeLayout(head[:n]) {
		return
	}
	// A block the kernel dropped part of: what is left of it, cached in
	// small folios since an exec read it back, would keep it from being read
	// back whole. Blocks still whole stay (their folios are not re-read).
	for off := int64(0); off < size; off += Block {
		if ok, err := resident(fd, off, min(Block, size-off)); err == nil && !ok {
			_ = dontneed(fd, off, Block)
		}
	}
	if _, unmap, err := LoadHuge(fd, size); err == nil {
		unmap()
	}
}

// HugeLayout tells whether head, the start of a file, is a 64-bit
// little-endian ELF executable whose read-only and executable segments are
// whole 2 MiB blocks at 2 MiB boundaries (as internal/hugetext makes them).
func HugeLayout(head []byte) bool {
	if len(head) < 64 || string(head[:4]) != "\x7fELF" || head[4] != 2 || head[5] != 1 {
		return false
	}
	u16 := func(b []byte) uint64 { return uint64(b[0]) | uint64(b[1])<<8 }
	u32 := func(b []byte) uint64 { return u16(b) | u16(b[2:])<<16 }
	u64 := func(b []byte) uint64 { return u32(b) | u32(b[4:])<<32 }
	phoff, phentsize, phnum := u64(head[32:]), u16(head[54:]), u16(head[56:])
	if phentsize < 56 || phoff+phentsize*phnum > uint64(len(head)) {
		return false
	}
	loads := 0
	for i := uint64(0); i < phnum; i++ {
		ph := head[phoff+i*phentsize:]
		const ptLoad, pfW = 1, 2
		if u32(ph) != ptLoad || u32(ph[4:])&pfW != 0 {
			continue
		}
		off, vaddr, filesz := u64(ph[8:]), u64(ph[16:]), u64(ph[32:])
		if off%Block != 0 || vaddr%Block != 0 || filesz == 0 || filesz%Block != 0 {
			return false
		}
		loads++
	}
	return loads > 0
}

func mmap(addr, length uintptr, prot, flags, fd int) (uintptr, error) {
	p, _, e := syscall.Syscall6(syscall.SYS_MMAP, addr, length, uintptr(prot), uintptr(flags), uintptr(fd), 0)
	if e != 0 {
		return 0, e
	}
	return p, nil
}

func munmap(addr, length uintptr) error {
	_, _, e := syscall.Syscall(syscall.SYS_MUNMAP, addr, length, 0)
	if e != 0 {
		return e
	}
	return nil
}
