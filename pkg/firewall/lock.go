package firewall

import (
	"fmt"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// fileLock is an exclusive flock(2) lock that serialises rule updates
// between processes (and between goroutines, each holding its own open file).
type fileLock struct {
	f *os.File
}

// lockFile takes the exclusive lock on dir/name, creating both if needed,
// and blocks until the lock is granted.
func lockFile(dir, name string) (*fileLock, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("create lock directory %s: %w", dir, err)
	}
	path := filepath.Join(dir, name)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open lock file %s: %w", path, err)
	}
	for {
		err = unix.Flock(int(f.Fd()), unix.LOCK_EX)
		if err != unix.EINTR {
			break
		}
	}
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	return &fileLock{f: f}, nil
}

// unlock releases the lock.
func (l *fileLock) unlock() {
	// Closing the only descriptor of the open file releases the flock.
	l.f.Close()
}

// LockNetwork takes the exclusive lock of one network, lockDir/net-<name>.lock.
// The bridge plugin holds it around "make sure the rules exist" (ADD) and
// "remove them if the network is now empty" (DEL, GC), so that these never
// interleave. The returned function releases it.
func LockNetwork(lockDir, network string) (func(), error) {
	if err := validateName(network); err != nil {
		return nil, err
	}
	l, err := lockFile(lockDir, "net-"+network+".lock")
	if err != nil {
		return nil, fmt.Errorf("network %q: %w", network, err)
	}
	return l.unlock, nil
}
