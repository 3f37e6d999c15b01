package ipam

import (
	"fmt"
	"net/netip"
	"strings"
)

// Range is one contiguous block of addresses inside a subnet. After Canonicalize,
// Start, End and Gateway are set and Start..End holds at least one address that is
// not the gateway.
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
	if r.Subnet.Addr().Is4In6() {
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
	// passed on in the result; the bridge puts it on the bridge).
	r.Gateway = r.Gateway.Unmap()
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
	if r.Start == r.End && r.Start == r.Gateway {
		return fmt.Errorf("subnet %s has no address to allocate: its only usable address %s is the gateway", r.Subnet, r.Gateway)
	}
	return nil
}

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
	b := first.AsSlice()
	bits := p.Bits()
	for i := range b {
		for bit := 0; bit < 8; bit++ {
			if i*8+bit >= bits {
				b[i] |= 0x80 >> bit
			}
		}
	}
	last, _ = netip.AddrFromSlice(b)
	return first, last
}

// RangeSet is a list of ranges of one family; one address is handed out per set.
type RangeSet []Range

// Canonicalize canonicalizes every range and checks that the set is of one family
// and that its ranges do not overlap.
func (s RangeSet) Canonicalize() error {
	if len(s) == 0 {
		return fmt.Errorf("empty range set")
	}
	for i := range s {
		if err := s[i].Canonicalize(); err != nil {
			return err
		}
		if s[i].Start.Is4() != s[0].Start.Is4() {
			return fmt.Errorf("mixed address families: %s and %s", s[0].Subnet, s[i].Subnet)
		}
	}
	if i, j, ok := firstOverlap(len(s), func(k int) *Range { return &s[k] }); ok {
		return fmt.Errorf("range %s overlaps range %s", &s[i], &s[j])
	}
	return nil
}

// Is4 reports whether the set hands out IPv4 addresses.
func (s RangeSet) Is4() bool { return len(s) > 0 && s[0].Start.Is4() }

// RangeFor returns the range that contains addr, or nil.
func (s RangeSet) RangeFor(addr netip.Addr) *Range {
	for i := range s {
		if s[i].Contains(addr) {
			return &s[i]
		}
	}
	return nil
}

// Overlaps reports whether any range of s overlaps any range of o.
func (s RangeSet) Overlaps(o RangeSet) bool {
	for i := range s {
		for j := range o {
			if s[i].Overlaps(&o[j]) {
				return true
			}
		}
	}
	return false
}

func (s RangeSet) String() string {
	parts := make([]string, len(s))
	for i := range s {
		parts[i] = s[i].String()
	}
	return strings.Join(parts, ",")
}
