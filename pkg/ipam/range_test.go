package ipam

import (
	"errors"
	"net/netip"
	"strings"
	"testing"
)

func mustPrefix(t *testing.T, s string) netip.Prefix {
	t.Helper()
	p, err := netip.ParsePrefix(s)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func addr(s string) netip.Addr {
	if s == "" {
		return netip.Addr{}
	}
	return netip.MustParseAddr(s)
}

func TestRangeCanonicalize(t *testing.T) {
	tests := []struct {
		name                 string
		subnet               string
		start, end, gw       string
		wantStart, wantEnd   string
		wantGw, wantErrMatch string
	}{
		{name: "v4 /24 defaults", subnet: "10.0.0.0/24", wantStart: "10.0.0.1", wantEnd: "10.0.0.254", wantGw: "10.0.0.1"},
		{name: "v4 /16 defaults", subnet: "10.2.0.0/16", wantStart: "10.2.0.1", wantEnd: "10.2.255.254", wantGw: "10.2.0.1"},
		{name: "v4 /30", subnet: "10.0.0.0/30", wantStart: "10.0.0.1", wantEnd: "10.0.0.2", wantGw: "10.0.0.1"},
		{name: "v6 /64 defaults", subnet: "fd00::/64", wantStart: "fd00::1", wantEnd: "fd00::ffff:ffff:ffff:ffff", wantGw: "fd00::1"},
		{name: "v6 /126", subnet: "fd00::/126", wantStart: "fd00::1", wantEnd: "fd00::3", wantGw: "fd00::1"},
		{name: "explicit range and gateway", subnet: "10.0.0.0/24", start: "10.0.0.100", end: "10.0.0.200", gw: "10.0.0.254",
			wantStart: "10.0.0.100", wantEnd: "10.0.0.200", wantGw: "10.0.0.254"},
		{name: "v4-mapped subnet is unmapped", subnet: "::ffff:10.0.0.0/120", wantStart: "10.0.0.1", wantEnd: "10.0.0.254", wantGw: "10.0.0.1"},
		{name: "v4-mapped bounds are unmapped", subnet: "10.0.0.0/24", start: "::ffff:10.0.0.5", wantStart: "10.0.0.5", wantEnd: "10.0.0.254", wantGw: "10.0.0.1"},
		{name: "/31 with gateway elsewhere", subnet: "10.0.0.0/31", gw: "10.0.0.0", wantStart: "10.0.0.1", wantEnd: "10.0.0.1", wantGw: "10.0.0.0"},
		{name: "/31 default", subnet: "10.0.0.0/31", wantErrMatch: "no address to allocate"},
		{name: "/32", subnet: "10.0.0.7/32", wantErrMatch: "too small"},
		{name: "/127", subnet: "fd00::/127", wantErrMatch: "no address to allocate"},
		{name: "/128", subnet: "fd00::1/128", wantErrMatch: "too small"},
		{name: "host bits", subnet: "10.0.0.1/24", wantErrMatch: "host bits"},
		{name: "start outside subnet", subnet: "10.0.0.0/24", start: "10.0.1.1", wantErrMatch: "rangeStart 10.0.1.1 is not in subnet"},
		{name: "end outside subnet", subnet: "10.0.0.0/24", end: "10.0.1.1", wantErrMatch: "rangeEnd 10.0.1.1 is not in subnet"},
		{name: "gateway outside subnet (accepted, as by the reference)", subnet: "10.0.0.0/24", gw: "10.9.0.1", wantStart: "10.0.0.1", wantEnd: "10.0.0.254", wantGw: "10.9.0.1"},
		{name: "end before start", subnet: "10.0.0.0/24", start: "10.0.0.9", end: "10.0.0.8", wantErrMatch: "before rangeStart"},
		// A range of its gateway alone hands out nothing but is valid, as
		// with the reference: its set may hold other ranges (a set of
		// such ranges only is refused, RangeSet.Check).
		{name: "only the gateway", subnet: "10.0.0.0/24", start: "10.0.0.5", end: "10.0.0.5", gw: "10.0.0.5", wantStart: "10.0.0.5", wantEnd: "10.0.0.5", wantGw: "10.0.0.5"},
		{name: "/31 of its gateway alone", subnet: "10.0.0.0/31", start: "10.0.0.1", end: "10.0.0.1", wantErrMatch: "no address to allocate"},
		{name: "family mismatch", subnet: "10.0.0.0/24", start: "fd00::1", wantErrMatch: "not in subnet"},
		{name: "gateway of the other family", subnet: "10.0.0.0/24", gw: "fd00::1", wantErrMatch: "gateway fd00::1 is not of subnet 10.0.0.0/24's family"},
		{name: "v4 gateway in a v6 subnet", subnet: "fd00::/64", gw: "10.0.0.1", wantErrMatch: "not of subnet"},
		{name: "gateway with a zone", subnet: "fe80::/64", gw: "fe80::1%eth0", wantErrMatch: "has a zone"},
		{name: "start with a zone", subnet: "fe80::/64", start: "fe80::5%eth0", wantErrMatch: "has a zone"},
		{name: "v4-mapped address, prefix shorter than /96", subnet: "::ffff:0:0/95", wantErrMatch: "host bits set (the network address is ::fffe:0:0)"},
		{name: "v4-mapped gateway with a zone", subnet: "10.0.0.0/24", gw: "::ffff:10.0.0.1%eth0", wantErrMatch: "has a zone"},
		{name: "no subnet", wantErrMatch: "subnet missing"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := Range{Start: addr(tt.start), End: addr(tt.end), Gateway: addr(tt.gw)}
			if tt.subnet != "" {
				r.Subnet = mustPrefix(t, tt.subnet)
			}
			err := r.Canonicalize()
			if tt.wantErrMatch != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErrMatch) {
					t.Fatalf("Canonicalize() error = %v, want one containing %q", err, tt.wantErrMatch)
				}
				return
			}
			if err != nil {
				t.Fatalf("Canonicalize(): %v", err)
			}
			if r.Start != addr(tt.wantStart) || r.End != addr(tt.wantEnd) || r.Gateway != addr(tt.wantGw) {
				t.Fatalf("got start %s end %s gw %s, want %s %s %s", r.Start, r.End, r.Gateway, tt.wantStart, tt.wantEnd, tt.wantGw)
			}
		})
	}
}

