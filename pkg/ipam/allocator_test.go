package ipam

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"testing"
)

func rangeSet(t *testing.T, specs ...string) RangeSet {
	t.Helper()
	var rs []Range
	for _, spec := range specs {
		// "subnet[,start,end[,gateway]]"
		f := strings.Split(spec, ",")
		r := Range{Subnet: mustPrefix(t, f[0])}
		if len(f) > 2 {
			r.Start, r.End = addr(f[1]), addr(f[2])
		}
		if len(f) > 3 {
			r.Gateway = addr(f[3])
		}
		rs = append(rs, r)
	}
	s, err := NewRangeSet(rs...)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func att(i int) Attachment { return Attachment{ContainerID: fmt.Sprintf("c%d", i), IfName: "eth0"} }

// TestAllocateOrder runs allocations and releases against a MemStore and checks
// every address handed out.
func TestAllocateOrder(t *testing.T) {
	type step struct {
		release int // > 0: release att(release) instead of allocating
		want    string
	}
	tests := []struct {
		name  string
		set   []string
		last  string // preset last reserved address
		steps []step
	}{
		{name: "sequential from start, gateway skipped", set: []string{"10.0.0.0/29"},
			steps: []step{{want: "10.0.0.2"}, {want: "10.0.0.3"}, {want: "10.0.0.4"}, {want: "10.0.0.5"}, {want: "10.0.0.6"}, {want: "exhausted"}}},
		{name: "released address not reused at once", set: []string{"10.0.0.0/29"},
			steps: []step{{want: "10.0.0.2"}, {want: "10.0.0.3"}, {release: 2}, {want: "10.0.0.4"}, {want: "10.0.0.5"}, {want: "10.0.0.6"}, {want: "10.0.0.3"}, {want: "exhausted"}}},
		{name: "wraps to the start", set: []string{"10.0.0.0/29"}, last: "10.0.0.6",
			steps: []step{{want: "10.0.0.2"}}},
		{name: "last reserved outside the set starts at the beginning", set: []string{"10.0.0.0/29"}, last: "10.9.9.9",
			steps: []step{{want: "10.0.0.2"}}},
		{name: "continues after last reserved", set: []string{"10.0.0.0/29"}, last: "10.0.0.4",
			steps: []step{{want: "10.0.0.5"}, {want: "10.0.0.6"}, {want: "10.0.0.2"}}},
		{name: "last reserved itself is tried last", set: []string{"10.0.0.0/30"}, last: "10.0.0.2",
			steps: []step{{want: "10.0.0.2"}, {want: "exhausted"}}},
		{name: "gateway inside an explicit range is skipped", set: []string{"10.0.0.0/24,10.0.0.10,10.0.0.12,10.0.0.11"},
			steps: []step{{want: "10.0.0.10"}, {want: "10.0.0.12"}, {want: "exhausted"}}},
		{name: "moves across ranges of the set", set: []string{"10.0.0.0/30", "10.0.1.0/30"},
			steps: []step{{want: "10.0.0.2"}, {want: "10.0.1.2"}, {want: "exhausted"}}},
		{name: "last reserved in the second range", set: []string{"10.0.0.0/29", "10.0.1.0/29"}, last: "10.0.1.6",
			steps: []step{{want: "10.0.0.2"}}},
		{name: "ipv6", set: []string{"fd00::/125"},
			steps: []step{{want: "fd00::2"}, {want: "fd00::3"}, {want: "fd00::4"}, {want: "fd00::5"}, {want: "fd00::6"}, {want: "fd00::7"}, {want: "exhausted"}}},
		{name: "ipv4 /31 with gateway elsewhere", set: []string{"10.0.0.0/31,,,10.0.0.0"},
			steps: []step{{want: "10.0.0.1"}, {want: "exhausted"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			set := rangeSet(t, tt.set...)
			s := NewMemStore()
			if tt.last != "" {
				s.last[0] = addr(tt.last)
			}
			n := 0
			for i, st := range tt.steps {
				if st.release > 0 {
					if _, err := s.Release(att(st.release)); err != nil {
						t.Fatal(err)
					}
					continue
				}
				n++
				al, err := Allocate(s, set, 0, att(n), netip.Addr{})
				if st.want == "exhausted" {
					if !errors.Is(err, ErrUnavailable) {
						t.Fatalf("step %d: Allocate() = %v, %v; want ErrUnavailable", i, al.Addr, err)
					}
					continue
				}
				if err != nil {
					t.Fatalf("step %d: %v", i, err)
				}
				if al.Addr.Addr() != addr(st.want) {
					t.Fatalf("step %d: got %s, want %s", i, al.Addr, st.want)
				}
				if r, ok := set.RangeFor(al.Addr.Addr()); !ok || al.Addr.Bits() != r.Subnet.Bits() || al.Gateway != r.Gateway {
					t.Fatalf("step %d: allocation %+v does not match its range", i, al)
				}
			}
		})
	}
}

func TestAllocateRequested(t *testing.T) {
	set := rangeSet(t, "10.0.0.0/24,10.0.0.10,10.0.0.20")
	tests := []struct {
		name    string
		holder  Attachment // att(1) holds 10.0.0.15 beforehand
		req     string
		want    string
		wantErr error
	}{
		{name: "free address", holder: att(2), req: "10.0.0.12", want: "10.0.0.12"},
		{name: "taken by another", holder: att(2), req: "10.0.0.15", wantErr: ErrUnavailable},
		{name: "the gateway", holder: att(2), req: "10.0.0.1", wantErr: ErrBadRequest},
		{name: "outside the range", holder: att(2), req: "10.0.0.30", wantErr: ErrBadRequest},
		{name: "same address again for its holder", holder: att(1), req: "10.0.0.15", want: "10.0.0.15"},
		{name: "holder asks for another", holder: att(1), req: "10.0.0.16", wantErr: ErrBadRequest},
		{name: "holder asks for nothing", holder: att(1), want: "10.0.0.15"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := NewMemStore()
			if ok, err := s.Reserve(att(1), addr("10.0.0.15"), 0); !ok || err != nil {
				t.Fatal(ok, err)
			}
			before, _ := s.All()
			al, err := Allocate(s, set, 0, tt.holder, addr(tt.req))
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("Allocate() = %v, %v; want %v", al.Addr, err, tt.wantErr)
				}
				after, _ := s.All()
				if fmt.Sprint(before) != fmt.Sprint(after) {
					t.Fatalf("leases changed on error: %v -> %v", before, after)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if al.Addr != netip.PrefixFrom(addr(tt.want), 24) || al.Gateway != addr("10.0.0.1") {
				t.Fatalf("got %+v, want %s/24 via 10.0.0.1", al, tt.want)
			}
		})
	}
}

// A repeated allocation returns the lease already held in the set, whichever
// set it is.
func TestAllocateIdempotentPerSet(t *testing.T) {
	v4 := rangeSet(t, "10.0.0.0/24")
	v6 := rangeSet(t, "fd00::/64")
	s := NewMemStore()
	a := att(1)
	first4, err := Allocate(s, v4, 0, a, netip.Addr{})
	if err != nil {
		t.Fatal(err)
	}
	first6, err := Allocate(s, v6, 1, a, netip.Addr{})
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 3; i++ {
		again4, err4 := Allocate(s, v4, 0, a, netip.Addr{})
		again6, err6 := Allocate(s, v6, 1, a, netip.Addr{})
		if err4 != nil || err6 != nil || again4 != first4 || again6 != first6 {
			t.Fatalf("repeat %d: %v %v %v %v, want %v %v", i, again4, err4, again6, err6, first4, first6)
		}
	}
	if got, _ := s.Leases(a); len(got) != 2 {
		t.Fatalf("attachment holds %v, want two leases", got)
	}
	other := Attachment{ContainerID: "c1", IfName: "eth1"}
	al, err := Allocate(s, v4, 0, other, netip.Addr{})
	if err != nil || al.Addr == first4.Addr {
		t.Fatalf("another interface of the container got %v, %v", al.Addr, err)
	}
}

func TestMemStoreReleaseAddrs(t *testing.T) {
	s := NewMemStore()
	a, b := att(1), att(2)
	for _, x := range []struct {
		a    Attachment
		addr string
	}{{a, "10.0.0.2"}, {a, "10.0.0.3"}, {b, "10.0.0.4"}} {
		if ok, err := s.Reserve(x.a, addr(x.addr), 0); !ok || err != nil {
			t.Fatal(ok, err)
		}
	}
	if err := s.ReleaseAddrs(a, []netip.Addr{addr("10.0.0.3"), addr("10.0.0.4")}); err != nil {
		t.Fatal(err)
	}
	all, _ := s.All()
	if fmt.Sprint(all) != fmt.Sprint([]Lease{{addr("10.0.0.2"), a}, {addr("10.0.0.4"), b}}) {
		t.Fatalf("leases after ReleaseAddrs: %v", all)
	}
}
