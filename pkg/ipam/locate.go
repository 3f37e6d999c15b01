package ipam

import (
	"net/netip"
	"slices"
)

// Locator finds the range set that holds an address in O(log n) of the
// number of ranges: with thousands of range sets, ADD, CHECK and STATUS
// would otherwise cost the square of that number.
type Locator struct {
	sets  []RangeSet
	spans []locSpan // sorted by start
}

// locSpan is a range of the index: sets[set].At(idx).
type locSpan struct{ set, idx int32 }

func (l *Locator) start(s locSpan) netip.Addr { return l.sets[s.set].start(int(s.idx)) }
func (l *Locator) at(s locSpan) Range         { return l.sets[s.set].At(int(s.idx)) }

// NewLocator indexes the ranges of sets, which must not overlap (as
// configuration validation ensures).
func NewLocator(sets []RangeSet) *Locator {
	n := 0
	for i := range sets {
		n += sets[i].Len()
	}
	l := &Locator{sets: sets, spans: make([]locSpan, 0, n)}
	for i := range sets {
		for j := range sets[i].Len() {
			l.spans = append(l.spans, locSpan{set: int32(i), idx: int32(j)})
		}
	}
	slices.SortFunc(l.spans, func(a, b locSpan) int { return l.start(a).Compare(l.start(b)) })
	return l
}

// Find returns the index of the range set holding addr and its range, or
// -1.
func (l *Locator) Find(addr netip.Addr) (int, Range) {
	addr = addr.Unmap()
	// The last span starting at or before addr.
	i, found := slices.BinarySearchFunc(l.spans, addr, func(s locSpan, a netip.Addr) int { return l.start(s).Compare(a) })
	if !found {
		i--
	}
	if i >= 0 {
		if r := l.at(l.spans[i]); r.Contains(addr) {
			return int(l.spans[i].set), r
		}
	}
	return -1, Range{}
}

// firstOverlap returns two of n ranges (at(i) is the i'th, start(i) its
// first address) that share an address, the later one first, in
// O(n log n).
func firstOverlap(n int, start func(int) netip.Addr, at func(int) Range) (int, int, bool) {
	order := make([]int32, n)
	for i := range order {
		order[i] = int32(i)
	}
	slices.SortFunc(order, func(a, b int32) int { return start(int(a)).Compare(start(int(b))) })
	// Sorted by start, a range overlaps an earlier one exactly when it
	// starts at or before the furthest end so far (of its family: IPv4
	// addresses sort before IPv6 ones).
	far, farR := -1, Range{}
	for _, k := range order {
		i, r := int(k), at(int(k))
		if far >= 0 && farR.Overlaps(&r) {
			return max(i, far), min(i, far), true
		}
		if far < 0 || farR.Start.Is4() != r.Start.Is4() || farR.End.Less(r.End) {
			far, farR = i, r
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
	// (RangeSet.Check): an overlap is between two sets.
	far, farR := -1, Range{}
	for k, s := range l.spans {
		r := l.at(s)
		if far >= 0 {
			f := l.spans[far]
			if f.set != s.set && farR.Overlaps(&r) {
				return int(max(f.set, s.set)), int(min(f.set, s.set)), true
			}
			if farR.Start.Is4() == r.Start.Is4() && !farR.End.Less(r.End) {
				continue
			}
		}
		far, farR = k, r
	}
	return 0, 0, false
}
