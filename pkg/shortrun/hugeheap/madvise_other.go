//go:build linux && !amd64 && !arm64

package hugeheap

import "syscall"

// madvise is madvise(2), returning the errno (0 on success). On these
// architectures it goes through package syscall, so the package initialises
// once syscall has (later than on amd64 and arm64, still before main).
func madvise(addr, n, advice uintptr) (errno uintptr) {
	_, _, e := syscall.RawSyscall(syscall.SYS_MADVISE, addr, n, advice)
	return uintptr(e)
}
