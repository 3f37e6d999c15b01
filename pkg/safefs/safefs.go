// Package safefs opens files below a directory without ever following a
// symbolic link, and refuses, without blocking, anything that is not a
// regular file where one should be: for state a root plugin keeps in folders
// others might tamper with (the lease store, the firewall's lock files).
//
// A Dir is an open directory. Every file is opened relative to its
// descriptor, one name at a time, with O_NOFOLLOW and O_NONBLOCK, and
// checked with fstat before it is read (with a size bound) or written;
// removing uses unlinkat, which removes a link itself, never its target,
// and RemoveAll never descends into a mount point (a bind mount of the
// same file system included).
// Errors are *fs.PathError naming the full path, wrapping ErrSymlink,
// ErrNotRegular, ErrNotDir or ErrTooLarge when the entry is not what it
// should be.
//
// ReadPath reads a file at a path the administrator chose (resolvConf),
// following symbolic links, and opens nothing but a regular file:
// the path is opened with O_PATH, which runs no FIFO's or device's open,
// and only a regular file is then opened for reading (through /proc).
package safefs

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Dir is an open directory and the path it was opened at (for messages).
type Dir struct {
	fd   int
	path string
}

// What an entry is instead of what it should be.
var (
	ErrSymlink    = errors.New("is a symbolic link, refusing to follow it")
	ErrNotRegular = errors.New("is not a regular file, refusing it")
	ErrNotDir     = errors.New("is not a directory, refusing it")
	ErrTooLarge   = errors.New("is larger than expected, refusing it")
	ErrHardLinked = errors.New("has other hard links, refusing to write through it")
)

// Path is where d was opened.
func (d *Dir) Path() string { return d.path }

// Fd is d's descriptor, for the *at system calls between directories.
func (d *Dir) Fd() int { return d.fd }

// PathError names the path of an entry in d.
func (d *Dir) PathError(op, name string, err error) error {
	return &fs.PathError{Op: op, Path: filepath.Join(d.path, name), Err: err}
}

