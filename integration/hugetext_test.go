package integration

import (
	"debug/elf"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/flatcni/plugins/internal/hugetext"
)

// The plugins are built so that the kernel maps their code and read-only
// data with 2 MiB pages (internal/hugetext; a bridge ADD ~2 ms faster on the
// rig). This checks that bin/ is laid out for it (make build links with
// -R 0x200000 and pads), and, where the kernel and filesystem can, that a
// warmed plugin really runs on huge pages. It needs no root: the plugins wait
// for their configuration on stdin while the test looks, and then fail on an
// empty one without touching anything.
func TestPluginsMapCodeWithHugePages(t *testing.T) {
	dir := binDir(t)
	for _, name := range []string{"bridge", "host-local"} {
		t.Run(name, func(t *testing.T) {
			bin := filepath.Join(dir, name)
			readOnly := readOnlySegments(t, bin)
			huge, err := hugetext.Warm(bin)
			if err != nil {
				t.Fatal(err)
			}
			if huge == 0 {
				t.Skip("no 2 MiB folios in this page cache (THP off, or a filesystem without large folios)")
			}
			cmd := exec.Command(bin)
			cmd.Env = []string{"CNI_COMMAND=ADD", "CNI_CONTAINERID=hugetext", "CNI_NETNS=/nonexistent", "CNI_IFNAME=eth0", "CNI_PATH=/nonexistent"}
			stdin, err := cmd.StdinPipe()
			if err != nil {
				t.Fatal(err)
			}
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			defer func() {
				stdin.Close()
				_ = cmd.Wait() // it fails on the empty configuration
			}()
			// Each segment's first block is mapped by the first access to
			// it, which the runtime makes before reading stdin.
			var kb map[uint64]uint64
			for deadline := time.Now().Add(5 * time.Second); ; {
				kb, err = hugetext.ReadOnlyPmdKB(cmd.Process.Pid, bin)
				if err != nil {
					t.Fatal(err)
				}
				if allMapped(kb, readOnly) || time.Now().After(deadline) {
					break
				}
				time.Sleep(10 * time.Millisecond)
			}
			for _, va := range readOnly {
				if kb[va] < hugetext.Block>>10 {
					t.Errorf("segment at %#x: %d KiB mapped with huge pages, want at least %d", va, kb[va], hugetext.Block>>10)
				}
			}
		})
	}
}

// readOnlySegments checks the layout of bin's read-only and executable
// segments (whole 2 MiB blocks at 2 MiB boundaries) and returns their
// addresses.
func readOnlySegments(t *testing.T, bin string) []uint64 {
	t.Helper()
	f, err := elf.Open(bin)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var vas []uint64
	for _, p := range f.Progs {
		if p.Type != elf.PT_LOAD || p.Flags&elf.PF_W != 0 {
			continue
		}
		if p.Vaddr%hugetext.Block != 0 || p.Off%hugetext.Block != 0 || p.Filesz%hugetext.Block != 0 {
			t.Fatalf("%s: segment at %#x (offset %#x, size %#x) is not whole 2 MiB blocks: build with make build", bin, p.Vaddr, p.Off, p.Filesz)
		}
		vas = append(vas, p.Vaddr)
	}
	if len(vas) == 0 {
		t.Fatalf("%s: no read-only segments", bin)
	}
	return vas
}

func allMapped(kb map[uint64]uint64, vas []uint64) bool {
	for _, va := range vas {
		if kb[va] == 0 {
			return false
		}
	}
	return true
}
