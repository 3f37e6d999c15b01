package link

import (
	"fmt"
	"os"
	"runtime"
	"syscall"
)

// IsOwnNetNS tells whether the netns at path is the one the calling
// goroutine's thread is in (the node's, for an unlocked goroutine).
func IsOwnNetNS(path string) (bool, error) {
	var target, own syscall.Stat_t
	if err := syscall.Stat(path, &target); err != nil {
		return false, fmt.Errorf("stat netns %q: %w", path, err)
	}
	runtime.LockOSThread()
	err := syscall.Stat("/proc/thread-self/ns/net", &own)
	runtime.UnlockOSThread()
	if err != nil {
		return false, fmt.Errorf("stat own netns: %w", os.NewSyscallError("stat", err))
	}
	return target.Dev == own.Dev && target.Ino == own.Ino, nil
}
