package bridge

import (
	"bytes"
	"debug/elf"
	"encoding/binary"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
)

// selfExe names the file of the running program.
const selfExe = "/proc/self/exe"

// sameProgram tells whether the file at path is the running program: the
// same file (device and inode, so also a hard link), or a copy of it, with
// the same size and the same Go build ID.
func sameProgram(path string) bool {
	fi, err := os.Stat(path)
	if err != nil {
		return false
	}
	self, err := selfInfo()
	if err != nil {
		return false
	}
	if os.SameFile(fi, self) {
		return true
	}
	if fi.Size() != self.Size() {
		return false
	}
	id := goBuildID(path)
	return id != nil && bytes.Equal(id, selfBuildID())
}

// The running program's file and build ID, read once per process (the
// ancestor walk compares several files with it).
var (
	selfInfo    = sync.OnceValues(func() (os.FileInfo, error) { return os.Stat(selfExe) })
	selfBuildID = sync.OnceValue(func() []byte { return goBuildID(selfExe) })
)

// goNoteBuildID is the type of the Go toolchain's ELF note holding the
// build ID (owner "Go", section .note.go.buildid).
const goNoteBuildID = 4

// goBuildID returns the Go build ID in the ELF file at path, nil when it
// has none or is not ELF.
func goBuildID(path string) []byte {
	f, err := elf.Open(path)
	if err != nil {
		return nil
	}
	defer f.Close()
	s := f.Section(".note.go.buildid")
	if s == nil {
		return nil
	}
	data, err := s.Data()
	if err != nil {
		return nil
	}
	return parseGoNote(data, f.ByteOrder)
}

// parseGoNote reads one ELF note (name size, descriptor size, type, name
// and descriptor each padded to 4 bytes) and returns its descriptor when it
// is the Go build ID note.
func parseGoNote(data []byte, order binary.ByteOrder) []byte {
	if len(data) < 12 {
		return nil
	}
	nameSize, descSize, typ := order.Uint32(data), order.Uint32(data[4:]), order.Uint32(data[8:])
	nameEnd := 12 + uint64(nameSize)
	descStart := (nameEnd + 3) &^ 3
	descEnd := descStart + uint64(descSize)
	if typ != goNoteBuildID || descEnd > uint64(len(data)) || string(bytes.TrimRight(data[12:nameEnd], "\x00")) != "Go" {
		return nil
	}
	return data[descStart:descEnd]
}

// maxAncestors bounds the walk up the process tree (a runtime calls the
// plugins a few levels below init).
const maxAncestors = 32

// selfAncestor returns the closest ancestor process that runs this program
// (sameProgram of its executable), if any. Only the bridge starts other
// plugins, so such an ancestor means a chain of plugins leading back to the
// bridge.
func selfAncestor() (int, bool) {
	pid := os.Getppid()
	for range maxAncestors {
		if pid <= 1 {
			return 0, false
		}
		if sameProgram(fmt.Sprintf("/proc/%d/exe", pid)) {
			return pid, true
		}
		var ok bool
		if pid, ok = parentOf(pid); !ok {
			return 0, false
		}
	}
	return 0, false
}

// parentOf reads a process's parent from /proc/<pid>/stat ("pid (comm) state
// ppid ...", where comm may hold spaces and parentheses).
func parentOf(pid int) (int, bool) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, false
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, false
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 2 {
		return 0, false
	}
	ppid, err := strconv.Atoi(f[1])
	return ppid, err == nil
}
