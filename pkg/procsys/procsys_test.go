package procsys

import (
	"errors"
	"os"
	"strings"
	"sync"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/flatcni/plugins/internal/testns"
)

// reset forgets the descriptor chosen so far (the process keeps it open; a
// test's leftover is harmless) and makes the next call choose again with mk.
func reset(t *testing.T, mk func() (int, error)) {
	t.Helper()
	old := makePrivate
	makePrivate = mk
	root.once, root.fd, root.private, root.err = sync.Once{}, 0, false, nil
	t.Cleanup(func() {
		makePrivate = old
		root.once, root.fd, root.private, root.err = sync.Once{}, 0, false, nil
	})
}

func plainRead(t *testing.T, key string) string {
	t.Helper()
	b, err := os.ReadFile("/proc/sys/" + key)
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}

// readWrite writes a setting in one throwaway namespace and checks it there
// (through Read and through /proc/sys), in a second one and in the test's
// own namespace, which must keep their values.
func readWrite(t *testing.T) {
	const key = "net/ipv4/conf/lo/arp_notify"
	a, b := testns.New(t, "procsys-a"), testns.New(t, "procsys-b")
	own := plainRead(t, key)
	if err := a.Do(func() error {
		if err := Write(key, "1"); err != nil {
			return err
		}
		v, err := Read(key)
		if err != nil {
			return err
		}
		if v != "1" {
			t.Errorf("Read %s = %q after writing 1", key, v)
		}
		if p := plainRead(t, key); p != "1" {
			t.Errorf("/proc/sys/%s = %q after writing 1", key, p)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if err := b.Do(func() error {
		v, err := Read(key)
		if err == nil && v != "0" {
			t.Errorf("another namespace reads %s = %q, want its own 0", key, v)
		}
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if p := plainRead(t, key); p != own {
		t.Errorf("the test's own namespace: %s = %q, was %q", key, p, own)
	}
}

func TestPrivateInstance(t *testing.T) {
	testns.RequireRoot(t)
	reset(t, privateSys)
	fd, err := privateSys()
	if errors.Is(err, unix.ENOSYS) {
		t.Skip("no fsopen(2) on this kernel: settings go through /proc/sys")
	}
	if err != nil {
		t.Fatalf("a procfs instance of our own: %v", err)
	}
	unix.Close(fd)
	before := procMounts(t)
	if !private() {
		t.Fatal("settings go through /proc/sys although a procfs instance can be made")
	}
	readWrite(t)
	if after := procMounts(t); after != before {
		t.Errorf("procfs mounts in our mount namespace: %d before, %d after; the instance must stay detached", before, after)
	}
}

// procMounts counts the procfs mounts in the test's mount namespace.
func procMounts(t *testing.T) int {
	t.Helper()
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	return strings.Count(string(b), " - proc ")
}

func TestFallbackToProcSys(t *testing.T) {
	testns.RequireRoot(t)
	reset(t, func() (int, error) { return -1, unix.EPERM })
	if private() {
		t.Fatal("private() with the private instance refused")
	}
	readWrite(t)
}

func TestErrorNamesTheSetting(t *testing.T) {
	_, err := Read("net/ipv6/conf/nosuchlink0/accept_dad")
	if err == nil || !strings.Contains(err.Error(), "/proc/sys/net/ipv6/conf/nosuchlink0/accept_dad") {
		t.Fatalf("Read of a missing setting: %v, want an error naming its /proc/sys path", err)
	}
	if !errors.Is(err, os.ErrNotExist) {
		t.Errorf("error %v does not match os.ErrNotExist", err)
	}
	err = Write("net/ipv6/conf/nosuchlink0/accept_dad", "0")
	if err == nil || !strings.Contains(err.Error(), "open /proc/sys/net/ipv6/conf/nosuchlink0/accept_dad") {
		t.Fatalf("Write of a missing setting: %v, want an error naming its /proc/sys path", err)
	}
}
