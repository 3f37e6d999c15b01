package main

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func TestBurstChecks(t *testing.T) {
	s := func(d time.Duration) summary { return summarize([]time.Duration{d, d, d}) }
	o := burstOptions{n: 100, workers: 16}
	// [phase][side]: ADD 4x faster exactly, DEL only 2x.
	sums := [2][2]summary{{s(12 * time.Second), s(3 * time.Second)}, {s(10 * time.Second), s(5 * time.Second)}}
	cs := burstChecks("burst ipMasq iptables", o, sums)
	if len(cs) != 2 {
		t.Fatalf("%d checks, want 2", len(cs))
	}
	if v := cs[0].verdict(); v != "PASS" {
		t.Errorf("ADD at 0.25x: %s, want PASS", v)
	}
	if v := cs[1].verdict(); v != "FAIL" {
		t.Errorf("DEL at 0.5x: %s, want FAIL", v)
	}
	if !strings.Contains(cs[0].name, "100 ADDs from 16 workers") || !strings.Contains(cs[1].name, "DELs") {
		t.Errorf("names %q, %q", cs[0].name, cs[1].name)
	}
	if cs[0].limitString() != "≤ 0.25x" {
		t.Errorf("limit %s", cs[0].limitString())
	}
	// Ours missing: no verdict.
	if v := burstChecks("b", o, [2][2]summary{{s(time.Second), {}}})[0].verdict(); v != "n/a" {
		t.Errorf("without ours: %s, want n/a", v)
	}
}

func TestTargets(t *testing.T) {
	cases := map[string]bridgeCase{}
	for _, c := range bridgeCases() {
		cases[c.key] = c
	}
	br := cases[scenBridge]
	if br.maxAdd != 0.25 || br.maxDel != 0.30 || br.maxGrowth != 1.15 || !br.judgeDel {
		t.Errorf("bridge targets %+v", br)
	}
	if c := cases[scenMasqIPT]; c.maxAdd != 0.12 || c.maxGrowth != 1.15 || c.judgeDel {
		t.Errorf("ipMasq iptables targets %+v", c)
	}
	if c := cases[scenMasqNFT]; c.maxAdd != 0.10 || c.maxGrowth != 1.15 || c.judgeDel {
		t.Errorf("ipMasq nftables targets %+v", c)
	}
	if hostLocalRatioMax != 0.10 || burstRatioMax != 0.25 {
		t.Error("host-local or burst limit changed")
	}
	ms := func(v float64) summary {
		return summarize([]time.Duration{time.Duration(v * float64(time.Millisecond))})
	}
	if v := versionCheck("bridge", ms(9.3), ms(7.8)).verdict(); v != "PASS" {
		t.Errorf("VERSION 1.19x: %s, want PASS", v)
	}
	if v := versionCheck("bridge", ms(9.5), ms(7.8)).verdict(); v != "FAIL" {
		t.Errorf("VERSION 1.22x: %s, want FAIL", v)
	}
}

func TestParallel(t *testing.T) {
	var calls atomic.Int32
	seen := make([]atomic.Bool, 50)
	err := parallel(context.Background(), 16, 0, 50, func(_ context.Context, i int) error {
		calls.Add(1)
		seen[i].Store(true)
		return nil
	})
	if err != nil || calls.Load() != 50 {
		t.Fatalf("err %v, %d calls", err, calls.Load())
	}
	for i := range seen {
		if !seen[i].Load() {
			t.Errorf("index %d not called", i)
		}
	}
	boom := errors.New("boom")
	calls.Store(0)
	err = parallel(context.Background(), 1, 5, 100, func(_ context.Context, i int) error {
		calls.Add(1)
		if i == 7 {
			return boom
		}
		return nil
	})
	if !errors.Is(err, boom) || calls.Load() >= 95 {
		t.Errorf("err %v after %d calls: want boom, and the calls stopped soon after it", err, calls.Load())
	}
}