func TestNewRangeSet(t *testing.T) {
	tests := []struct {
		name     string
		subnets  []string
		wantErr  string
		wantIs4  bool
		wantSize uint64
	}{
		{name: "one v4", subnets: []string{"10.0.0.0/24"}, wantIs4: true, wantSize: 253},
		{name: "two v4", subnets: []string{"10.0.0.0/30", "10.0.1.0/30"}, wantIs4: true, wantSize: 2},
		{name: "one v6", subnets: []string{"fd00::/120"}, wantSize: 254},
		{name: "empty", wantErr: "empty range set"},
		{name: "mixed", subnets: []string{"10.0.0.0/24", "fd00::/64"}, wantErr: "mixed address families"},
		{name: "overlap", subnets: []string{"10.0.0.0/24", "10.0.0.0/25"}, wantErr: "overlaps"},
		{name: "bad member", subnets: []string{"10.0.0.0/24", "10.0.1.1/32"}, wantErr: "too small"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var ranges []Range
			for _, sub := range tt.subnets {
				ranges = append(ranges, Range{Subnet: mustPrefix(t, sub)})
			}
			s, err := NewRangeSet(ranges...)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if s.Is4() != tt.wantIs4 {
				t.Errorf("Is4() = %v", s.Is4())
			}
			if got := s.Size(1 << 40); got != tt.wantSize {
				t.Errorf("Size() = %d, want %d", got, tt.wantSize)
			}
		})
	}
}

// A range that holds only its gateway is skipped within its set, as by the
// reference; a set with nothing else is refused.
func TestRangeSetWithGatewayOnlyRange(t *testing.T) {
	gwOnly := Range{Subnet: mustPrefix(t, "10.0.0.0/24"), Start: addr("10.0.0.1"), End: addr("10.0.0.1")}
	s, err := NewRangeSet(gwOnly, Range{Subnet: mustPrefix(t, "10.0.1.0/30")})
	if err != nil {
		t.Fatalf("NewRangeSet: %v", err)
	}
	if got := s.Size(100); got != 1 {
		t.Errorf("Size() = %d, want 1", got)
	}
	m := NewMemStore()
	al, err := Allocate(m, s, 0, att(1), netip.Addr{})
	if err != nil || al.Addr != mustPrefix(t, "10.0.1.2/30") {
		t.Fatalf("Allocate() = %v, %v; want 10.0.1.2/30", al.Addr, err)
	}
	if al, err := Allocate(m, s, 0, att(2), netip.Addr{}); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("second Allocate() = %v, %v; want ErrUnavailable", al.Addr, err)
	}
	if _, err := NewRangeSet(gwOnly); err == nil || !strings.Contains(err.Error(), "no address to allocate") {
		t.Fatalf("set of a gateway-only range: error %v, want one saying it has no address to allocate", err)
	}
	two := Range{Subnet: mustPrefix(t, "10.0.2.0/24"), Start: addr("10.0.2.9"), End: addr("10.0.2.9"), Gateway: addr("10.0.2.9")}
	if _, err := NewRangeSet(gwOnly, two); err == nil || !strings.Contains(err.Error(), "no address to allocate") {
		t.Fatalf("set of two gateway-only ranges: error %v, want one saying it has no address to allocate", err)
	}
}

