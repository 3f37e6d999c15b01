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
