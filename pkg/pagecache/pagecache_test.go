package pagecache_test

import (
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/flatcni/plugins/internal/hugetext"
	"github.com/flatcni/plugins/pkg/pagecache"
)

type seg struct {
	flags           uint32 // PF_X 1, PF_W 2, PF_R 4
	off, va, filesz uint64
}

// elfHead returns the first 4 KiB of a 64-bit little-endian ELF executable
// with the given loadable segments.
func elfHead(segs ...seg) []byte {
	b := make([]byte, 4096)
	copy(b, "\x7fELF")
	b[4], b[5], b[6] = 2, 1, 1 // 64-bit, little-endian, version 1
	le := binary.LittleEndian
	le.PutUint16(b[16:], 2)  // ET_EXEC
	le.PutUint64(b[32:], 64) // e_phoff
	le.PutUint16(b[54:], 56) // e_phentsize
	le.PutUint16(b[56:], uint16(len(segs)))
	for i, s := range segs {
		ph := b[64+56*i:]
		le.PutUint32(ph[0:], 1) // PT_LOAD
		le.PutUint32(ph[4:], s.flags)
		le.PutUint64(ph[8:], s.off)
		le.PutUint64(ph[16:], s.va)
		le.PutUint64(ph[24:], s.va)
		le.PutUint64(ph[32:], s.filesz)
		le.PutUint64(ph[40:], s.filesz)
		le.PutUint64(ph[48:], pagecache.Block)
	}
	return b
}

const mb2 = pagecache.Block

func TestHugeLayout(t *testing.T) {
	for _, tc := range []struct {
		name string
		head []byte
		want bool
	}{
		{"padded", elfHead(seg{5, 0, 0x400000, mb2}, seg{4, mb2, 0x600000, 2 * mb2}, seg{6, 3 * mb2, 0xa00000, 0x1234}), true},
		{"text not whole blocks", elfHead(seg{5, 0, 0x400000, 0x1de331}, seg{4, mb2, 0x600000, mb2}), false},
		{"rodata not aligned", elfHead(seg{5, 0, 0x400000, mb2}, seg{4, 0x1df000, 0x5df000, mb2}), false},
		{"only writable segments", elfHead(seg{6, 0, 0x400000, 0x1000}), false},
		{"not ELF", append([]byte("#!/bin/sh\n"), make([]byte, 100)...), false},
		{"short", []byte("\x7fELF"), false},
		{"32-bit", func() []byte { b := elfHead(seg{5, 0, 0x400000, mb2}); b[4] = 1; return b }(), false},
		{"program headers past the head", func() []byte {
			b := elfHead(seg{5, 0, 0x400000, mb2})
			binary.LittleEndian.PutUint64(b[32:], 4090)
			return b
		}(), false},
	} {
		if got := pagecache.HugeLayout(tc.head); got != tc.want {
			t.Errorf("%s: HugeLayout = %v, want %v", tc.name, got, tc.want)
		}
	}
}

// writeBinary writes a file of size bytes that starts like a padded plugin,
// 4 KiB at a time: the page cache then holds it in small folios, as after an
// exec read a dropped binary back.
func writeBinary(t *testing.T, size int64) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "plugin")
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o755)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	page := make([]byte, 4096)
	head := elfHead(seg{5, 0, 0x400000, mb2}, seg{4, mb2, 0x600000, mb2})
	for off := int64(0); off < size; off += 4096 {
		clear(page)
		if off == 0 {
			copy(page, head)
		}
		page[4095] = byte(off >> 12) // not all zero: no holes
		if _, err := f.WriteAt(page, off); err != nil {
			t.Fatal(err)
		}
	}
	if err := f.Sync(); err != nil {
		t.Fatal(err)
	}
	return path
}

// openFile opens path for the test's duration and returns its descriptor
// and size.
func openFile(t *testing.T, path string) (fd int, size int64) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	st, err := f.Stat()
	if err != nil {
		t.Fatal(err)
	}
	return int(f.Fd()), st.Size()
}

func resident(t *testing.T, path string) bool {
	t.Helper()
	ok, err := pagecache.Resident(openFile(t, path))
	if errors.Is(err, syscall.ENOSYS) {
		t.Skip("no cachestat(2) (Linux before 6.5)")
	}
	if err != nil {
		t.Fatal(err)
	}
	return ok
}

func drop(t *testing.T, path string) {
	t.Helper()
	fd, _ := openFile(t, path)
	if err := pagecache.Drop(fd); err != nil {
		t.Fatal(err)
	}
}

func TestResidentAndDrop(t *testing.T) {
	path := writeBinary(t, 3*mb2)
	if !resident(t, path) {
		t.Fatal("a file just written is not all in the page cache")
	}
	drop(t, path)
	if resident(t, path) {
		t.Fatal("Drop left the file in the page cache")
	}
}

func thpEnabled() bool {
	b, err := os.ReadFile("/sys/kernel/mm/transparent_hugepage/enabled")
	return err == nil && !strings.Contains(string(b), "[never]")
}

// pmdKB maps the file the way an exec would see the page cache and returns
// how many KiB of it are mapped with huge pages.
func pmdKB(t *testing.T, path string) uint64 {
	t.Helper()
	// LoadHuge on a fully cached file reads nothing new: it only maps.
	addr, unmap, err := pagecache.LoadHuge(openFile(t, path))
	if err != nil {
		t.Fatal(err)
	}
	defer unmap()
	kb, err := hugetext.ReadOnlyPmdKB(os.Getpid(), "")
	if err != nil {
		t.Fatal(err)
	}
	return kb[uint64(addr)]
}

// Heal brings a dropped binary back in 2 MiB folios; a file that is fully
// cached, or not laid out for huge pages, it leaves alone.
func TestHeal(t *testing.T) {
	// Can this machine's page cache hold 2 MiB folios here at all?
	probe := writeBinary(t, 2*mb2)
	drop(t, probe)
	if pmdKB(t, probe) == 0 {
		if !thpEnabled() {
			t.Skip("transparent huge pages are off")
		}
		t.Skip("no 2 MiB folios in the page cache of " + filepath.Dir(probe) + " (filesystem without large folios?)")
	}

	path := writeBinary(t, 3*mb2)
	if kb := pmdKB(t, path); kb != 0 {
		t.Fatalf("the file is already in 2 MiB folios (%d KiB): the test proves nothing", kb)
	}
	// Its first block dropped, as by a reclaimer; the rest still cached.
	fd, _ := openFile(t, path)
	if err := unix.Fadvise(fd, 0, mb2, unix.FADV_DONTNEED); err != nil {
		t.Fatal(err)
	}
	pagecache.Heal(path, 3*mb2)
	if !resident(t, path) {
		t.Fatal("Heal left the file out of the page cache")
	}
	// The block that was dropped is back in one 2 MiB folio; the two that
	// stayed cached (in small folios) are left as they were.
	if kb := pmdKB(t, path); kb != mb2>>10 {
		t.Errorf("%d KiB mapped with huge pages after Heal, want %d", kb, mb2>>10)
	}

	// Not laid out for huge pages: Heal reads nothing.
	plain := filepath.Join(t.TempDir(), "plain")
	if err := os.WriteFile(plain, make([]byte, mb2), 0o755); err != nil {
		t.Fatal(err)
	}
	drop(t, plain)
	pagecache.Heal(plain, mb2)
	if resident(t, plain) {
		t.Error("Heal loaded a file that is not laid out for huge pages")
	}
	// Missing file: nothing happens.
	pagecache.Heal(filepath.Join(t.TempDir(), "missing"), mb2)
}
