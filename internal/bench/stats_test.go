package main

import (
	"testing"
	"time"
)

func durations(ms ...int) []time.Duration {
	out := make([]time.Duration, len(ms))
	for i, v := range ms {
		out[i] = time.Duration(v) * time.Millisecond
	}
	return out
}

func TestSummarize(t *testing.T) {
	tests := []struct {
		name      string
		in        []time.Duration
		wantMed   time.Duration
		wantP90   time.Duration
		wantCount int
	}{
		{"empty", nil, 0, 0, 0},
		{"one", durations(7), 7 * time.Millisecond, 7 * time.Millisecond, 1},
		{"odd unsorted", durations(5, 1, 3), 3 * time.Millisecond, 5 * time.Millisecond, 3},
		{"even", durations(1, 2, 3, 4), 2500 * time.Microsecond, 4 * time.Millisecond, 4},
		{"ten", durations(10, 9, 8, 7, 6, 5, 4, 3, 2, 1), 5500 * time.Microsecond, 9 * time.Millisecond, 10},
		{"twenty", durations(1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20), 10500 * time.Microsecond, 18 * time.Millisecond, 20},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := summarize(tt.in)
			if got.n != tt.wantCount || got.median != tt.wantMed || got.p90 != tt.wantP90 {
				t.Errorf("summarize(%v) = %+v, want n=%d median=%v p90=%v", tt.in, got, tt.wantCount, tt.wantMed, tt.wantP90)
			}
		})
	}
}

func TestSummarizeKeepsInput(t *testing.T) {
	in := durations(3, 1, 2)
	summarize(in)
	if in[0] != 3*time.Millisecond || in[1] != time.Millisecond {
		t.Errorf("summarize reordered its input: %v", in)
	}
}

func TestRatio(t *testing.T) {
	a := summary{n: 1, median: 30 * time.Millisecond}
	b := summary{n: 1, median: 10 * time.Millisecond}
	tests := []struct {
		name   string
		a, b   summary
		want   float64
		wantOK bool
	}{
		{"defined", a, b, 3, true},
		{"empty numerator", summary{}, b, 0, false},
		{"empty denominator", a, summary{}, 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := ratio(tt.a, tt.b)
			if ok != tt.wantOK || got != tt.want {
				t.Errorf("ratio = %v, %v; want %v, %v", got, ok, tt.want, tt.wantOK)
			}
		})
	}
}

func TestMs(t *testing.T) {
	tests := []struct {
		in   time.Duration
		want string
	}{
		{1234 * time.Microsecond, "1.23"},
		{38 * time.Millisecond, "38.0"},
		{625 * time.Millisecond, "625"},
	}
	for _, tt := range tests {
		if got := ms(tt.in); got != tt.want {
			t.Errorf("ms(%v) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestRatioInterval(t *testing.T) {
	spread := func(base, step, n int) summary {
		ms := make([]int, n)
		for i := range ms {
			ms[i] = base + step*(i%9)
		}
		return summarize(durations(ms...))
	}
	t.Run("constant samples", func(t *testing.T) {
		lo, hi, ok := ratioInterval(summarize(durations(30, 30, 30)), summarize(durations(10, 10)))
		if !ok || lo != 3 || hi != 3 {
			t.Errorf("got %v-%v (ok %v), want 3-3", lo, hi, ok)
		}
	})
	t.Run("spread samples bracket the ratio", func(t *testing.T) {
		a, b := spread(20, 2, 100), spread(18, 2, 100)
		v, _ := ratio(a, b)
		lo, hi, ok := ratioInterval(a, b)
		if !ok || lo > v || hi < v || lo == hi {
			t.Errorf("interval %v-%v (ok %v) does not bracket %v", lo, hi, ok, v)
		}
		// More samples of the same spread give a narrower interval.
		lo4, hi4, _ := ratioInterval(spread(20, 2, 400), spread(18, 2, 400))
		if hi4-lo4 >= hi-lo {
			t.Errorf("400 samples: width %v, not below 100 samples' %v", hi4-lo4, hi-lo)
		}
	})
	t.Run("reproducible", func(t *testing.T) {
		a, b := spread(20, 3, 50), spread(17, 2, 60)
		lo1, hi1, _ := ratioInterval(a, b)
		lo2, hi2, _ := ratioInterval(a, b)
		if lo1 != lo2 || hi1 != hi2 {
			t.Errorf("two runs on the same samples: %v-%v and %v-%v", lo1, hi1, lo2, hi2)
		}
	})
	t.Run("too few samples", func(t *testing.T) {
		if _, _, ok := ratioInterval(summarize(durations(5)), summarize(durations(5, 6))); ok {
			t.Error("an interval from one sample")
		}
		if _, _, ok := ratioInterval(summary{}, summarize(durations(5, 6))); ok {
			t.Error("an interval from no samples")
		}
	})
}
