package main

import (
	"fmt"
	"slices"
	"time"
)

// summary condenses the timed samples of one measurement point.
type summary struct {
	n      int
	median time.Duration
	p90    time.Duration
}

// summarize computes the median and the nearest-rank 90th percentile of
// samples. It returns the zero summary for an empty input.
func summarize(samples []time.Duration) summary {
	if len(samples) == 0 {
		return summary{}
	}
	s := slices.Clone(samples)
	slices.Sort(s)
	n := len(s)
	var med time.Duration
	if n%2 == 1 {
		med = s[n/2]
	} else {
		med = (s[n/2-1] + s[n/2]) / 2
	}
	// Nearest rank: the smallest sample with at least 90% of samples at or below it.
	rank := (9*n + 9) / 10
	return summary{n: n, median: med, p90: s[rank-1]}
}

// ms renders a duration in milliseconds with a precision that suits its size.
func ms(d time.Duration) string {
	v := float64(d) / float64(time.Millisecond)
	switch {
	case v >= 100:
		return fmt.Sprintf("%.0f", v)
	case v >= 10:
		return fmt.Sprintf("%.1f", v)
	default:
		return fmt.Sprintf("%.2f", v)
	}
}

// String renders "median (p90)" in milliseconds.
func (s summary) String() string {
	if s.n == 0 {
		return "-"
	}
	return fmt.Sprintf("%s (%s)", ms(s.median), ms(s.p90))
}

// ratio returns a/b of two medians and whether it is defined.
func ratio(a, b summary) (float64, bool) {
	if a.n == 0 || b.n == 0 || b.median <= 0 {
		return 0, false
	}
	return float64(a.median) / float64(b.median), true
}
