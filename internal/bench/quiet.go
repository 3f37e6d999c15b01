package main

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

const (
	// quietIdle is the share of the CPUs' time that must be idle over one
	// quietStep for the machine to count as quiet again.
	quietIdle = 0.9
	quietStep = 100 * time.Millisecond
	// quietMax bounds the wait; a machine busy with something else never
	// gets quiet.
	quietMax = 10 * time.Second
)

// waitQuiet waits until the CPUs were at least idle (a share) idle over
// one quietStep, or max has passed (an error then, to log: the run goes on).
// After namespaces are deleted the kernel tears them down in a worker for
// up to a second or two; samples timed meanwhile would share the CPUs with
// it.
func waitQuiet(ctx context.Context, idle float64, max time.Duration) error {
	deadline := time.Now().Add(max)
	prev, err := readCPUTimes()
	if err != nil {
		return err
	}
	for {
		select {
		case <-time.After(quietStep):
		case <-ctx.Done():
			return ctx.Err()
		}
		cur, err := readCPUTimes()
		if err != nil {
			return err
		}
		if share, ok := cur.idleSince(prev); ok && share >= idle {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("CPUs not %.0f%% idle after %s; sampling on", idle*100, max)
		}
		prev = cur
	}
}

// cpuTimes are the machine's total and idle (idle + iowait) CPU times in
// clock ticks, from the first line of /proc/stat.
type cpuTimes struct{ total, idle uint64 }

func readCPUTimes() (cpuTimes, error) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return cpuTimes{}, err
	}
	return parseCPUTimes(string(b))
}

func parseCPUTimes(stat string) (cpuTimes, error) {
	line, _, _ := strings.Cut(stat, "\n")
	f := strings.Fields(line)
	if len(f) < 6 || f[0] != "cpu" {
		return cpuTimes{}, fmt.Errorf("/proc/stat: unexpected first line %q", line)
	}
	var t cpuTimes
	for i, s := range f[1:] {
		v, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			return cpuTimes{}, fmt.Errorf("/proc/stat: %q: %w", line, err)
		}
		// user nice system idle iowait irq softirq steal guest guest_nice;
		// guest time is counted in user time already.
		if i >= 8 {
			break
		}
		t.total += v
		if i == 3 || i == 4 {
			t.idle += v
		}
	}
	return t, nil
}

// idleSince is the idle share of the CPU time between prev and t; false
// when no time passed.
func (t cpuTimes) idleSince(prev cpuTimes) (float64, bool) {
	if t.total <= prev.total {
		return 0, false
	}
	return float64(t.idle-prev.idle) / float64(t.total-prev.total), true
}
