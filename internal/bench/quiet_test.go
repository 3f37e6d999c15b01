package main

import (
	"context"
	"testing"
	"time"
)

func TestParseCPUTimes(t *testing.T) {
	stat := "cpu  100 5 50 800 20 3 2 10 7 1\ncpu0 50 2 25 400 10 1 1 5 3 0\n"
	got, err := parseCPUTimes(stat)
	if err != nil {
		t.Fatal(err)
	}
	// guest and guest_nice (7, 1) are inside user and nice already.
	if want := (cpuTimes{total: 100 + 5 + 50 + 800 + 20 + 3 + 2 + 10, idle: 820}); got != want {
		t.Errorf("got %+v, want %+v", got, want)
	}
	for _, bad := range []string{"", "intr 1 2 3", "cpu 1 2 x 4 5 6"} {
		if _, err := parseCPUTimes(bad); err == nil {
			t.Errorf("%q: no error", bad)
		}
	}
}

func TestIdleSince(t *testing.T) {
	a := cpuTimes{total: 1000, idle: 500}
	if share, ok := (cpuTimes{total: 1100, idle: 590}).idleSince(a); !ok || share < 0.899 || share > 0.901 {
		t.Errorf("share %v %v, want 0.9", share, ok)
	}
	if _, ok := a.idleSince(a); ok {
		t.Error("no time passed, yet a share")
	}
}

func TestWaitQuietGivesUp(t *testing.T) {
	// More than all of the time idle never happens: the wait ends at max.
	if err := waitQuiet(context.Background(), 1.01, 250*time.Millisecond); err == nil {
		t.Fatal("no error for a share that cannot be reached")
	}
}
