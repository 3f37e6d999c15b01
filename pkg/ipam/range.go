package ipam

import (
	"fmt"
	"iter"
	"math"
	"net/netip"
	"slices"
	"strings"
)

// Range is one contiguous block of addresses inside a subnet. After Canonicalize,
// Start, End and Gateway are set; Start..End may be the gateway alone (the
// range then hands out nothing, as with the reference, but its set must
// hold another range: RangeSet.Check), except in a /31 or /127.
type Range struct {
	Subnet  netip.Prefix
	Start   netip.Addr // first address handed out, inclusive
	End     netip.Addr // last address handed out, inclusive
	Gateway netip.Addr
}

// Canonicalize validates the range and fills in the reference plugin's defaults:
// the gateway is the subnet's first address, the range runs from the address
// after the network address to the last one (less the broadcast address in IPv4).
func (r *Range) Canonicalize() error {
	if !r.Subnet.IsValid() {
		return fmt.Errorf("subnet missing")
	}
	if r.Subnet.Addr().Is4In6() && r.Subnet.Bits() >= 96 {
		r.Subnet = netip.PrefixFrom(r.Subnet.Addr().Unmap(), r.Subnet.Bits()-96)
	}
	if r.Subnet.Masked() != r.Subnet {
		return fmt.Errorf("subnet %s has host bits set (the network address is %s)", r.Subnet, r.Subnet.Masked().Addr())
	}
	first, last := bounds(r.Subnet)
	if first == last {
		return fmt.Errorf("subnet %s is too small to allocate from: it holds a single address", r.Subnet)
	}
	// A gateway outside the subnet is accepted, as by the reference (it is
	// passed on in the result; the bridge puts it on the bridge), but not
	// one of the other family or with a zone (the reference's parser refuses
	// zones).
	for _, a := range []struct {
		name string
		addr netip.Addr
	}{{"gateway", r.Gateway}, {"rangeStart", r.Start}, {"rangeEnd", r.End}} {
		if a.addr.Zone() != "" { // before Unmap, which drops it
			return fmt.Errorf("%s %s has a zone", a.name, a.addr)
		}
	}
	r.Gateway = r.Gateway.Unmap()
	if r.Gateway.IsValid() && r.Gateway.Is4() != r.Subnet.Addr().Is4() {
		return fmt.Errorf("gateway %s is not of subnet %s's family", r.Gateway, r.Subnet)
	}
	for _, a := range []struct {
		name string
		addr *netip.Addr
	}{{"rangeStart", &r.Start}, {"rangeEnd", &r.End}} {
		if !a.addr.IsValid() {
			continue
		}
		*a.addr = a.addr.Unmap()
		if !r.Subnet.Contains(*a.addr) {
			return fmt.Errorf("%s %s is not in subnet %s", a.name, *a.addr, r.Subnet)
		}
	}
	if !r.Gateway.IsValid() {
		r.Gateway = first.Next()
	}
	if !r.Start.IsValid() {
		r.Start = first.Next()
	}
	if !r.End.IsValid() {
		r.End = last
		if r.Subnet.Addr().Is4() && r.Subnet.Bits() < 31 {
			r.End = last.Prev()
		}
	}
	if r.End.Less(r.Start) {
		return fmt.Errorf("rangeEnd %s is before rangeStart %s", r.End, r.Start)
	}
	if r.Start == r.End && r.Start == r.Gateway && first.Next() == last {
		// A /31 or /127 (the reference takes none: "too small") is
		// accepted only where it has an address to hand out.
		return fmt.Errorf("subnet %s has no address to allocate: its only usable address %s is the gateway", r.Subnet, r.Gateway)
	}
	return nil
}

// gatewayOnly reports whether the range holds its gateway alone (and hands
// out nothing).
func (r *Range) gatewayOnly() bool { return r.Start == r.End && r.Start == r.Gateway }

// Contains reports whether addr can be handed out from this range (the gateway
// included: callers reject it separately with a better message).
func (r *Range) Contains(addr netip.Addr) bool {
	addr = addr.Unmap()
	return r.Subnet.Contains(addr) && !addr.Less(r.Start) && !r.End.Less(addr)
}

// Overlaps reports whether two ranges share an address.
func (r *Range) Overlaps(o *Range) bool {
	if r.Start.Is4() != o.Start.Is4() {
		return false
	}
	return !r.End.Less(o.Start) && !o.End.Less(r.Start)
}

