package ipam

import (
	"errors"
	"fmt"
	"net/netip"
)

// Allocate's errors wrap one of these (or a Store error, which is neither):
// ErrUnavailable when the address wanted is in use or the set is exhausted
// (worth retrying later), ErrBadRequest when the request can never succeed.
var (
	ErrUnavailable = errors.New("address unavailable")
	ErrBadRequest  = errors.New("invalid address request")
)

// Allocation is one address handed out from a range set.
type Allocation struct {
	Addr    netip.Prefix // the address with its subnet's prefix length
	Gateway netip.Addr
}

// Allocate hands the attachment one address from set (the setIndex'th range set
// of the network). The caller holds the store's lock.
//
// An attachment that already holds an address in the set gets that address
// again, so a runtime that retries an ADD does not leak leases (the caller
// first rules out leases that name only the container: LegacyLease). With a requested
// address, that address or an error; otherwise the first free address after the
// set's last reserved one, round-robin, skipping gateways.
func Allocate(s Store, set RangeSet, setIndex int, a Attachment, requested netip.Addr) (Allocation, error) {
	held, err := s.Leases(a)
	if err != nil {
		return Allocation{}, err
	}
	for _, addr := range held {
		if _, ok := set.RangeFor(addr); ok {
			return AllocateHeld(s, set, setIndex, a, requested, addr)
		}
	}
	return AllocateHeld(s, set, setIndex, a, requested, netip.Addr{})
}

// AllocateHeld is Allocate for a caller that knows which address of the set
// the attachment holds already (held; the zero Addr for none): with many
// range sets, looking it up per set would cost the square of their number.
func AllocateHeld(s Store, set RangeSet, setIndex int, a Attachment, requested, held netip.Addr) (Allocation, error) {
	if held.IsValid() {
		if r, ok := set.RangeFor(held); ok {
			if requested.IsValid() && requested != held {
				return Allocation{}, fmt.Errorf("%w: %s already holds %s in range set %s; cannot also take requested %s", ErrBadRequest, a, held, set, requested)
			}
			return Allocation{Addr: netip.PrefixFrom(held, r.Subnet.Bits()), Gateway: r.Gateway}, nil
		}
	}

	if requested.IsValid() {
		r, ok := set.RangeFor(requested)
		if !ok {
			return Allocation{}, fmt.Errorf("%w: requested address %s is not in range set %s", ErrBadRequest, requested, set)
		}
		if requested == r.Gateway {
			return Allocation{}, fmt.Errorf("%w: requested address %s is the gateway of %s", ErrBadRequest, requested, r.Subnet)
		}
		ok, err := s.Reserve(a, requested, setIndex)
		if err != nil {
			return Allocation{}, err
		}
		if !ok {
			return Allocation{}, fmt.Errorf("%w: requested address %s is already in use", ErrUnavailable, requested)
		}
		return Allocation{Addr: netip.PrefixFrom(requested, r.Subnet.Bits()), Gateway: r.Gateway}, nil
	}

	it := newWalk(set, s.LastReserved(setIndex))
	for {
		addr, r, ok := it.next()
		if !ok {
			return Allocation{}, fmt.Errorf("%w: no free address in range set %s", ErrUnavailable, set.Describe())
		}
		ok, err := s.Reserve(a, addr, setIndex)
		if err != nil {
			return Allocation{}, err
		}
		if ok {
			return Allocation{Addr: netip.PrefixFrom(addr, r.Subnet.Bits()), Gateway: r.Gateway}, nil
		}
	}
}

// LegacyLease returns an address that a's container holds in one of sets
// through a lease naming only the container (the format of host-local before
// 0.8), or the zero Addr. Such a lease counts as a's for CHECK and DEL, as
// with the reference, but an ADD cannot take it as this interface's own: it
// may be the container's other interface's. The caller holds the lock.
func LegacyLease(s Store, a Attachment, sets []RangeSet) (netip.Addr, error) {
	if a.IfName == "" {
		return netip.Addr{}, nil
	}
	old, err := s.Leases(Attachment{ContainerID: a.ContainerID})
	if err != nil {
		return netip.Addr{}, err
	}
	for _, addr := range old {
		for _, set := range sets {
			if _, ok := set.RangeFor(addr); ok {
				return addr, nil
			}
		}
	}
	return netip.Addr{}, nil
}

// walk walks a range set once, round-robin, starting after last (when last is
// in the set) or at the set's first address, and skipping gateways.
type walk struct {
	set   RangeSet
	idx   int
	r     Range      // the range at idx
	cur   netip.Addr // last address returned; zero before the first
	first netip.Addr // first address returned, where the walk ends
}

func newWalk(set RangeSet, last netip.Addr) *walk {
	it := &walk{set: set}
	for i, r := range set.All() {
		if r.Contains(last) {
			it.idx, it.r, it.cur = i, r, last
			return it
		}
	}
	it.r = set.At(0)
	return it
}

func (it *walk) next() (netip.Addr, *Range, bool) {
	for {
		r := &it.r
		var addr netip.Addr
		switch {
		case !it.cur.IsValid():
			addr = r.Start
		case it.cur == r.End:
			it.idx = (it.idx + 1) % it.set.Len()
			it.r = it.set.At(it.idx)
			addr = r.Start
		default:
			addr = it.cur.Next()
		}
		it.cur = addr
		if !it.first.IsValid() {
			it.first = addr
		} else if addr == it.first {
			return netip.Addr{}, nil, false
		}
		if addr != r.Gateway {
			return addr, r, true
		}
	}
}

// Size returns how many addresses the set can hand out (gateways excluded),
// saturating at max.
func (s RangeSet) Size(max uint64) uint64 {
	var n uint64
	for _, r := range s.All() {
		// Count one past max so that taking the gateway off a saturated
		// span cannot bring it below max.
		limit := max + 1
		if max == ^uint64(0) {
			limit = max
		}
		c := span(r.Start, r.End, limit)
		if c == ^uint64(0) {
			return max
		}
		if r.Contains(r.Gateway) {
			c--
		}
		if c >= max-n {
			return max
		}
		n += c
	}
	return n
}

// span counts the addresses from a to b inclusive, saturating at max.
func span(a, b netip.Addr, max uint64) uint64 {
	x, y := a.As16(), b.As16()
	var xh, xl, yh, yl uint64
	for i := 0; i < 8; i++ {
		xh, yh = xh<<8|uint64(x[i]), yh<<8|uint64(y[i])
		xl, yl = xl<<8|uint64(x[8+i]), yl<<8|uint64(y[8+i])
	}
	hi, lo := yh-xh, yl-xl
	if yl < xl {
		hi-- // borrow from the high half
	}
	if hi > 0 || lo >= max-1 {
		return max
	}
	return lo + 1
}
