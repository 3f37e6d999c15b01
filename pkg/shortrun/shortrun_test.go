package shortrun

import (
	"runtime"
	"testing"
)

// HugeHeap only gives hints to the kernel: whatever it answers, the heap
// must stay usable, including the chunk it advised.
func TestHugeHeapKeepsHeapUsable(t *testing.T) {
	n := HugeHeap()
	t.Logf("%d heap regions collapsed into huge pages", n)
	if n < 0 || n > 2 {
		t.Errorf("collapsed %d regions of a 2-region chunk", n)
	}
	anchor[0] = 1
	var keep [][]byte
	for i := range 512 {
		b := make([]byte, 4096)
		b[0], b[4095] = byte(i), byte(i)
		keep = append(keep, b)
	}
	runtime.GC()
	for i, b := range keep {
		if b[0] != byte(i) || b[4095] != byte(i) {
			t.Fatalf("block %d changed", i)
		}
	}
	if anchor[0] != 1 {
		t.Error("anchor changed")
	}
}