// STATUS asks Size(used+1) and calls the set exhausted when the answer is not
// above used: the gateway must not make a free set look full.
func TestRangeSetSizeSaturates(t *testing.T) {
	tests := []struct {
		name   string
		ranges []Range
		max    uint64
		want   uint64
	}{
		{name: "gateway in range, max 1", ranges: []Range{{Subnet: mustPrefix(t, "10.0.0.0/24")}}, max: 1, want: 1},
		{name: "gateway in range, max 252", ranges: []Range{{Subnet: mustPrefix(t, "10.0.0.0/24")}}, max: 252, want: 252},
		{name: "gateway in range, max 253", ranges: []Range{{Subnet: mustPrefix(t, "10.0.0.0/24")}}, max: 253, want: 253},
		{name: "gateway in range, max 254", ranges: []Range{{Subnet: mustPrefix(t, "10.0.0.0/24")}}, max: 254, want: 253},
		{name: "gateway outside range", ranges: []Range{{Subnet: mustPrefix(t, "10.0.0.0/24"), Start: addr("10.0.0.10"), End: addr("10.0.0.19")}}, max: 100, want: 10},
		{name: "two ranges", ranges: []Range{{Subnet: mustPrefix(t, "10.0.0.0/30")}, {Subnet: mustPrefix(t, "10.0.1.0/29")}}, max: 100, want: 1 + 5},
		{name: "two ranges saturate", ranges: []Range{{Subnet: mustPrefix(t, "10.0.0.0/30")}, {Subnet: mustPrefix(t, "10.0.1.0/29")}}, max: 3, want: 3},
		{name: "v6 /64 saturates", ranges: []Range{{Subnet: mustPrefix(t, "fd00::/64")}}, max: 1000, want: 1000},
		{name: "v6 /8 saturates", ranges: []Range{{Subnet: mustPrefix(t, "fd00::/8")}}, max: 5, want: 5},
		{name: "v6 whole space", ranges: []Range{{Subnet: mustPrefix(t, "::/0")}}, max: ^uint64(0), want: ^uint64(0)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := NewRangeSet(tt.ranges...)
			if err != nil {
				t.Fatal(err)
			}
			if got := s.Size(tt.max); got != tt.want {
				t.Fatalf("Size(%d) = %d, want %d", tt.max, got, tt.want)
			}
		})
	}
}

func TestRangeContainsAndOverlaps(t *testing.T) {
	mk := func(sub, start, end string) Range {
		r := Range{Subnet: mustPrefix(t, sub), Start: addr(start), End: addr(end)}
		if err := r.Canonicalize(); err != nil {
			t.Fatal(err)
		}
		return r
	}
	r := mk("10.0.0.0/24", "10.0.0.10", "10.0.0.20")
	for _, tt := range []struct {
		a    string
		want bool
	}{{"10.0.0.10", true}, {"10.0.0.20", true}, {"10.0.0.15", true}, {"::ffff:10.0.0.15", true}, {"10.0.0.9", false}, {"10.0.0.21", false}, {"fd00::10", false}} {
		if got := r.Contains(addr(tt.a)); got != tt.want {
			t.Errorf("Contains(%s) = %v, want %v", tt.a, got, tt.want)
		}
	}
	for _, tt := range []struct {
		o    Range
		want bool
	}{
		{mk("10.0.0.0/24", "10.0.0.20", "10.0.0.30"), true},
		{mk("10.0.0.0/24", "10.0.0.21", "10.0.0.30"), false},
		{mk("10.0.0.0/16", "", ""), true},
		{mk("fd00::/64", "", ""), false},
	} {
		if got := r.Overlaps(&tt.o); got != tt.want {
			t.Errorf("Overlaps(%s) = %v, want %v", &tt.o, got, tt.want)
		}
	}
}

