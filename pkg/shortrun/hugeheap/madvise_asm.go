//go:build linux && (amd64 || arm64)

package hugeheap

// madvise is madvise(2) as a raw system call (no scheduler hand-off, as
// syscall.RawSyscall), returning the errno (0 on success). In assembly so
// that the package needs no other package's initialiser.
//
//go:noescape
func madvise(addr, n, advice uintptr) (errno uintptr)
