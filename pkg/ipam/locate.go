package ipam

import (
	"net/netip"
	"slices"
)

// Locator finds the range set that holds an address in O(log n) of the
// number of ranges: with thousands of range sets, ADD, CHECK and STATUS
// would otherwise cost the square of that number.
type Locator struct {
	spans []locSpan // sorted by start
}

type locSpan struct {
	r   *Range
	set int
}

// NewLocator indexes the ranges of sets, which must not overlap (as
// configuration validation ensures).
func NewLocator(sets []RangeSet) *Locator {
	n := 0
	for i := range sets {
		n += len(sets[i])
	}
	l := &Locator{spans: make([]locSpan, 0, n)}
	for i := range sets {
		for j := range sets[i] {
			l.spans = append(l.spans, locSpan{r: &sets[i][j], set: i})
		}
	}
	slices.SortFunc(l.spans, func(a, b locSpan) int { return a.r.Start.Compare(b.r.Start) })
	return l
}

// Find returns the index of the range set holding addr and its range, or
// -1 and nil.
func (l *Locator) Find(addr netip.Addr) (int, *Range) {
	addr = addr.Unmap()
	// The last span starting at or before addr.
	i, found := slices.BinarySearchFunc(l.spans, addr, func(s locSpan, a netip.Addr) int { return s.r.Start.Compare(a) })
	if !found {
		i--
	}
	if i >= 0 && l.spans[i].r.Contains(addr) {
		return l.spans[i].set, l.spans[i].r
	}
	return -1, nil
}

// firstOverlap returns two of n ranges (at(i) is the i'th) that share an
// address, the later one first, in O(n log n).
func firstOverlap(n int, at func(int) *Range) (int, int, bool) {
	order := make([]int, n)
	for i := range order {
		order[i] = i
	}
	slices.SortFunc(order, func(a, b int) int { return at(a).Start.Compare(at(b).Start) })
	// Sorted by start, a range overlaps an earlier one exactly when it
	// starts at or before the furthest end so far (of its family: IPv4
	// addresses sort before IPv6 ones).
	far := -1
	for _, i := range order {
		if far >= 0 && at(far).Overlaps(at(i)) {
			return max(i, far), min(i, far), true
		}
		if far < 0 || at(far).Start.Is4() != at(i).Start.Is4() || at(far).End.Less(at(i).End) {
			far = i
		}
	}
	return 0, 0, false
}

// OverlappingSets returns two range sets of sets that share an address,
// the later one first.
func OverlappingSets(sets []RangeSet) (int, int, bool) {
	return NewLocator(sets).Overlap()
}

// Overlap returns two of the indexed range sets that share an address, the
// later one first, in one pass over the ranges sorted by start (the
// Locator's own order: no other index of the ranges is built).
func (l *Locator) Overlap() (int, int, bool) {
	// Sorted by start, a range overlaps an earlier one exactly when it
	// starts at or before the furthest end so far (of its family: IPv4
	// addresses sort before IPv6 ones). Ranges of one set do not overlap
	// (RangeSet.Canonicalize): an overlap is between two sets.
	far := -1
	for k, s := range l.spans {
		if far >= 0 {
			f := l.spans[far]
			if f.set != s.set && f.r.Overlaps(s.r) {
				return max(f.set, s.set), min(f.set, s.set), true
			}
			if f.r.Start.Is4() == s.r.Start.Is4() && !f.r.End.Less(s.r.End) {
				continue
			}
		}
		far = k
	}
	return 0, 0, false
}
