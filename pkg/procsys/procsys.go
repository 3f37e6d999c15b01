// Package procsys reads and writes kernel settings under /proc/sys, through a
// procfs instance of the process's own when the kernel allows one.
//
// Why not /proc/sys itself: every network namespace that has looked up its
// /proc/sys/net/ipv6 (or ipv4) has its own "ipv6" entry under the machine's
// one /proc/sys/net, and all of them share one dentry hash chain. A lookup
// compares against the entries on that chain until it meets its own: the
// first lookup in a fresh namespace (a container's, during ADD) misses, so it
// walks the whole chain twice, and a namespace that looked its entry up long
// ago (the node's) finds it behind all the newer ones. On a node with 500
// attached containers that first open took ~1 ms here, against ~20 us with
// none: a cost that grows with the node.
//
// A procfs instance made with fsopen(2)/fsmount(2) and never attached to any
// mount namespace has a dentry tree of its own: only this process's lookups
// are on its chains. It shows the same settings (they follow the calling
// thread's network namespace, not the mount) and goes away with the process.
// Where it cannot be made (kernels before 5.2, seccomp, some user
// namespaces), /proc/sys is used.
package procsys

import (
	"bytes"
	"os"
	"path"
	"sync"

	"golang.org/x/sys/unix"
)

// makePrivate is privateSys; tests replace it to take the fallback.
var makePrivate = privateSys

var root struct {
	once    sync.Once
	fd      int  // an O_PATH descriptor of the "sys" directory
	private bool // fd is in a procfs instance of our own
	err     error
}

// sysDir returns a descriptor of the sys directory to resolve keys against.
func sysDir() (int, error) {
	root.once.Do(func() {
		if fd, err := makePrivate(); err == nil {
			root.fd, root.private = fd, true
			return
		}
		root.fd, root.err = openat(unix.AT_FDCWD, "/proc/sys", unix.O_PATH|unix.O_DIRECTORY)
	})
	return root.fd, root.err
}

// privateSys makes a detached procfs instance and opens its sys directory.
// The instance lives as long as that descriptor.
func privateSys() (int, error) {
	fsfd, err := unix.Fsopen("proc", unix.FSOPEN_CLOEXEC)
	if err != nil {
		return -1, err
	}
	defer unix.Close(fsfd)
	if err := unix.FsconfigCreate(fsfd); err != nil {
		return -1, err
	}
	mfd, err := unix.Fsmount(fsfd, unix.FSMOUNT_CLOEXEC, unix.MOUNT_ATTR_NOSUID|unix.MOUNT_ATTR_NODEV|unix.MOUNT_ATTR_NOEXEC)
	if err != nil {
		return -1, err
	}
	fd, err := openat(mfd, "sys", unix.O_PATH|unix.O_DIRECTORY)
	// Closing the mount's own descriptor unmounts it (what is open in it
	// stays usable, as after a lazy unmount), and the kernel then waits for
	// an expedited RCU grace period: ~0.2 ms here, several ms while the CPUs
	// are busy with softirq work. Nobody waits for it but the process's exit.
	go unix.Close(mfd)
	return fd, err
}

// private reports whether settings go through a procfs instance of the
// process's own (false: through /proc/sys).
func private() bool {
	_, err := sysDir()
	return err == nil && root.private
}

// Read returns the value of key ("net/ipv6/conf/eth0/accept_dad"), without
// surrounding white space, in the calling thread's network namespace.
func Read(key string) (string, error) {
	fd, err := open(key, unix.O_RDONLY)
	if err != nil {
		return "", err
	}
	defer unix.Close(fd)
	var b [512]byte
	n, err := ignoringEINTR(func() (int, error) { return unix.Read(fd, b[:]) })
	if err != nil {
		return "", pathError("read", key, err)
	}
	return string(bytes.TrimSpace(b[:n])), nil
}

// Write sets key to value in the calling thread's network namespace.
func Write(key, value string) error {
	fd, err := open(key, unix.O_WRONLY)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	if _, err := ignoringEINTR(func() (int, error) { return unix.Write(fd, []byte(value)) }); err != nil {
		return pathError("write", key, err)
	}
	return nil
}

func open(key string, mode int) (int, error) {
	dir, err := sysDir()
	if err != nil {
		return -1, pathError("open", key, err)
	}
	fd, err := openat(dir, key, mode)
	if err != nil {
		return -1, pathError("open", key, err)
	}
	return fd, nil
}

func openat(dir int, name string, flags int) (int, error) {
	return ignoringEINTR(func() (int, error) { return unix.Openat(dir, name, flags|unix.O_CLOEXEC, 0) })
}

// pathError names the setting as the /proc/sys path a person would look at.
func pathError(op, key string, err error) error {
	return &os.PathError{Op: op, Path: path.Join("/proc/sys", key), Err: err}
}

func ignoringEINTR(f func() (int, error)) (int, error) {
	for {
		n, err := f()
		if err != unix.EINTR {
			return n, err
		}
	}
}