func (r *Range) String() string { return r.Start.String() + "-" + r.End.String() }

// bounds returns the first (network) and last address of a prefix.
func bounds(p netip.Prefix) (first, last netip.Addr) {
	first = p.Masked().Addr()
	b := first.As16()
	from := p.Bits()
	if first.Is4() {
		from += 96
	}
	for i := from; i < 128; i++ {
		b[i/8] |= 0x80 >> (i % 8)
	}
	last = netip.AddrFrom16(b)
	if first.Is4() {
		last = last.Unmap()
	}
	return first, last
}

// defaultRange is the canonical range of a subnet given alone: the
// reference's defaults (Canonicalize).
func defaultRange(subnet netip.Prefix) Range {
	first, last := bounds(subnet)
	r := Range{Subnet: subnet, Start: first.Next(), End: last, Gateway: first.Next()}
	if subnet.Addr().Is4() && subnet.Bits() < 31 {
		r.End = last.Prev()
	}
	return r
}

// RangeSet is a list of ranges of one family; one address is handed out per
// set. It is built with Add (or NewRangeSet) and read with Len and At.
//
// A configuration may hold hundreds of thousands of ranges, so a set keeps
// them as bytes rather than as Ranges (104 bytes each, where a range's JSON
// is ~25 to ~85): each range's subnet as its address and prefix length (5
// bytes in IPv4, 17 in IPv6), and for a range that is not its subnet's
// defaults (its own rangeStart, rangeEnd or gateway) its index and those
// three addresses beside (16 bytes in IPv4, 52 in IPv6).
type RangeSet struct {
	is4  bool
	nets []byte  // per range: the subnet's address (4 or 16 bytes), then its prefix length
	own  []int32 // the indexes of the ranges that are not their subnet's defaults, ascending
	ends []byte  // per index in own: the range's start, end and gateway
}

// NewRangeSet canonicalizes ranges into a set, checking that they are of one
// family and do not overlap.
func NewRangeSet(ranges ...Range) (RangeSet, error) {
	var s RangeSet
	for _, r := range ranges {
		if err := r.Canonicalize(); err != nil {
			return RangeSet{}, err
		}
		if err := s.Add(r); err != nil {
			return RangeSet{}, err
		}
	}
	if err := s.Check(); err != nil {
		return RangeSet{}, err
	}
	return s, nil
}

// Add appends a canonical range (Range.Canonicalize) to the set; it fails
// when the range's family is not the set's.
func (s *RangeSet) Add(r Range) error {
	is4 := r.Subnet.Addr().Is4()
	n := s.Len()
	if n == math.MaxInt32 { // indexes are int32 here and in the Locator
		return fmt.Errorf("more than %d ranges in a set", math.MaxInt32)
	}
	if n == 0 {
		s.is4 = is4
	} else if is4 != s.is4 {
		return fmt.Errorf("mixed address families: %s and %s", s.At(0).Subnet, r.Subnet)
	}
	if r != defaultRange(r.Subnet) {
		s.own = append(s.own, int32(n))
		for _, a := range [...]netip.Addr{r.Start, r.End, r.Gateway} {
			s.ends = appendAddr(s.ends, a, is4)
		}
	}
	s.nets = appendAddr(s.nets, r.Subnet.Addr(), is4)
	s.nets = append(s.nets, byte(r.Subnet.Bits()))
	return nil
}

// Check reports an empty set, a set with no address to hand out (each of
// its ranges holds its gateway alone), or two of its ranges that overlap.
func (s RangeSet) Check() error {
	if s.Len() == 0 {
		return fmt.Errorf("empty range set")
	}
	if !s.canAllocate() {
		if s.Len() == 1 {
			r := s.At(0)
			return fmt.Errorf("subnet %s has no address to allocate: its only usable address %s is the gateway", r.Subnet, r.Gateway)
		}
		return fmt.Errorf("range set %s has no address to allocate: each of its ranges holds its gateway alone", s)
	}
	if i, j, ok := firstOverlap(s.Len(), s.start, s.At); ok {
		r, o := s.At(i), s.At(j)
		return fmt.Errorf("range %s overlaps range %s", &r, &o)
	}
	return nil
}