// A set gives back each range as it was added: those written as a subnet
// alone from the subnet (5 bytes in IPv4, 17 in IPv6), the others from
// their own start, end and gateway besides.
func TestRangeSetKeepsEachRange(t *testing.T) {
	tests := []struct {
		name     string
		ranges   []Range
		netBytes int // bytes of the compact list
		whole    int // ranges with their own bounds
	}{
		{name: "v4 defaults", netBytes: 3 * 5, ranges: []Range{
			{Subnet: mustPrefix(t, "10.0.0.0/24")},
			{Subnet: mustPrefix(t, "10.0.1.0/30")},
			{Subnet: mustPrefix(t, "10.0.2.0/29"), Start: addr("10.0.2.1"), Gateway: addr("10.0.2.1")}, // the defaults, written out
		}},
		{name: "v4 own bounds and gateway", netBytes: 3 * 5, whole: 2, ranges: []Range{
			{Subnet: mustPrefix(t, "10.1.0.0/24"), Start: addr("10.1.0.10"), End: addr("10.1.0.20")},
			{Subnet: mustPrefix(t, "10.2.0.0/24")},
			{Subnet: mustPrefix(t, "10.3.0.0/24"), Gateway: addr("10.3.0.254")},
		}},
		{name: "v6", netBytes: 2 * 17, whole: 1, ranges: []Range{
			{Subnet: mustPrefix(t, "fd00::/120")},
			{Subnet: mustPrefix(t, "fd00:1::/64"), Start: addr("fd00:1::100"), End: addr("fd00:1::1ff")},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var want []Range
			for _, r := range tt.ranges {
				if err := r.Canonicalize(); err != nil {
					t.Fatal(err)
				}
				want = append(want, r)
			}
			s, err := NewRangeSet(tt.ranges...)
			if err != nil {
				t.Fatal(err)
			}
			if s.Len() != len(want) {
				t.Fatalf("Len() = %d, want %d", s.Len(), len(want))
			}
			for i, r := range s.All() {
				if r != want[i] || s.At(i) != want[i] {
					t.Errorf("range %d = %+v, want %+v", i, r, want[i])
				}
				if s.start(i) != want[i].Start {
					t.Errorf("start(%d) = %s, want %s", i, s.start(i), want[i].Start)
				}
				if got, ok := s.RangeFor(want[i].End); !ok || got != want[i] {
					t.Errorf("RangeFor(%s) = %+v, %v", want[i].End, got, ok)
				}
			}
			w := 16
			if s.is4 {
				w = 4
			}
			if len(s.nets) != tt.netBytes || len(s.own) != tt.whole || len(s.ends) != 3*w*tt.whole {
				t.Errorf("kept %d bytes of subnets and %d ranges' own bounds (%d bytes), want %d and %d", len(s.nets), len(s.own), len(s.ends), tt.netBytes, tt.whole)
			}
		})
	}
}

// Describe names the gateways that sit inside the ranges: a /30's only
// range runs .1-.2, but .1 is the gateway and never handed out.
func TestRangeSetDescribe(t *testing.T) {
	mk := func(subnet, gw string) Range {
		r := Range{Subnet: netip.MustParsePrefix(subnet)}
		if gw != "" {
			r.Gateway = netip.MustParseAddr(gw)
		}
		if err := r.Canonicalize(); err != nil {
			t.Fatal(err)
		}
		return r
	}
	for _, tc := range []struct {
		ranges []Range
		want   string
	}{
		{[]Range{mk("10.74.0.0/30", "")}, "10.74.0.1-10.74.0.2 (gateway 10.74.0.1 is not handed out)"},
		{[]Range{mk("10.74.0.0/30", "10.74.0.3")}, "10.74.0.1-10.74.0.2"},
		{[]Range{mk("10.74.0.0/30", ""), mk("10.75.0.0/30", "")}, "10.74.0.1-10.74.0.2,10.75.0.1-10.75.0.2 (gateways 10.74.0.1, 10.75.0.1 are not handed out)"},
	} {
		s, err := NewRangeSet(tc.ranges...)
		if err != nil {
			t.Fatal(err)
		}
		if got := s.Describe(); got != tc.want {
			t.Errorf("Describe() = %q, want %q", got, tc.want)
		}
	}
}
