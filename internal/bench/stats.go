package main

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"time"
)

// summary condenses the timed samples of one measurement point.
type summary struct {
	n       int
	median  time.Duration
	p90     time.Duration
	samples []time.Duration // sorted; what the interval of a ratio resamples
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
	med := median(s)
	// Nearest rank: the smallest sample with at least 90% of samples at or below it.
	rank := (9*n + 9) / 10
	return summary{n: n, median: med, p90: s[rank-1], samples: s}
}

// median of sorted samples (at least one).
func median(s []time.Duration) time.Duration {
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
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

// Bootstrap settings of ratioInterval.
const (
	bootRounds = 2000
	bootLevel  = 0.90
)

// ratioInterval is the 90% bootstrap interval of ratio(a, b): both sample
// sets are resampled with replacement bootRounds times and the ratio of the
// resampled medians taken; the interval is between the 5th and 95th
// percentiles of those. It tells how far the same measurement might land on
// another run: a median of times that spread over a few scheduler ticks
// moves by much more than its ratio's last digit. Resampling is seeded, so a
// report is reproducible from its samples. ok is false when either side has
// fewer than 2 samples.
func ratioInterval(a, b summary) (lo, hi float64, ok bool) {
	if len(a.samples) < 2 || len(b.samples) < 2 {
		return 0, 0, false
	}
	rng := rand.New(rand.NewPCG(1, 2))
	ra := make([]time.Duration, len(a.samples))
	rb := make([]time.Duration, len(b.samples))
	ratios := make([]float64, 0, bootRounds)
	for range bootRounds {
		ma, mb := resampledMedian(rng, a.samples, ra), resampledMedian(rng, b.samples, rb)
		if mb <= 0 {
			continue
		}
		ratios = append(ratios, float64(ma)/float64(mb))
	}
	if len(ratios) == 0 {
		return 0, 0, false
	}
	slices.Sort(ratios)
	tail := (1 - bootLevel) / 2
	at := func(q float64) float64 { return ratios[min(int(q*float64(len(ratios))), len(ratios)-1)] }
	return at(tail), at(1 - tail), true
}

// resampledMedian draws len(from) samples from from, with replacement, into
// buf and returns their median.
func resampledMedian(rng *rand.Rand, from, buf []time.Duration) time.Duration {
	for i := range buf {
		buf[i] = from[rng.IntN(len(from))]
	}
	slices.Sort(buf)
	return median(buf)
}