// canAllocate reports whether a range of the set holds an address that is
// not its gateway. Ranges with their subnet's defaults always do (a subnet
// of two addresses is refused by Canonicalize): only the others are read.
func (s RangeSet) canAllocate() bool {
	if len(s.own) < s.Len() {
		return true
	}
	for _, i := range s.own {
		if r := s.At(int(i)); !r.gatewayOnly() {
			return true
		}
	}
	return false
}

// Len returns the number of ranges in the set.
func (s RangeSet) Len() int { return len(s.nets) / (s.width() + 1) }

// width is the length of the set's addresses in bytes.
func (s RangeSet) width() int {
	if s.is4 {
		return 4
	}
	return 16
}

// At returns the set's i'th range, canonical.
func (s RangeSet) At(i int) Range {
	subnet := s.subnet(i)
	if k, ok := s.ownAt(i); ok {
		w := s.width()
		b := s.ends[3*w*k:]
		return Range{Subnet: subnet, Start: s.addr(b), End: s.addr(b[w:]), Gateway: s.addr(b[2*w:])}
	}
	return defaultRange(subnet)
}

// ownAt returns where the i'th range's own bounds are kept in ends, when it
// has them.
func (s RangeSet) ownAt(i int) (int, bool) {
	return slices.BinarySearch(s.own, int32(i))
}

// appendAddr appends an address of the set's family (4 or 16 bytes).
func appendAddr(b []byte, a netip.Addr, is4 bool) []byte {
	if is4 {
		v := a.As4()
		return append(b, v[:]...)
	}
	v := a.As16()
	return append(b, v[:]...)
}

// addr reads an address of the set's family from the start of b.
func (s RangeSet) addr(b []byte) netip.Addr {
	if s.is4 {
		return netip.AddrFrom4([4]byte(b))
	}
	return netip.AddrFrom16([16]byte(b))
}

// All yields the set's ranges with their indexes, in order.
func (s RangeSet) All() iter.Seq2[int, Range] {
	return func(yield func(int, Range) bool) {
		for i := range s.Len() {
			if !yield(i, s.At(i)) {
				return
			}
		}
	}
}

// subnet returns the subnet of the i'th range.
func (s RangeSet) subnet(i int) netip.Prefix {
	w := s.width()
	b := s.nets[i*(w+1):]
	return netip.PrefixFrom(s.addr(b), int(b[w]))
}

// start returns the first address of the i'th range (At(i).Start, cheaper).
func (s RangeSet) start(i int) netip.Addr {
	if k, ok := s.ownAt(i); ok {
		return s.addr(s.ends[3*s.width()*k:])
	}
	return s.subnet(i).Addr().Next()
}

// Is4 reports whether the set hands out IPv4 addresses.
func (s RangeSet) Is4() bool { return s.Len() > 0 && s.is4 }

// RangeFor returns the range that contains addr.
func (s RangeSet) RangeFor(addr netip.Addr) (Range, bool) {
	for _, r := range s.All() {
		if r.Contains(addr) {
			return r, true
		}
	}
	return Range{}, false
}

// Overlaps reports whether any range of s overlaps any range of o.
func (s RangeSet) Overlaps(o RangeSet) bool {
	for _, r := range s.All() {
		for _, p := range o.All() {
			if r.Overlaps(&p) {
				return true
			}
		}
	}
	return false
}

// Describe is String, and the gateways inside the ranges, which are never
// handed out: "10.0.0.1-10.0.0.2 (gateway 10.0.0.1 is not handed out)".
func (s RangeSet) Describe() string {
	var gws []string
	for _, r := range s.All() {
		if r.Gateway.IsValid() && r.Start.Compare(r.Gateway) <= 0 && r.Gateway.Compare(r.End) <= 0 {
			gws = append(gws, r.Gateway.String())
		}
	}
	switch len(gws) {
	case 0:
		return s.String()
	case 1:
		return fmt.Sprintf("%s (gateway %s is not handed out)", s, gws[0])
	}
	return fmt.Sprintf("%s (gateways %s are not handed out)", s, strings.Join(gws, ", "))
}

func (s RangeSet) String() string {
	parts := make([]string, 0, s.Len())
	for _, r := range s.All() {
		parts = append(parts, r.String())
	}
	return strings.Join(parts, ",")
}
