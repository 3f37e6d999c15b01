package disk

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Everything the store touches is reached through a directory descriptor and
// a single path component opened with O_NOFOLLOW: the lease directory, its
// .flatcni and .flatcni/a each held open, so that no symbolic link anywhere
// below <dataDir>/<network> is ever followed and no rename of a directory
// moves an operation out of it. Files are opened with O_NONBLOCK and checked
// with fstat before any read or write: a FIFO, socket or device where a file
// should be is refused, never waited on.

// dirFD is an open directory and the path it was opened at (for messages).
type dirFD struct {
	fd   int
	path string
}

// errNotRegular and errNotDir say what an entry is instead of what it should be.
var (
	errSymlink    = errors.New("is a symbolic link, refusing to follow it")
	errNotRegular = errors.New("is not a regular file, refusing it")
	errNotDir     = errors.New("is not a directory, refusing it")
	errTooLarge   = errors.New("is larger than expected, refusing it")
)

// pathError names the path of an entry in d.
func (d *dirFD) pathError(op, name string, err error) error {
	return &fs.PathError{Op: op, Path: filepath.Join(d.path, name), Err: err}
}

// openDirAt opens the directory name in parent (AT_FDCWD and a path for the
// top), creating it first when create is set; a symbolic link or anything
// else that is not a directory is refused.
func openDirAt(parent int, parentPath, name string, create bool) (*dirFD, error) {
	path := name
	if parentPath != "" {
		path = filepath.Join(parentPath, name)
	}
	if create {
		if err := unix.Mkdirat(parent, name, 0o755); err != nil && err != unix.EEXIST {
			return nil, &fs.PathError{Op: "mkdir", Path: path, Err: err}
		}
	}
	fd, err := ignoringEINTR(func() (int, error) {
		return unix.Openat(parent, name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	})
	if err == unix.ENOTDIR {
		// O_DIRECTORY fails first: tell a symbolic link from a file.
		var st unix.Stat_t
		if unix.Fstatat(parent, name, &st, unix.AT_SYMLINK_NOFOLLOW) == nil && st.Mode&unix.S_IFMT == unix.S_IFLNK {
			err = unix.ELOOP
		}
	}
	if err != nil {
		return nil, &fs.PathError{Op: "open", Path: path, Err: explain(err, true)}
	}
	return &dirFD{fd: fd, path: path}, nil
}

// explain turns the errors of an O_NOFOLLOW open into what they mean.
func explain(err error, wantDir bool) error {
	switch {
	case err == unix.ELOOP:
		return errSymlink
	case err == unix.ENOTDIR && wantDir:
		return errNotDir
	case err == unix.ENXIO:
		return errNotRegular // a FIFO without a reader, a socket
	}
	return err
}

func ignoringEINTR(fn func() (int, error)) (int, error) {
	for {
		fd, err := fn()
		if err != unix.EINTR {
			return fd, err
		}
	}
}

func (d *dirFD) close() {
	if d != nil && d.fd >= 0 {
		unix.Close(d.fd)
		d.fd = -1
	}
}

// openFile opens name in d (flags are added to O_NOFOLLOW, O_NONBLOCK and
// O_CLOEXEC) and checks that it is a regular file.
func (d *dirFD) openFile(name string, flags int, perm uint32) (*os.File, error) {
	fd, err := ignoringEINTR(func() (int, error) {
		return unix.Openat(d.fd, name, flags|unix.O_NOFOLLOW|unix.O_NONBLOCK|unix.O_CLOEXEC, perm)
	})
	if err != nil {
		return nil, d.pathError("open", name, explain(err, false))
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		unix.Close(fd)
		return nil, d.pathError("stat", name, err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		unix.Close(fd)
		return nil, d.pathError("open", name, errNotRegular)
	}
	return os.NewFile(uintptr(fd), filepath.Join(d.path, name)), nil
}

// readFile reads a regular file of at most max bytes.
func (d *dirFD) readFile(name string, max int64) ([]byte, error) {
	f, err := d.openFile(name, unix.O_RDONLY, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return readBounded(f, max)
}

// readBounded reads f to its end, refusing more than max bytes.
func readBounded(f *os.File, max int64) ([]byte, error) {
	b, err := io.ReadAll(io.LimitReader(f, max+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > max {
		return nil, &fs.PathError{Op: "read", Path: f.Name(), Err: fmt.Errorf("%w (more than %d bytes)", errTooLarge, max)}
	}
	return b, nil
}

// remove unlinks name (a missing name is not an error). unlink(2) removes a
// symbolic link itself, never what it points to.
func (d *dirFD) remove(name string) error {
	if err := unix.Unlinkat(d.fd, name, 0); err != nil && err != unix.ENOENT {
		return d.pathError("remove", name, err)
	}
	return nil
}

// exists reports whether d holds an entry called name, whatever it is.
func (d *dirFD) exists(name string) (bool, error) {
	var st unix.Stat_t
	err := unix.Fstatat(d.fd, name, &st, unix.AT_SYMLINK_NOFOLLOW)
	if err == unix.ENOENT {
		return false, nil
	}
	if err != nil {
		return false, d.pathError("stat", name, err)
	}
	return true, nil
}

// entries lists d's entries.
func (d *dirFD) entries() ([]os.DirEntry, error) {
	fd, err := ignoringEINTR(func() (int, error) {
		return unix.Openat(d.fd, ".", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	})
	if err != nil {
		return nil, &fs.PathError{Op: "open", Path: d.path, Err: err}
	}
	f := os.NewFile(uintptr(fd), d.path)
	defer f.Close()
	return f.ReadDir(-1)
}

// mtime returns d's modification time in nanoseconds.
func (d *dirFD) mtime() (int64, error) {
	var st unix.Stat_t
	if err := unix.Fstat(d.fd, &st); err != nil {
		return 0, &fs.PathError{Op: "stat", Path: d.path, Err: err}
	}
	return st.Mtim.Nano(), nil
}

// setMtime sets d's modification time (futimens: utimensat on the
// descriptor itself, with no path).
func (d *dirFD) setMtime(t time.Time) error {
	ts := [2]unix.Timespec{{Nsec: unix.UTIME_OMIT}, unix.NsecToTimespec(t.UnixNano())}
	_, _, errno := unix.Syscall6(unix.SYS_UTIMENSAT, uintptr(d.fd), 0, uintptr(unsafe.Pointer(&ts[0])), 0, 0, 0)
	if errno != 0 {
		return &fs.PathError{Op: "chtimes", Path: d.path, Err: errno}
	}
	return nil
}

// sync makes d's entries durable.
func (d *dirFD) sync() error {
	if err := unix.Fsync(d.fd); err != nil {
		return &fs.PathError{Op: "sync", Path: d.path, Err: err}
	}
	return nil
}
