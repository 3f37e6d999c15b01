package firewall

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"

	"github.com/flatcni/plugins/pkg/safefs"
)

// fileLock is an exclusive flock(2) lock that serialises rule updates
// between processes (and between goroutines, each holding its own open file).
// A nil file is no lock (see options.lock).
type fileLock struct {
	f *os.File
}

// lockFile takes the exclusive lock on dir/name, creating both if needed,
// and blocks until the lock is granted. The directory's parents are the
// administrator's (/run); the directory itself must be a directory owned by
// us, not a symbolic link, and the lock file a regular file in it, not a
// symbolic link: neither is ever followed, and a FIFO or device is refused
// without blocking. Errors name the path.
func lockFile(dir, name string) (*fileLock, error) {
	d, err := openLockDir(dir, true)
	if err != nil {
		return nil, err
	}
	defer d.Close()
	for {
		f, err := d.OpenFile(name, unix.O_RDWR|unix.O_CREAT, 0o600)
		if err != nil {
			return nil, fmt.Errorf("lock file: %w", err)
		}
		for {
			err = unix.Flock(int(f.Fd()), unix.LOCK_EX)
			if err != unix.EINTR {
				break
			}
		}
		if err != nil {
			f.Close()
			return nil, fmt.Errorf("lock %s: %w", f.Name(), err)
		}
		// The file may have been removed (a clean-up of the directory)
		// between our open and our lock: a lock on it orders nothing with
		// whoever opens the name now. Lock the file the name holds.
		if d.Holds(name, f) {
			return &fileLock{f: f}, nil
		}
		f.Close()
	}
}

// openLockDir opens the lock directory (creating it, and its parents, when
// create is set): a directory owned by us, not a symbolic link.
func openLockDir(dir string, create bool) (*safefs.Dir, error) {
	if create {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return nil, fmt.Errorf("create lock directory %s: %w", dir, err)
		}
	}
	d, err := safefs.OpenDirAt(nil, dir, false)
	if err != nil {
		return nil, fmt.Errorf("lock directory: %w", err)
	}
	var st unix.Stat_t
	if err := unix.Fstat(d.Fd(), &st); err != nil {
		d.Close()
		return nil, fmt.Errorf("lock directory %s: %w", dir, err)
	}
	if int(st.Uid) != os.Geteuid() {
		d.Close()
		return nil, fmt.Errorf("lock directory %s: owned by uid %d, not by us (uid %d): refusing it", dir, st.Uid, os.Geteuid())
	}
	return d, nil
}

// openLockDirIfThere is openLockDir without creating the directory: nil
// and no error when there is none (nothing in it to remove).
func openLockDirIfThere(dir string) (*safefs.Dir, error) {
	d, err := openLockDir(dir, false)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	return d, err
}

// unlock releases the lock.
func (l *fileLock) unlock() {
	// Closing the only descriptor of the open file releases the flock.
	if l.f != nil {
		l.f.Close()
	}
}

// WithBestEffortLock makes the backend go on without its lock when the lock
// cannot be had (its directory unusable), saying so on stderr: for DEL and
// GC, which must not fail for ever. The lock only orders concurrent
// updates; ADD, which needs it, fails instead.
func WithBestEffortLock() Option {
	return func(o *options) { o.bestEffortLock = true }
}

// lock takes the backend's lock called name (see WithBestEffortLock).
func (o options) lock(name string) (*fileLock, error) {
	l, err := lockFile(o.lockDir, name)
	if err != nil && o.bestEffortLock {
		fmt.Fprintf(os.Stderr, "going on without the lock: %v\n", err)
		return &fileLock{}, nil
	}
	return l, err
}

// LockNetwork takes the exclusive lock of one network, lockDir/net-<name>.lock.
// The bridge plugin holds it around "make sure the rules exist" (ADD) and
// "remove them if the network is now empty" (DEL, GC), so that these never
// interleave. The returned function releases it.
func LockNetwork(lockDir, network string) (func(), error) {
	if holdsNone(network) {
		// No rules to order (ADD refuses such a network before it
		// would make any, and Ensure refuses the name too).
		return func() {}, nil
	}
	l, err := lockFile(lockDir, "net-"+network+".lock")
	if err != nil {
		return nil, fmt.Errorf("network %q: %w", network, err)
	}
	return l.unlock, nil
}