// Open opens the directory at path, following symbolic links: for a path
// the administrator chose (a data directory), below which OpenDirAt goes on.
func Open(path string) (*Dir, error) {
	fd, err := ignoringEINTR(func() (int, error) {
		return unix.Open(path, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	})
	if err != nil {
		return nil, &fs.PathError{Op: "open", Path: path, Err: err}
	}
	return &Dir{fd: fd, path: path}, nil
}

// OpenDirAt opens the directory name in parent (nil: name is a path, whose
// last component is not followed), creating it first when create is set; a
// symbolic link or anything else that is not a directory is refused.
func OpenDirAt(parent *Dir, name string, create bool) (*Dir, error) {
	pfd, path := unix.AT_FDCWD, name
	if parent != nil {
		pfd, path = parent.fd, filepath.Join(parent.path, name)
	}
	return openDirAt(pfd, path, name, create, 0o755)
}

// OpenPrivateDirAt is OpenDirAt for a directory of this user's alone: made
// 0700, and one of this user's found open to others (made by an earlier
// version) is made 0700 too, best effort (a read-only file system stays as
// it is).
func OpenPrivateDirAt(parent *Dir, name string, create bool) (*Dir, error) {
	d, err := openDirAt(parent.fd, filepath.Join(parent.path, name), name, create, 0o700)
	if err != nil {
		return nil, err
	}
	if st, err := d.Stat(); err == nil && st.Mode&0o077 != 0 && int(st.Uid) == os.Geteuid() {
		_ = unix.Fchmod(d.fd, 0o700)
	}
	return d, nil
}

func openDirAt(parent int, path, name string, create bool, perm uint32) (*Dir, error) {
	if create {
		if err := unix.Mkdirat(parent, name, perm); err != nil && err != unix.EEXIST {
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
	return &Dir{fd: fd, path: path}, nil
}

// explain turns the errors of an O_NOFOLLOW open into what they mean.
func explain(err error, wantDir bool) error {
	switch {
	case err == unix.ELOOP:
		return ErrSymlink
	case err == unix.ENOTDIR && wantDir:
		return ErrNotDir
	case err == unix.ENXIO:
		return ErrNotRegular // a FIFO without a reader, a socket
	case err == unix.EISDIR && !wantDir:
		return ErrNotRegular // a directory opened for writing
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

// Close closes d (a nil Dir too).
func (d *Dir) Close() {
	if d != nil && d.fd >= 0 {
		unix.Close(d.fd)
		d.fd = -1
	}
}

// OpenFile opens name in d (flags are added to O_NOFOLLOW, O_NONBLOCK and
// O_CLOEXEC) and checks that it is a regular file.
func (d *Dir) OpenFile(name string, flags int, perm uint32) (*os.File, error) {
	f, _, err := d.openFile(name, flags, perm)
	return f, err
}

// openFile is OpenFile, also returning the status it checked.
//
// An entry that is there already is opened with O_PATH first (no link
// followed), which acts on nothing, and refused unless that descriptor is
// a regular file's, so that a FIFO or a device is never opened: open(2)
// itself acts on those (a FIFO's other end sees it, a device's driver
// runs). The file is then opened through /proc/self/fd/<n> (reopen), which
// opens the very inode looked at, whatever the name holds by then. A
// missing entry that O_CREAT makes is made with O_EXCL, which never opens
// an existing entry of any kind; one that appeared meanwhile is looked at
// as above. So openFile needs procfs at /proc, as ReadPath.
func (d *Dir) openFile(name string, flags int, perm uint32) (*os.File, *unix.Stat_t, error) {
	create := flags&unix.O_CREAT != 0
	if create && flags&unix.O_EXCL != 0 {
		return d.openNew(name, flags, perm)
	}
	for range 3 {
		pfd, err := ignoringEINTR(func() (int, error) {
			return unix.Openat(d.fd, name, unix.O_PATH|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		})
		if err == nil {
			return d.openLooked(pfd, name, flags&^(unix.O_CREAT|unix.O_EXCL))
		}
		if err != unix.ENOENT || !create {
			return nil, nil, d.PathError("open", name, explain(err, false))
		}
		f, st, err := d.openNew(name, flags|unix.O_EXCL, perm)
		if !errors.Is(err, fs.ErrExist) {
			return f, st, err
		}
	}
	return nil, nil, d.PathError("open", name, errors.New("made and removed again and again by another process"))
}

// openNew makes and opens a new file (flags hold O_CREAT and O_EXCL).
func (d *Dir) openNew(name string, flags int, perm uint32) (*os.File, *unix.Stat_t, error) {
	fd, err := ignoringEINTR(func() (int, error) {
		return unix.Openat(d.fd, name, flags|unix.O_NOFOLLOW|unix.O_NONBLOCK|unix.O_CLOEXEC, perm)
	})
	if err != nil {
		return nil, nil, d.PathError("open", name, explain(err, false))
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		unix.Close(fd)
		return nil, nil, d.PathError("stat", name, err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		unix.Close(fd)
		return nil, nil, d.PathError("open", name, ErrNotRegular)
	}
	return os.NewFile(uintptr(fd), filepath.Join(d.path, name)), &st, nil
}

// testHookLooked, when set (tests), runs between the look at an existing
// entry and its opening.
var testHookLooked func(name string)

// openLooked opens with flags the entry name that the O_PATH descriptor
// pfd refers to (and closes pfd), if it is a regular file.
func (d *Dir) openLooked(pfd int, name string, flags int) (*os.File, *unix.Stat_t, error) {
	defer unix.Close(pfd)
	var looked unix.Stat_t
	if err := unix.Fstat(pfd, &looked); err != nil {
		return nil, nil, d.PathError("stat", name, err)
	}
	switch looked.Mode & unix.S_IFMT {
	case unix.S_IFREG:
	case unix.S_IFLNK:
		return nil, nil, d.PathError("open", name, ErrSymlink)
	default:
		return nil, nil, d.PathError("open", name, ErrNotRegular)
	}
	if testHookLooked != nil {
		testHookLooked(name)
	}
	fd, st, err := reopen(pfd, &looked, flags|unix.O_NONBLOCK)
	if err != nil {
		return nil, nil, d.PathError("open", name, err)
	}
	return os.NewFile(uintptr(fd), filepath.Join(d.path, name)), st, nil
}

// reopen opens with flags the regular file that the O_PATH descriptor pfd
// refers to (looked: its status), through /proc/self/fd/<pfd>, which
// reopens that very file; the status of the new descriptor is checked
// against looked (same device and inode: procfs is at /proc).
func reopen(pfd int, looked *unix.Stat_t, flags int) (int, *unix.Stat_t, error) {
	proc := "/proc/self/fd/" + strconv.Itoa(pfd)
	fd, err := ignoringEINTR(func() (int, error) {
		return unix.Open(proc, flags|unix.O_CLOEXEC|unix.O_NOCTTY, 0)
	})
	if err == unix.ENOENT {
		return -1, nil, fmt.Errorf("reopening through %s: %w (is procfs at /proc?)", proc, err)
	}
	if err != nil {
		return -1, nil, err // the file's own error (a read-only file system)
	}
	var opened unix.Stat_t
	if err := unix.Fstat(fd, &opened); err != nil {
		unix.Close(fd)
		return -1, nil, err
	}
	if opened.Dev != looked.Dev || opened.Ino != looked.Ino || opened.Mode&unix.S_IFMT != unix.S_IFREG {
		unix.Close(fd)
		return -1, nil, fmt.Errorf("reopening through %s gave another file (is procfs at /proc?)", proc)
	}
	return fd, &opened, nil
}

// ReadFile reads a regular file of at most max bytes.
func (d *Dir) ReadFile(name string, max int64) ([]byte, error) {
	b, _, err := d.ReadFileStat(name, max)
	return b, err
}

// ReadFileStat is ReadFile that also returns the file's status (as it was
// opened).
func (d *Dir) ReadFileStat(name string, max int64) ([]byte, *unix.Stat_t, error) {
	f, st, err := d.openFile(name, unix.O_RDONLY, 0)
	if err != nil {
		return nil, nil, err
	}
	defer f.Close()
	b, err := ReadBounded(f, max)
	return b, st, err
}

// ReadBounded reads f to its end, refusing more than max bytes.
func ReadBounded(f *os.File, max int64) ([]byte, error) {
	b, err := io.ReadAll(io.LimitReader(f, max+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > max {
		return nil, &fs.PathError{Op: "read", Path: f.Name(), Err: fmt.Errorf("%w (more than %d bytes)", ErrTooLarge, max)}
	}
	return b, nil
}

// Overwrite writes data over name's content in place (creating it when
// missing; refusing a file with other hard links), for small files whose
// torn content is harmless: they only steer (a torn one costs a search or
// a check), read under a lock or made of lines each true on its own.
// Renaming a new file over an existing one would make ext4 (auto_da_alloc)
// start writing the new file out at once, 0.1-0.7 ms a rename here;
// truncating to zero first would do the same at close, so the data is
// written first and the file cut only when it was longer.
func (d *Dir) Overwrite(name string, data []byte) error {
	return d.overwrite(name, data, unix.O_CREAT)
}

// OverwriteExisting is Overwrite of a file that must exist: a missing one
// is an error (fs.ErrNotExist), not made.
func (d *Dir) OverwriteExisting(name string, data []byte) error {
	return d.overwrite(name, data, 0)
}

func (d *Dir) overwrite(name string, data []byte, create int) error {
	f, st, err := d.openFile(name, unix.O_WRONLY|create, 0o600)
	if err != nil {
		return err
	}
	if st.Nlink != 1 {
		// Another name for the same file, maybe outside the directory:
		// writing in place would change it there too.
		f.Close()
		return d.PathError("write", name, ErrHardLinked)
	}
	_, err = f.WriteAt(data, 0)
	if err == nil && st.Size > int64(len(data)) {
		err = f.Truncate(int64(len(data)))
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// Remove unlinks name (a missing name is not an error). unlink(2) removes a
// symbolic link itself, never what it points to.
func (d *Dir) Remove(name string) error {
	if err := unix.Unlinkat(d.fd, name, 0); err != nil && err != unix.ENOENT {
		return d.PathError("remove", name, err)
	}
	return nil
}

// maxRemoveDepth bounds RemoveAll's descent.
const maxRemoveDepth = 16

// RemoveAll removes name from d and, when it is a directory, what it holds,
// through directory descriptors only: a symbolic link is removed itself,
// never followed, and a mount point (another file system, or a bind mount
// of the same one) is never descended into: RemoveAll stops there with an
// error wrapping EXDEV, and what is mounted stays as it is (what it had
// removed of the tree before it got there is gone). A file mounted over
// one is not removed either (unlink fails with EBUSY). A missing name is
// not an error.
//
// Mount points are told by mount ID (statx's STATX_MNT_ID, Linux 5.8); on
// a kernel that does not report it, by st_dev, which tells another file
// system but not a bind mount of the same one.
func (d *Dir) RemoveAll(name string) error {
	return d.removeAll(name, maxRemoveDepth)
}

func (d *Dir) removeAll(name string, depth int) error {
	err := unix.Unlinkat(d.fd, name, 0)
	if err == nil || err == unix.ENOENT {
		return nil
	}
	if err != unix.EISDIR && err != unix.EPERM { // EPERM: unlink of a directory on some systems
		return d.PathError("remove", name, err)
	}
	if depth == 0 {
		return d.PathError("remove", name, unix.ELOOP)
	}
	sub, err := OpenDirAt(d, name, false)
	if err != nil {
		return err
	}
	// sub is open on what is mounted there, if anything: the lookup crossed
	// into it, and the descriptor stays on that mount.
	same, err := sameMount(d, sub, name)
	if err == nil && !same {
		err = d.PathError("remove", name, fmt.Errorf("a mount point, not descended into: %w", unix.EXDEV))
	}
	if err != nil {
		sub.Close()
		return err
	}
	entries, err := sub.Entries()
	if err == nil {
		for _, e := range entries {
			if err = sub.removeAll(e.Name(), depth-1); err != nil {
				break
			}
		}
	}
	sub.Close()
	if err != nil {
		return err
	}
	if err := unix.Unlinkat(d.fd, name, unix.AT_REMOVEDIR); err != nil && err != unix.ENOENT {
		return d.PathError("remove", name, err)
	}
	return nil
}

// sameMount reports whether sub (name in d) is on d's mount: same mount ID,
// or, when the kernel reports none (statx before Linux 5.8, or no statx at
// all), same st_dev.
func sameMount(d, sub *Dir, name string) (bool, error) {
	const flags = unix.AT_EMPTY_PATH | unix.AT_SYMLINK_NOFOLLOW
	var here, there unix.Statx_t
	err := unix.Statx(d.fd, "", flags, unix.STATX_MNT_ID, &here)
	if err == nil {
		if err = unix.Statx(sub.fd, "", flags, unix.STATX_MNT_ID, &there); err != nil {
			return false, d.PathError("stat", name, err)
		}
		if here.Mask&there.Mask&unix.STATX_MNT_ID != 0 {
			return here.Mnt_id == there.Mnt_id, nil
		}
		return here.Dev_major == there.Dev_major && here.Dev_minor == there.Dev_minor, nil
	}
	if err != unix.ENOSYS && err != unix.EPERM { // EPERM: a seccomp filter that predates statx
		return false, d.PathError("stat", ".", err)
	}
	var hst, tst unix.Stat_t
	if err := unix.Fstat(d.fd, &hst); err != nil {
		return false, d.PathError("stat", ".", err)
	}
	if err := unix.Fstat(sub.fd, &tst); err != nil {
		return false, d.PathError("stat", name, err)
	}
	return hst.Dev == tst.Dev, nil
}

// Exists reports whether d holds an entry called name, whatever it is.
func (d *Dir) Exists(name string) (bool, error) {
	var st unix.Stat_t
	err := unix.Fstatat(d.fd, name, &st, unix.AT_SYMLINK_NOFOLLOW)
	if err == unix.ENOENT {
		return false, nil
	}
	if err != nil {
		return false, d.PathError("stat", name, err)
	}
	return true, nil
}

// Holds reports whether name in d is still the file f is open on (same
// device and inode, no link followed): a lock taken on f orders nothing
// with whoever opens name after it was removed or replaced.
func (d *Dir) Holds(name string, f *os.File) bool {
	var held, named unix.Stat_t
	return unix.Fstat(int(f.Fd()), &held) == nil && unix.Fstatat(d.fd, name, &named, unix.AT_SYMLINK_NOFOLLOW) == nil &&
		held.Dev == named.Dev && held.Ino == named.Ino
}

// Entries lists d's entries.
func (d *Dir) Entries() ([]os.DirEntry, error) {
	var out []os.DirEntry
	err := d.EachEntry(func(e os.DirEntry) bool {
		out = append(out, e)
		return false
	})
	return out, err
}

// EachEntry calls fn with d's entries, in the directory's order, until fn
// returns true; it reads them a batch at a time, so stopping early reads
// only the first batches.
func (d *Dir) EachEntry(fn func(os.DirEntry) (stop bool)) error {
	fd, err := ignoringEINTR(func() (int, error) {
		return unix.Openat(d.fd, ".", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	})
	if err != nil {
		return &fs.PathError{Op: "open", Path: d.path, Err: err}
	}
	f := os.NewFile(uintptr(fd), d.path)
	defer f.Close()
	for {
		batch, err := f.ReadDir(128)
		for _, e := range batch {
			if fn(e) {
				return nil
			}
		}
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
	}
}

// Stat returns d's status.
func (d *Dir) Stat() (*unix.Stat_t, error) {
	var st unix.Stat_t
	if err := unix.Fstat(d.fd, &st); err != nil {
		return nil, &fs.PathError{Op: "stat", Path: d.path, Err: err}
	}
	return &st, nil
}

// SetMtime sets d's modification time (futimens: utimensat on the
// descriptor itself, with no path).
func (d *Dir) SetMtime(t time.Time) error {
	ts := [2]unix.Timespec{{Nsec: unix.UTIME_OMIT}, unix.NsecToTimespec(t.UnixNano())}
	_, _, errno := unix.Syscall6(unix.SYS_UTIMENSAT, uintptr(d.fd), 0, uintptr(unsafe.Pointer(&ts[0])), 0, 0, 0)
	if errno != 0 {
		return &fs.PathError{Op: "chtimes", Path: d.path, Err: errno}
	}
	return nil
}

// Sync makes d's entries durable.
func (d *Dir) Sync() error {
	if err := unix.Fsync(d.fd); err != nil {
		return &fs.PathError{Op: "sync", Path: d.path, Err: err}
	}
	return nil
}

// kernelFS names the kernel interface file system fd is on (procfs, sysfs,
// tracefs, ...), or "" for any other.
func kernelFS(fd int) string {
	var sfs unix.Statfs_t
	if unix.Fstatfs(fd, &sfs) != nil {
		return ""
	}
	switch sfs.Type {
	case unix.PROC_SUPER_MAGIC:
		return "procfs"
	case unix.SYSFS_MAGIC:
		return "sysfs"
	case unix.TRACEFS_MAGIC:
		return "tracefs"
	case unix.DEBUGFS_MAGIC:
		return "debugfs"
	case unix.SECURITYFS_MAGIC:
		return "securityfs"
	case unix.CGROUP_SUPER_MAGIC, unix.CGROUP2_SUPER_MAGIC:
		return "cgroupfs"
	case unix.BPF_FS_MAGIC:
		return "bpffs"
	}
	return ""
}

// ReadPath reads the regular file at path (symbolic links followed: a path
// the administrator chose), of at most max bytes; anything else is refused
// without being opened, so without blocking and without effect: open(2) of
// a FIFO lets a writer waiting in its own open through, and open(2) of a
// device runs its driver's open (a watchdog's arms it); so is a file of a
// kernel interface file system (kernelFS), whose read may block or act.
// The path is opened with O_PATH, which runs neither, and that descriptor checked with fstat;
// only a regular file is then opened for reading, through
// /proc/self/fd/<n>, which reopens the very file looked at (checked again:
// same device and inode). So ReadPath needs procfs at /proc.
func ReadPath(path string, max int64) ([]byte, error) {
	pfd, err := ignoringEINTR(func() (int, error) {
		return unix.Open(path, unix.O_PATH|unix.O_CLOEXEC, 0)
	})
	if err != nil {
		return nil, &fs.PathError{Op: "open", Path: path, Err: err}
	}
	defer unix.Close(pfd)
	var looked unix.Stat_t
	if err := unix.Fstat(pfd, &looked); err != nil {
		return nil, &fs.PathError{Op: "stat", Path: path, Err: err}
	}
	if looked.Mode&unix.S_IFMT != unix.S_IFREG {
		return nil, &fs.PathError{Op: "open", Path: path, Err: ErrNotRegular}
	}
	if kind := kernelFS(pfd); kind != "" {
		// Its "regular" files are the kernel's interfaces: a read of
		// tracefs's trace_pipe blocks for ever, one of /proc/kmsg
		// consumes the kernel's log.
		return nil, &fs.PathError{Op: "open", Path: path, Err: fmt.Errorf("%w (a file of %s)", ErrNotRegular, kind)}
	}
	fd, _, err := reopen(pfd, &looked, unix.O_RDONLY)
	if err != nil {
		return nil, &fs.PathError{Op: "open", Path: path, Err: err}
	}
	f := os.NewFile(uintptr(fd), path)
	defer f.Close()
	return ReadBounded(f, max)
}
