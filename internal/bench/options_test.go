package main

import (
	"testing"
	"time"
)

func TestParseOptions(t *testing.T) {
	tests := []struct {
		name    string
		env     map[string]string
		args    []string
		check   func(options) bool
		wantErr bool
	}{
		{
			name: "full defaults",
			env:  map[string]string{"FLATCNI_REF_BIN": "/ref"},
			check: func(o options) bool {
				return !o.quick && o.leases == 5000 && o.bridgeN == 500 && o.masqN == 1000 && o.refDir == "/ref" &&
					o.samples == 100 && o.bridgeSamples == 800 && o.masqSamples == 100
			},
		},
		{
			name: "quick",
			env:  map[string]string{"FLATCNI_REF_BIN": "/ref", "BENCH_QUICK": "1"},
			check: func(o options) bool {
				return o.quick && o.samples == 5 && o.bridgeSamples == 5 && o.masqSamples == 5 && o.masqN == 100
			},
		},
		{
			name:  "quick zero is off",
			env:   map[string]string{"FLATCNI_REF_BIN": "/ref", "BENCH_QUICK": "0"},
			check: func(o options) bool { return !o.quick },
		},
		{
			name: "overrides and flags",
			env:  map[string]string{"FLATCNI_REF_BIN": "/ref", "BENCH_SAMPLES": "7", "BENCH_ONLY": "version,bridge"},
			args: []string{"-ours", "/ours", "-out", "/tmp/r.md"},
			check: func(o options) bool {
				return o.samples == 7 && o.bridgeSamples == 7 && o.masqSamples == 7 && o.oursDir == "/ours" && o.out == "/tmp/r.md" && o.wants(scenBridge) && !o.wants(scenHostLocal)
			},
		},
		{
			name: "BENCH_SAMPLES sets the one-at-a-time scenarios' count too",
			env:  map[string]string{"FLATCNI_REF_BIN": "/ref", "BENCH_SAMPLES": "7"},
			check: func(o options) bool {
				return o.cycleSamples == 7 && o.portsSamples == 7
			},
		},
		{
			name: "BENCH_CYCLE_SAMPLES wins over BENCH_SAMPLES",
			env:  map[string]string{"FLATCNI_REF_BIN": "/ref", "BENCH_SAMPLES": "7", "BENCH_CYCLE_SAMPLES": "12"},
			check: func(o options) bool {
				return o.cycleSamples == 12 && o.samples == 7
			},
		},
		{
			name: "per-scenario samples win over BENCH_SAMPLES",
			env:  map[string]string{"FLATCNI_REF_BIN": "/ref", "BENCH_SAMPLES": "7", "BENCH_BRIDGE_SAMPLES": "30", "BENCH_MASQ_SAMPLES": "9"},
			check: func(o options) bool {
				return o.samples == 7 && o.bridgeSamples == 30 && o.masqSamples == 9
			},
		},
		{
			name:  "DEL pause",
			env:   map[string]string{"FLATCNI_REF_BIN": "/ref", "BENCH_DEL_AFTER": "300ms"},
			check: func(o options) bool { return o.delAfter == 300*time.Millisecond },
		},
		{
			name:  "DEL at once by default",
			env:   map[string]string{"FLATCNI_REF_BIN": "/ref"},
			check: func(o options) bool { return o.delAfter == 0 },
		},
		{
			name:  "settle",
			env:   map[string]string{"FLATCNI_REF_BIN": "/ref", "BENCH_SETTLE": "90s"},
			check: func(o options) bool { return o.settle == 90*time.Second && o.delAfter == 0 },
		},
		{
			name:  "no settling by default",
			env:   map[string]string{"FLATCNI_REF_BIN": "/ref"},
			check: func(o options) bool { return o.settle == 0 },
		},
		{name: "bad settle", env: map[string]string{"FLATCNI_REF_BIN": "/ref", "BENCH_SETTLE": "1 min"}, wantErr: true},
		{name: "bad DEL pause", env: map[string]string{"FLATCNI_REF_BIN": "/ref", "BENCH_DEL_AFTER": "soon"}, wantErr: true},
		{name: "negative DEL pause", env: map[string]string{"FLATCNI_REF_BIN": "/ref", "BENCH_DEL_AFTER": "-1s"}, wantErr: true},
		{name: "no reference", env: map[string]string{}, wantErr: true},
		{name: "bad number", env: map[string]string{"FLATCNI_REF_BIN": "/ref", "BENCH_SAMPLES": "x"}, wantErr: true},
		{name: "size below base", env: map[string]string{"FLATCNI_REF_BIN": "/ref", "BENCH_MASQ_N": "5"}, wantErr: true},
		{name: "unknown scenario", env: map[string]string{"FLATCNI_REF_BIN": "/ref", "BENCH_ONLY": "nope"}, wantErr: true},
		// The burst scenarios and the plot.
		{
			name: "defaults",
			env:  map[string]string{"FLATCNI_REF_BIN": "/ref"},
			check: func(o options) bool {
				return o.burst == burstOptions{n: 100, workers: 16, rounds: 5} && o.plot == plotFull
			},
		},
		{
			name: "quick: one round of the same burst, plot aside",
			env:  map[string]string{"FLATCNI_REF_BIN": "/ref", "BENCH_QUICK": "1"},
			check: func(o options) bool {
				return o.burst == burstOptions{n: 100, workers: 16, rounds: 1} && o.plot == plotPartial
			},
		},
		{
			name: "only the bursts",
			env:  map[string]string{"FLATCNI_REF_BIN": "/ref", "BENCH_ONLY": "burst-iptables, burst-nftables"},
			check: func(o options) bool {
				return o.wants(scenBurstIPT) && o.wants(scenBurstNFT) && !o.wants(scenBridge) && !o.wants(scenMasqIPT) && o.plot == plotPartial
			},
		},
		{
			name: "sizes",
			env:  map[string]string{"FLATCNI_REF_BIN": "/ref", "BENCH_BURST_N": "40", "BENCH_BURST_WORKERS": "4", "BENCH_BURST_ROUNDS": "2"},
			check: func(o options) bool {
				return o.burst == burstOptions{n: 40, workers: 4, rounds: 2}
			},
		},
		{
			name:  "plot flag",
			env:   map[string]string{"FLATCNI_REF_BIN": "/ref", "BENCH_ONLY": "bridge"},
			args:  []string{"-plot", "/tmp/p.svg"},
			check: func(o options) bool { return o.plot == "/tmp/p.svg" },
		},
		{name: "zero workers", env: map[string]string{"FLATCNI_REF_BIN": "/ref", "BENCH_BURST_WORKERS": "0"}, wantErr: true},
		{name: "bad rounds", env: map[string]string{"FLATCNI_REF_BIN": "/ref", "BENCH_BURST_ROUNDS": "many"}, wantErr: true},
		{name: "unknown burst", env: map[string]string{"FLATCNI_REF_BIN": "/ref", "BENCH_ONLY": "burst"}, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o, err := parseOptions(tt.args, func(k string) string { return tt.env[k] })
			if (err != nil) != tt.wantErr {
				t.Fatalf("parseOptions error = %v, wantErr %v", err, tt.wantErr)
			}
			if err == nil && !tt.check(o) {
				t.Errorf("unexpected options %+v", o)
			}
		})
	}
}
