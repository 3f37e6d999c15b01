// Package hugetext lets the kernel map a plugin binary's code and read-only
// data with 2 MiB pages; cmd/hugetext is its command, which `make build` and
// `make install` run. The plugins work the same without it, only slower to
// start.
//
// Why: on the virtual machines this project is measured on, every page fault
// costs 15-20 us, and starting a Go binary takes a few hundred of them. The
// code and read-only data of a bridge ADD alone took some 60 faults (of 64
// KiB each, the kernel's fault-around) in the bridge and 40 in host-local. A
// file-backed mapping is mapped with one 2 MiB page table entry per fault
// when three things hold:
//
//   - the segment's virtual address and file offset are 2 MiB aligned (the
//     build links with -R 0x200000);
//   - the segment covers whole 2 MiB blocks (Pad extends the program header
//     of each read-only or executable segment over the zero padding the
//     linker leaves up to the next 2 MiB boundary; nothing else in the file
//     changes);
//   - the page cache holds the file in 2 MiB folios (Warm drops the file's
//     cached pages and reads it back through a mapping advised with
//     MADV_HUGEPAGE, which makes the kernel read it ahead in 2 MiB folios;
//     every later exec then maps those). This needs a kernel with
//     transparent huge pages not set to "never" and a filesystem with large
//     folios (ext4 since Linux 6.16, XFS); elsewhere it changes nothing.
//
// The page cache keeps the folios as long as it keeps the file. If the
// kernel drops them (memory pressure, drop_caches, a reboot), the next exec
// reads the file back in small pages and the plugins start as they would
// without this; `hugetext -warm` on the installed files restores it.
package hugetext

import (
	"bufio"
	"bytes"
	"debug/elf"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/flatcni/plugins/pkg/pagecache"
)

// Block is the size of a PMD mapping (a huge page) on amd64, and on arm64
// with 4 KiB pages.
const Block = pagecache.Block

// Pad extends the program header of every loadable segment that is not
// writable, starts on a 2 MiB boundary in memory and in the file, and ends
// short of one, to that boundary, unless another segment starts before it
// (the binary was not linked with -R 0x200000). The bytes it adds to a
// segment must already be in the file and be zero: the linker's padding. It
// returns how many segments it extended; a binary linked without 2 MiB
// alignment, or already padded, gets none.
func Pad(path string) (int, error) {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	ef, err := elf.NewFile(f)
	if err != nil {
		return 0, fmt.Errorf("%s: %w", path, err)
	}
	if ef.Class != elf.ELFCLASS64 {
		return 0, fmt.Errorf("%s: not a 64-bit ELF file", path)
	}
	st, err := f.Stat()
	if err != nil {
		return 0, err
	}
	phoff, phentsize, err := programHeaders(f, ef.ByteOrder)
	if err != nil {
		return 0, fmt.Errorf("%s: %w", path, err)
	}
	n := 0
	for i, p := range ef.Progs {
		size, ok := paddedSize(ef.Progs, i, uint64(st.Size()))
		if !ok {
			continue
		}
		if err := checkZero(f, int64(p.Off+p.Filesz), int64(size-p.Filesz)); err != nil {
			return n, fmt.Errorf("%s: segment at %#x: %w", path, p.Vaddr, err)
		}
		// Elf64_Phdr: p_filesz at byte 32, p_memsz at byte 40.
		var b [16]byte
		ef.ByteOrder.PutUint64(b[0:], size)
		ef.ByteOrder.PutUint64(b[8:], size)
		if _, err := f.WriteAt(b[:], phoff+int64(i)*phentsize+32); err != nil {
			return n, err
		}
		n++
	}
	return n, f.Sync()
}

// paddedSize is the size Pad gives program header i, and whether it changes.
func paddedSize(progs []*elf.Prog, i int, fileSize uint64) (uint64, bool) {
	p := progs[i]
	if p.Type != elf.PT_LOAD || p.Flags&elf.PF_W != 0 || p.Filesz != p.Memsz || p.Filesz == 0 {
		return 0, false
	}
	if p.Vaddr%Block != 0 || p.Off%Block != 0 {
		return 0, false
	}
	end := (p.Vaddr + p.Filesz + Block - 1) / Block * Block
	for _, q := range progs {
		if q.Type == elf.PT_LOAD && q.Vaddr > p.Vaddr && q.Vaddr < end {
			end = q.Vaddr
		}
	}
	size := end - p.Vaddr
	if end%Block != 0 || size <= p.Filesz || p.Off+size > fileSize {
		return 0, false
	}
	return size, true
}

