package hugetext

import (
	"bufio"
	"bytes"
	"debug/elf"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// A program that says it is ready, and prints its argument once stdin is
// closed, so that a test can look at its mappings while it waits.
const waiter = `package main

import (
	"io"
	"os"
)

func main() {
	os.Stdout.WriteString("ready\n")
	io.Copy(io.Discard, os.Stdin)
	os.Stdout.WriteString("done " + os.Args[1] + "\n")
}
`

// build compiles the waiter with ldflags into a fresh directory.
func build(t *testing.T, ldflags string) string {
	t.Helper()
	if runtime.GOOS != "linux" {
		t.Skip("ELF on Linux only")
	}
	dir := t.TempDir()
	src := filepath.Join(dir, "waiter.go")
	if err := os.WriteFile(src, []byte(waiter), 0o644); err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "waiter")
	cmd := exec.Command("go", "build", "-trimpath", "-ldflags="+ldflags, "-o", bin, src)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOFLAGS=")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

func loads(t *testing.T, path string) []*elf.Prog {
	t.Helper()
	f, err := elf.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var ps []*elf.Prog
	for _, p := range f.Progs {
		if p.Type == elf.PT_LOAD {
			ps = append(ps, p)
		}
	}
	return ps
}

// runs checks that the binary still runs and prints what it should.
func runs(t *testing.T, bin string) {
	t.Helper()
	cmd := exec.Command(bin, "ok")
	cmd.Stdin = strings.NewReader("")
	out, err := cmd.Output()
	if err != nil || string(out) != "ready\ndone ok\n" {
		t.Fatalf("padded binary: %v, output %q", err, out)
	}
}

func TestPadExtendsReadOnlySegmentsToWholeBlocks(t *testing.T) {
	bin := build(t, "-s -w -R 0x200000")
	before := loads(t, bin)
	n, err := Pad(bin)
	if err != nil {
		t.Fatal(err)
	}
	after := loads(t, bin)
	padded := 0
	for i, p := range after {
		b := before[i]
		if p.Vaddr != b.Vaddr || p.Off != b.Off || p.Flags != b.Flags {
			t.Fatalf("segment %d moved: %+v -> %+v", i, b.ProgHeader, p.ProgHeader)
		}
		if p.Flags&elf.PF_W != 0 {
			if p.Filesz != b.Filesz || p.Memsz != b.Memsz {
				t.Errorf("writable segment at %#x changed size", p.Vaddr)
			}
			continue
		}
		if p.Filesz%Block != 0 || p.Memsz != p.Filesz {
			t.Errorf("segment at %#x: size %#x/%#x, want whole %#x blocks", p.Vaddr, p.Filesz, p.Memsz, Block)
		}
		if p.Filesz != b.Filesz {
			padded++
		}
		if i+1 < len(after) && p.Vaddr+p.Memsz > after[i+1].Vaddr {
			t.Errorf("segment at %#x overlaps the next", p.Vaddr)
		}
	}
	if n != padded || n == 0 {
		t.Errorf("Pad reported %d segments, %d changed", n, padded)
	}
	runs(t, bin)
	if n, err := Pad(bin); err != nil || n != 0 {
		t.Errorf("second Pad: %d, %v; want 0, nil", n, err)
	}
}

func TestPadLeavesUnalignedBinaryAlone(t *testing.T) {
	bin := build(t, "-s -w")
	orig, err := os.ReadFile(bin)
	if err != nil {
		t.Fatal(err)
	}
	n, err := Pad(bin)
	if err != nil || n != 0 {
		t.Fatalf("Pad: %d, %v; want 0, nil", n, err)
	}
	now, err := os.ReadFile(bin)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(orig, now) {
		t.Error("file changed")
	}
}

func TestPadRefusesToCoverData(t *testing.T) {
	bin := build(t, "-s -w -R 0x200000")
	text := loads(t, bin)[0]
	f, err := os.OpenFile(bin, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	// A byte in what would be the text segment's padding.
	if _, err := f.WriteAt([]byte{0xcc}, int64(text.Off+text.Filesz+100)); err != nil {
		t.Fatal(err)
	}
	f.Close()
	if _, err := Pad(bin); err == nil || !strings.Contains(err.Error(), "not padding") {
		t.Fatalf("Pad over non-zero bytes: %v", err)
	}
	if got := loads(t, bin)[0]; got.Filesz != text.Filesz {
		t.Errorf("text segment resized to %#x", got.Filesz)
	}
}

func TestPadRejectsNonELF(t *testing.T) {
	path := filepath.Join(t.TempDir(), "script")
	if err := os.WriteFile(path, []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	if _, err := Pad(path); err == nil {
		t.Fatal("Pad of a shell script succeeded")
	}
}

// thpEnabled tells whether the kernel may use transparent huge pages for a
// mapping advised with MADV_HUGEPAGE.
func thpEnabled() bool {
	b, err := os.ReadFile("/sys/kernel/mm/transparent_hugepage/enabled")
	return err == nil && !strings.Contains(string(b), "[never]")
}

// TestWarmedBinaryRunsOnHugePages pads and warms a binary, then runs it and
// reads its own mappings: its code and read-only data must be mapped with
// 2 MiB pages.
func TestWarmedBinaryRunsOnHugePages(t *testing.T) {
	bin := build(t, "-s -w -R 0x200000")
	if _, err := Pad(bin); err != nil {
		t.Fatal(err)
	}
	huge, err := Warm(bin)
	if err != nil {
		t.Fatal(err)
	}
	if huge == 0 {
		if thpEnabled() {
			t.Skip("the page cache of " + filepath.Dir(bin) + " takes no 2 MiB folios (filesystem without large folios?)")
		}
		t.Skip("transparent huge pages are off")
	}
	// A program that waits on stdin until the test has looked.
	cmd := exec.Command(bin, "warm")
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Wait()
	defer stdin.Close()
	out := bufio.NewReader(stdout)
	if line, err := out.ReadString('\n'); line != "ready\n" {
		t.Fatalf("waiter: %q, %v", line, err)
	}
	kb, err := ReadOnlyPmdKB(cmd.Process.Pid, bin)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range loads(t, bin) {
		if p.Flags&elf.PF_W != 0 {
			continue
		}
		if got := kb[p.Vaddr]; got != p.Filesz>>10 {
			t.Errorf("segment at %#x: %d KiB mapped with huge pages, want %d", p.Vaddr, got, p.Filesz>>10)
		}
	}
	stdin.Close()
	rest, _ := io.ReadAll(out)
	if err := cmd.Wait(); err != nil || string(rest) != "done warm\n" {
		t.Fatalf("warmed binary: %v, output %q", err, rest)
	}
}

func TestReadOnlyPmdKBParsesSmaps(t *testing.T) {
	smaps := `00400000-00600000 r-xp 00000000 fe:00 12 /opt/cni/bin/bridge
Rss:                2048 kB
FilePmdMapped:      2048 kB
VmFlags: rd ex mr mw me
00600000-00a00000 r--p 00200000 fe:00 12 /opt/cni/bin/bridge
FilePmdMapped:      4096 kB
00a00000-00a21000 rw-p 00600000 fe:00 12 /opt/cni/bin/bridge
FilePmdMapped:         0 kB
7f0000000000-7f0000200000 r--p 00000000 fe:00 13 /other
FilePmdMapped:      2048 kB
`
	got, err := parsePmdKB(strings.NewReader(smaps), "/opt/cni/bin/bridge")
	if err != nil {
		t.Fatal(err)
	}
	want := map[uint64]uint64{0x400000: 2048, 0x600000: 4096}
	if len(got) != len(want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%#x: %d KiB, want %d", k, got[k], v)
		}
	}
}
