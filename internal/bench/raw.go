package main

import (
	"bufio"
	"fmt"
	"os"
	"time"
)

// rawLog writes every timed sample of a run as one CSV line (BENCH_RAW), for
// looking at the distributions behind the medians: scenario, point, side,
// round, operation, milliseconds. The zero value (no file) discards.
type rawLog struct {
	f *os.File
	w *bufio.Writer
}

func openRaw(path string) (*rawLog, error) {
	if path == "" {
		return &rawLog{}, nil
	}
	f, err := os.Create(path)
	if err != nil {
		return nil, fmt.Errorf("raw samples: %w", err)
	}
	r := &rawLog{f: f, w: bufio.NewWriter(f)}
	fmt.Fprintln(r.w, "scenario,point,side,round,op,ms")
	return r, nil
}

func (r *rawLog) add(scenario string, point int, side string, round int, op string, d time.Duration) {
	if r.w == nil {
		return
	}
	fmt.Fprintf(r.w, "%s,%d,%s,%d,%s,%.3f\n", scenario, point, side, round, op, float64(d)/float64(time.Millisecond))
}

func (r *rawLog) close() error {
	if r.f == nil {
		return nil
	}
	err := r.w.Flush()
	if cerr := r.f.Close(); err == nil {
		err = cerr
	}
	return err
}