// programHeaders reads where the program header table is (e_phoff) and the
// size of one entry (e_phentsize) from a 64-bit ELF header.
func programHeaders(r io.ReaderAt, bo binary.ByteOrder) (off, entsize int64, err error) {
	var h [64]byte
	if _, err := r.ReadAt(h[:], 0); err != nil {
		return 0, 0, err
	}
	off = int64(bo.Uint64(h[32:]))
	entsize = int64(bo.Uint16(h[54:]))
	if entsize < 56 {
		return 0, 0, errors.New("program header entries too small")
	}
	return off, entsize, nil
}

// checkZero fails unless the n bytes at off are all zero.
func checkZero(r io.ReaderAt, off, n int64) error {
	buf := make([]byte, 64<<10)
	zero := make([]byte, len(buf))
	for n > 0 {
		chunk := buf[:min(int64(len(buf)), n)]
		if _, err := r.ReadAt(chunk, off); err != nil {
			return err
		}
		if !bytes.Equal(chunk, zero[:len(chunk)]) {
			return fmt.Errorf("bytes after it at file offset %#x are not padding", off)
		}
		off += int64(len(chunk))
		n -= int64(len(chunk))
	}
	return nil
}

// Warm writes the file's dirty pages back, drops its pages from the page
// cache, and reads it back in 2 MiB folios (pkg/pagecache). It returns how
// many bytes of the file the kernel then mapped with huge pages in this
// process (0 where THP or large folios are not available). Pages that another
// process has mapped (the binary is running) stay as they were.
func Warm(path string) (int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return 0, err
	}
	fd := int(f.Fd())
	if err := pagecache.Drop(fd); err != nil {
		return 0, fmt.Errorf("%s: drop from the page cache: %w", path, err)
	}
	addr, unmap, err := pagecache.LoadHuge(fd, st.Size())
	if err != nil {
		return 0, fmt.Errorf("%s: %w", path, err)
	}
	defer unmap()
	kb, err := ReadOnlyPmdKB(os.Getpid(), "")
	if err != nil {
		return 0, err
	}
	return int64(kb[uint64(addr)]) << 10, nil
}

// ReadOnlyPmdKB reads /proc/<pid>/smaps and returns, for each mapping of
// the file at path that is not writable, by start address, how many KiB of
// it are mapped with huge pages (FilePmdMapped). Path "" stands for every
// file.
func ReadOnlyPmdKB(pid int, path string) (map[uint64]uint64, error) {
	if path != "" {
		abs, err := filepath.Abs(path)
		if err != nil {
			return nil, err
		}
		if real, err := filepath.EvalSymlinks(abs); err == nil {
			abs = real
		}
		path = abs
	}
	f, err := os.Open(fmt.Sprintf("/proc/%d/smaps", pid))
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return parsePmdKB(f, path)
}

// parsePmdKB is ReadOnlyPmdKB on smaps text; path "" matches every mapping.
func parsePmdKB(r io.Reader, path string) (map[uint64]uint64, error) {
	kb := map[uint64]uint64{}
	var cur uint64
	in := false
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) == 0 {
			continue
		}
		if lo, _, ok := strings.Cut(f[0], "-"); ok && !strings.HasSuffix(f[0], ":") {
			// A mapping: range, permissions, offset, device, inode, path.
			start, err := strconv.ParseUint(lo, 16, 64)
			if err != nil || len(f) < 5 {
				return nil, fmt.Errorf("smaps: bad mapping line %q", sc.Text())
			}
			name := ""
			if len(f) >= 6 {
				name = f[5]
			}
			in = !strings.Contains(f[1], "w") && (path == "" || name == path)
			cur = start
			continue
		}
		if in && f[0] == "FilePmdMapped:" && len(f) >= 2 {
			v, err := strconv.ParseUint(f[1], 10, 64)
			if err != nil {
				return nil, fmt.Errorf("smaps: %q: %w", sc.Text(), err)
			}
			kb[cur] = v
		}
	}
	return kb, sc.Err()
}