// The marker lockDir/net-<name>.rules says that the network's masquerade or
// isolation rules may exist: it is made before they are written, or when
// they are found without it (MarkNetwork), and goes once they were removed
// because the configuration asks for none (UnmarkNetwork), or with the
// network's lock file once no container is left (ForgetNetwork). /run is
// a tmpfs on most nodes: a reboot, which takes the rules, takes the marker
// too (where it is not, a marker left costs a look, and its stamp lines,
// stamp.go, name the boot they were written in). A network without it has
// had no such rules written since the node started (or since the marker
// went by hand; GC removes rules without asking it): its ADD and DEL need
// not look. An ADD that found the rules in place writes its stamp in it.

func networkMarker(network string) string { return "net-" + network + ".rules" }

// NetworkMarked reports whether the network's marker may exist: false
// when looking for it found nothing (an unusable directory: true) or for a
// name that can have no rules (MarkNetwork refuses it).
func NetworkMarked(lockDir, network string) bool {
	if holdsNone(network) {
		return false
	}
	_, err := os.Lstat(filepath.Join(lockDir, networkMarker(network)))
	return !errors.Is(err, fs.ErrNotExist)
}

// MarkNetwork makes the network's marker (a regular file; neither the
// directory nor the file is followed if a symbolic link).
func MarkNetwork(lockDir, network string) error {
	if err := validateName(network); err != nil {
		return err
	}
	d, err := openLockDir(lockDir, true)
	if err != nil {
		return err
	}
	defer d.Close()
	f, err := d.OpenFile(networkMarker(network), unix.O_WRONLY|unix.O_CREAT, 0o600)
	if err != nil {
		return fmt.Errorf("network %q: marker: %w", network, err)
	}
	return f.Close()
}

// UnmarkNetwork removes the network's marker, if any.
func UnmarkNetwork(lockDir, network string) error {
	if holdsNone(network) {
		return nil // never marked nor locked
	}
	d, err := openLockDirIfThere(lockDir)
	if d == nil {
		return err
	}
	defer d.Close()
	if err := d.Remove(networkMarker(network)); err != nil {
		return fmt.Errorf("network %q: marker: %w", network, err)
	}
	return nil
}

// ForgetNetwork removes the network's marker, port rules' stamp lines
// (stamp.go) and lock file, so that a network whose last container went
// leaves nothing in lockDir. It takes the network's lock and removes them
// only if unused, called under it,
// reports that nothing is attached any more (an ADD that wrote rules since
// has its port on the bridge by then); the lock file goes last, while held:
// a caller waiting on it then locks the file the name holds (lockFile).
// Without any of the files it takes no lock.
func ForgetNetwork(lockDir, network string, unused func() (bool, error)) error {
	if holdsNone(network) {
		return nil // never marked nor locked
	}
	d, err := openLockDirIfThere(lockDir)
	if d == nil {
		return err
	}
	defer d.Close()
	name := "net-" + network + ".lock"
	lockThere, err := d.Exists(name)
	if err != nil {
		return err
	}
	files := []string{networkMarker(network), portsStamps(network)}
	some := lockThere
	for _, f := range files {
		there, err := d.Exists(f)
		if err != nil {
			return err
		}
		some = some || there
	}
	if !some {
		return nil
	}
	l, err := lockFile(lockDir, name)
	if err != nil {
		return fmt.Errorf("network %q: %w", network, err)
	}
	defer l.unlock()
	if ok, err := unused(); err != nil || !ok {
		return err
	}
	for _, f := range files {
		if err := d.Remove(f); err != nil {
			return fmt.Errorf("network %q: %s: %w", network, f, err)
		}
	}
	if err := d.Remove(name); err != nil {
		return fmt.Errorf("network %q: lock file: %w", network, err)
	}
	return nil
}

// LockNetworkForTeardown is LockNetwork for DEL and GC: when the lock
// cannot be had, it says why on stderr and goes on without it (best
// effort: a DEL that fails for ever blocks the runtime).
func LockNetworkForTeardown(lockDir, network string) func() {
	unlock, err := LockNetwork(lockDir, network)
	if err != nil {
		fmt.Fprintf(os.Stderr, "going on without the lock: %v\n", err)
		return func() {}
	}
	return unlock
}
