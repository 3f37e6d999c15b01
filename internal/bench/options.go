package main

import (
	"flag"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// scenario keys, accepted by BENCH_ONLY.
const (
	scenHostLocal = "host-local"
	scenVersion   = "version"
	scenBridge    = "bridge"
	scenMasqIPT   = "masq-iptables"
	scenMasqNFT   = "masq-nftables"
	scenPortsIPT  = "ports-iptables"
	scenPortsNFT  = "ports-nftables"
	scenBurstIPT  = "burst-iptables"
	scenBurstNFT  = "burst-nftables"
	scenCycleIPT  = "cycle-iptables"
	scenCycleNFT  = "cycle-nftables"
)

// scenarioKeys lists every scenario in the order the run executes them.
func scenarioKeys() []string {
	return []string{scenHostLocal, scenVersion, scenBridge, scenMasqIPT, scenMasqNFT, scenBurstIPT, scenBurstNFT, scenPortsIPT, scenPortsNFT, scenCycleIPT, scenCycleNFT}
}

// baseN is the small "existing leases / attached containers" point every
// scenario starts from.
const baseN = 10

// options are the knobs of one run: sizes, sample counts and paths.
type options struct {
	quick          bool
	samples        int // timed samples per point of host-local
	bridgeSamples  int // timed samples per point of the bridge scenario
	masqSamples    int // timed samples per point of the ipMasq scenarios
	versionSamples int // timed samples per binary for VERSION
	leases         int // existing leases at the large host-local point
	bridgeN        int // attached containers at the large bridge point
	masqN          int // attached containers at the large ipMasq point
	portsSamples   int // timed samples per point of the port scenarios
	cycleSamples   int // timed samples of the one-at-a-time scenarios
	portsN         int // attached containers at the large port point
	workers        int // parallel pre-attach workers
	burst          burstOptions
	// delAfter is the pause between a bridge probe's ADD and its timed DEL
	// (BENCH_DEL_AFTER, a Go duration; 0, the default, runs DEL at once).
	// With a pause the DEL is timed without the kernel work its ADD left
	// running in the background.
	delAfter time.Duration
	// settle is the pause between attaching a bridge scenario's containers
	// and its first timed sample (BENCH_SETTLE, a Go duration; 0, the
	// default, samples at once). Containers just attached in bulk send
	// router solicitations at doubling intervals from 4 s, each flooded to
	// every port of their bridge: right after attaching 500 on each side
	// that is tens of floods a second, which no node running 500 containers
	// sees; after 90 s, a fifth of that or less.
	settle  time.Duration
	only    map[string]bool
	oursDir string
	refDir  string
	hello   string
	libs    string // start-up floor with the required libraries linked
	out     string
	raw     string // BENCH_RAW: file for every timed sample (CSV), "" for none
	plot    string // where the SVG plot goes (-plot; see defaultPlot)
}

// parseOptions reads flags and BENCH_* variables (getenv is os.Getenv in
// production). BENCH_QUICK=1 selects small sizes for a smoke run; the other
// variables override single values.
func parseOptions(args []string, getenv func(string) string) (options, error) {
	// The bridge scenario's DEL spreads evenly over ~15 ms (its RCU wait
	// ends on a scheduler tick), so a median needs hundreds of samples to
	// hold still to a few hundredths: with 800 the DEL growth's 90% interval
	// (in the report) is about +-0.03 wide, with 400 +-0.04, with 100
	// +-0.07. A round of the four bridge nodes takes ~0.35 s, of the ipMasq
	// nodes ~0.85 s.
	// host-local's ADD+DEL makes three fsyncs, whose times fall in two
	// groups (~20 and ~30-40 ms) as the journal is or is not committing.
	o := options{
		samples:        100,
		bridgeSamples:  800,
		masqSamples:    100,
		versionSamples: 50,
		leases:         5000,
		bridgeN:        500,
		masqN:          1000,
		portsSamples:   50,
		portsN:         1000,
		cycleSamples:   40,
		workers:        3,
		burst:          defaultBurst(),
	}
	if q := getenv("BENCH_QUICK"); q != "" && q != "0" {
		o.quick = true
		o.samples = 5
		o.bridgeSamples = 5
		o.masqSamples = 5
		o.versionSamples = 10
		o.leases = 1000
		o.bridgeN = 100
		o.masqN = 100
		o.portsSamples = 5
		o.portsN = 30
		o.cycleSamples = 5
		o.burst.rounds = 1
	}
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.StringVar(&o.oursDir, "ours", getenv("FLATCNI_BIN"), "directory with our plugin binaries (default $FLATCNI_BIN)")
	fs.StringVar(&o.refDir, "ref", getenv("FLATCNI_REF_BIN"), "directory with the reference plugin binaries (default $FLATCNI_REF_BIN)")
	fs.StringVar(&o.hello, "hello", "", "hello-world Go binary used as the start-up floor")
	fs.StringVar(&o.libs, "libfloor", "", "Go binary that only links the required libraries (a second start-up floor)")
	fs.StringVar(&o.out, "out", ".bench/results.md", "where to write the results table")
	fs.StringVar(&o.plot, "plot", "", "where to write the SVG plot (default "+plotFull+" for a full run of every scenario, else "+plotPartial+")")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if o.refDir == "" {
		return o, fmt.Errorf("no reference binaries: set FLATCNI_REF_BIN or -ref")
	}
	// BENCH_SAMPLES sets every scenario's count but VERSION's; the
	// BENCH_<SCENARIO>_SAMPLES after it, one's.
	ints := []struct {
		env string
		dst *int
	}{
		{"BENCH_SAMPLES", &o.samples},
		{"BENCH_SAMPLES", &o.bridgeSamples},
		{"BENCH_SAMPLES", &o.masqSamples},
		{"BENCH_BRIDGE_SAMPLES", &o.bridgeSamples},
		{"BENCH_SAMPLES", &o.portsSamples},
		{"BENCH_MASQ_SAMPLES", &o.masqSamples},
		{"BENCH_SAMPLES", &o.cycleSamples},
		{"BENCH_PORTS_SAMPLES", &o.portsSamples},
		{"BENCH_CYCLE_SAMPLES", &o.cycleSamples},
		{"BENCH_VERSION_SAMPLES", &o.versionSamples},
		{"BENCH_LEASES", &o.leases},
		{"BENCH_BRIDGE_N", &o.bridgeN},
		{"BENCH_MASQ_N", &o.masqN},
		{"BENCH_PORTS_N", &o.portsN},
		{"BENCH_WORKERS", &o.workers},
		{"BENCH_BURST_N", &o.burst.n},
		{"BENCH_BURST_WORKERS", &o.burst.workers},
		{"BENCH_BURST_ROUNDS", &o.burst.rounds},
	}
	for _, v := range ints {
		s := getenv(v.env)
		if s == "" {
			continue
		}
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 {
			return o, fmt.Errorf("%s=%q: want a positive integer", v.env, s)
		}
		*v.dst = n
	}
	durations := []struct {
		env string
		dst *time.Duration
	}{
		{"BENCH_DEL_AFTER", &o.delAfter},
		{"BENCH_SETTLE", &o.settle},
	}
	for _, v := range durations {
		s := getenv(v.env)
		if s == "" {
			continue
		}
		d, err := time.ParseDuration(s)
		if err != nil || d < 0 {
			return o, fmt.Errorf("%s=%q: want a duration such as 500ms", v.env, s)
		}
		*v.dst = d
	}
	for _, n := range []int{o.leases, o.bridgeN, o.masqN, o.portsN} {
		if n <= baseN {
			return o, fmt.Errorf("sizes must exceed the base point %d, got %d", baseN, n)
		}
	}
	o.raw = getenv("BENCH_RAW")
	o.only = map[string]bool{}
	if s := getenv("BENCH_ONLY"); s != "" {
		for _, k := range strings.Split(s, ",") {
			k = strings.TrimSpace(k)
			if !isScenario(k) {
				return o, fmt.Errorf("BENCH_ONLY: unknown scenario %q (known: %s)", k, strings.Join(scenarioKeys(), ","))
			}
			o.only[k] = true
		}
	}
	if o.plot == "" {
		o.plot = defaultPlot(o)
	}
	return o, nil
}

// Where the plot goes: only a full run of every scenario replaces the one
// docs/performance.md shows.
const (
	plotFull    = "docs/bench.svg"
	plotPartial = ".bench/bench.svg"
)

func defaultPlot(o options) string {
	if o.quick || len(o.only) > 0 {
		return plotPartial
	}
	return plotFull
}

func isScenario(k string) bool {
	for _, s := range scenarioKeys() {
		if s == k {
			return true
		}
	}
	return false
}

// wants reports whether the run includes scenario k.
func (o options) wants(k string) bool { return len(o.only) == 0 || o.only[k] }
