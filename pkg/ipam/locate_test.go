package ipam

import (
	"fmt"
	"math/rand"
	"net/netip"
	"testing"
)

// TestOverlap compares Locator.Overlap with a pairwise check on random
// layouts of range sets (of both families, some sets of several ranges).
func TestOverlap(t *testing.T) {
	rng := rand.New(rand.NewSource(1))
	for iter := 0; iter < 2000; iter++ {
		var sets []RangeSet
		for len(sets) < 1+rng.Intn(6) {
			var ranges []Range
			for j := 0; j < 1+rng.Intn(3); j++ {
				var r Range
				if rng.Intn(3) == 0 {
					r.Subnet = netip.MustParsePrefix(fmt.Sprintf("fd00::%x:0/%d", rng.Intn(8), 112+4*rng.Intn(3)))
				} else {
					r.Subnet = netip.MustParsePrefix(fmt.Sprintf("10.0.%d.0/%d", rng.Intn(8), 22+rng.Intn(3)))
				}
				r.Subnet = r.Subnet.Masked()
				ranges = append(ranges, r)
			}
			rs, err := NewRangeSet(ranges...)
			if err != nil {
				continue // overlapping or mixed within the set
			}
			sets = append(sets, rs)
		}
		var want bool
		for i := range sets {
			for j := 0; j < i; j++ {
				want = want || sets[i].Overlaps(sets[j])
			}
		}
		i, j, got := NewLocator(sets).Overlap()
		if got != want {
			t.Fatalf("%v: Overlap = %v, want %v", sets, got, want)
		}
		if got && (i <= j || !sets[i].Overlaps(sets[j])) {
			t.Fatalf("%v: Overlap named sets %d and %d", sets, i, j)
		}
	}
}
