package ipam

import (
	"errors"
	"fmt"
	"net/netip"
	"testing"
)

// fuzzBytes hands out the fuzzer's bytes one at a time (zero when used up).
type fuzzBytes []byte

func (b *fuzzBytes) next() byte {
	if len(*b) == 0 {
		return 0
	}
	c := (*b)[0]
	*b = (*b)[1:]
	return c
}

// addrAt returns the subnet's address at offset off (wrapping within the subnet).
func addrAt(p netip.Prefix, off uint16) netip.Addr {
	a := p.Masked().Addr().As16()
	hostBits := p.Addr().BitLen() - p.Bits()
	if hostBits < 16 {
		off &= uint16(1)<<hostBits - 1
	}
	carry := uint32(off)
	for i := 15; i >= 0 && carry > 0; i-- {
		s := uint32(a[i]) + carry&0xff
		a[i] = byte(s)
		carry = carry>>8 + s>>8
	}
	addr := netip.AddrFrom16(a)
	if p.Addr().Is4() {
		addr = addr.Unmap()
	}
	return addr
}

// fuzzRangeSet builds up to three small ranges (at most 4096 addresses each)
// from the fuzzer's bytes; zero offsets leave a bound to the defaults.
func fuzzRangeSet(b *fuzzBytes) []Range {
	v6 := b.next()&1 == 1
	n := int(b.next()%3) + 1
	var set []Range
	for i := 0; i < n; i++ {
		var r Range
		if v6 {
			base := netip.AddrFrom16([16]byte{0: 0xfd, 14: b.next(), 15: b.next()})
			r.Subnet = netip.PrefixFrom(base, 116+int(b.next()%13)).Masked()
		} else {
			base := netip.AddrFrom4([4]byte{10, b.next(), b.next(), b.next()})
			r.Subnet = netip.PrefixFrom(base, 20+int(b.next()%13)).Masked()
		}
		for _, bound := range []*netip.Addr{&r.Start, &r.End, &r.Gateway} {
			if off := uint16(b.next())<<4 | uint16(b.next()); off != 0 {
				*bound = addrAt(r.Subnet, off)
			}
		}
		set = append(set, r)
	}
	return set
}

// FuzzAllocate drives Allocate on a MemStore over fuzzed range sets with a
// fuzzed sequence of allocations, requests and releases. It never panics,
// never hands out an address twice or one outside the set or a gateway, keeps
// an attachment's address on a repeated ADD, and reports exhaustion only when
// every address of the set is taken.
func FuzzAllocate(f *testing.F) {
	f.Add([]byte{0, 0, 0, 0, 0, 8, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1})
	f.Add([]byte{0, 1, 1, 2, 3, 12, 0, 5, 0, 9, 0, 1, 9, 9, 9, 3, 3, 0, 0, 10, 0, 0, 0, 2, 0x40, 0x41, 0x82, 0xc3})
	f.Add([]byte{1, 2, 0, 7, 11, 0, 0, 0, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 0x80, 0x90, 0xff})
	f.Add([]byte{0, 0, 0, 0, 0, 11, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff})
	// A /30 (one address): ADD, exhausted, DEL, ADD again, requests.
	f.Add([]byte{0, 0, 0, 0, 0, 10, 0, 0, 0, 0, 0, 0, 0, 1, 0, 2, 0, 3, 3, 1, 0, 2, 2, 5, 0, 0, 2, 2, 2, 0, 0, 2, 2, 6, 0, 0, 1})
	f.Fuzz(func(t *testing.T, data []byte) {
		b := fuzzBytes(data)
		set, err := NewRangeSet(fuzzRangeSet(&b)...)
		if err != nil {
			return
		}
		size := set.Size(1 << 20)
		s := NewMemStore()
		holder := map[netip.Addr]Attachment{} // what the test believes is leased
		held := map[Attachment]netip.Addr{}
		att := func(i byte) Attachment { return Attachment{ContainerID: fmt.Sprintf("c%d", i%32), IfName: "eth0"} }

		check := func(a Attachment, al Allocation) {
			t.Helper()
			addr := al.Addr.Addr()
			r, ok := set.RangeFor(addr)
			if !ok {
				t.Fatalf("handed out %s, outside range set %s", addr, set)
			}
			if addr == r.Gateway {
				t.Fatalf("handed out the gateway %s of %s", addr, r.Subnet)
			}
			if al.Addr.Bits() != r.Subnet.Bits() || al.Gateway != r.Gateway {
				t.Fatalf("allocation %+v does not match its range %s gw %s", al, r.Subnet, r.Gateway)
			}
			if prev, ok := held[a]; ok && prev != addr {
				t.Fatalf("%s held %s and got %s on a repeated ADD", a, prev, addr)
			}
			if other, ok := holder[addr]; ok && other != a {
				t.Fatalf("%s handed out to %s while %s holds it", addr, a, other)
			}
			holder[addr], held[a] = a, addr
		}

		for steps := 0; len(b) > 0 && steps < 200; steps++ {
			op := b.next()
			a := att(b.next())
			switch op % 4 {
			case 0, 1: // ADD
				al, err := Allocate(s, set, 0, a, netip.Addr{})
				if errors.Is(err, ErrUnavailable) {
					if _, ok := held[a]; ok || uint64(len(holder)) < size {
						t.Fatalf("exhausted with %d of %d addresses leased (attachment holds one: %v)", len(holder), size, ok)
					}
					continue
				}
				if err != nil {
					t.Fatalf("Allocate: %v", err)
				}
				check(a, al)
			case 2: // ADD with a requested address (maybe outside, maybe the gateway)
				r := set.At(int(b.next()) % set.Len())
				want := addrAt(r.Subnet, uint16(b.next())<<4|uint16(b.next()))
				al, err := Allocate(s, set, 0, a, want)
				switch {
				case err == nil:
					if al.Addr.Addr() != want {
						t.Fatalf("requested %s, got %s", want, al.Addr)
					}
					check(a, al)
				case errors.Is(err, ErrUnavailable):
					if other, ok := holder[want]; !ok || other == a {
						t.Fatalf("requested %s: unavailable, but it is free (or ours): %v", want, err)
					}
				case errors.Is(err, ErrBadRequest):
					prev, holds := held[a]
					if r, ok := set.RangeFor(want); ok && want != r.Gateway && (!holds || prev == want) {
						t.Fatalf("requested %s refused: %v", want, err)
					}
				default:
					t.Fatalf("Allocate(%s): %v", want, err)
				}
			case 3: // DEL
				freed, _ := s.Release(a)
				prev, ok := held[a]
				if ok != (len(freed) == 1) || (ok && freed[0] != prev) {
					t.Fatalf("release of %s freed %v, want %v", a, freed, prev)
				}
				delete(held, a)
				delete(holder, prev)
			}
		}
		all, _ := s.All()
		if len(all) != len(holder) {
			t.Fatalf("store holds %d leases, want %d", len(all), len(holder))
		}
	})
}
