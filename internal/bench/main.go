// Command bench times flatcni's bridge and host-local plugins beside the
// reference plugins (containernetworking/plugins) in one run. It drives the
// plugin binaries exactly as a container runtime does (CNI_* environment,
// JSON config on stdin) and prints medians, p90s, ours/reference ratios,
// growth ratios and pass/fail against the project's performance targets.
//
// Everything it creates (network namespaces, bridges, rules, data
// directories) lives in namespaces and a temp directory of its own and is
// removed at the end, also on error or Ctrl-C. It is run by scripts/bench.sh;
// see options.go for the BENCH_* knobs.
package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"time"
)

func main() { os.Exit(run()) }

// bench is the state of one run shared by the scenarios.
type bench struct {
	opts  options
	ref   impl
	ours  impl
	tmp   string     // run temp dir; removed at the end
	nss   namespaces // namespaces of this run
	root  bool
	log   io.Writer
	rep   *report
	raw   *rawLog // every timed sample, when BENCH_RAW names a file
	start time.Time
}

func run() int {
	opts, err := parseOptions(os.Args[1:], os.Getenv)
	if err != nil {
		fmt.Fprintf(os.Stderr, "bench: %v\n", err)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	tmp, err := os.MkdirTemp("", "flatcni-bench-")
	if err != nil {
		fmt.Fprintf(os.Stderr, "bench: create temp dir: %v\n", err)
		return 1
	}
	defer os.RemoveAll(tmp)

	raw, err := openRaw(opts.raw)
	if err != nil {
		fmt.Fprintf(os.Stderr, "bench: %v\n", err)
		return 1
	}
	defer func() {
		if err := raw.close(); err != nil {
			fmt.Fprintf(os.Stderr, "bench: raw samples: %v\n", err)
		}
	}()

	id := make([]byte, 3)
	if _, err := rand.Read(id); err != nil {
		fmt.Fprintf(os.Stderr, "bench: random run id: %v\n", err)
		return 1
	}
	b := &bench{
		opts:  opts,
		ref:   impl{name: "reference", dir: opts.refDir},
		ours:  impl{name: "ours", dir: opts.oursDir},
		tmp:   tmp,
		nss:   namespaces{prefix: "flatcni-bench-" + hex.EncodeToString(id)},
		root:  os.Geteuid() == 0,
		log:   os.Stderr,
		rep:   &report{},
		raw:   raw,
		start: time.Now(),
	}
	defer func() {
		// The run's context may be cancelled by now; cleanup gets its own.
		cctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		if err := b.nss.sweep(cctx); err != nil {
			fmt.Fprintf(os.Stderr, "bench: cleanup: %v\n", err)
		}
	}()

	b.describe()
	failed := false
	steps := []struct {
		key string
		fn  func(context.Context) error
	}{
		{scenHostLocal, b.hostLocal},
		{scenVersion, b.version},
		{scenBridge, func(ctx context.Context) error { return b.bridge(ctx, bridgeCases()[0]) }},
		{scenMasqIPT, func(ctx context.Context) error { return b.bridge(ctx, bridgeCases()[1]) }},
		{scenMasqNFT, func(ctx context.Context) error { return b.bridge(ctx, bridgeCases()[2]) }},
		{scenBurstIPT, func(ctx context.Context) error { return b.burst(ctx, burstCases()[0]) }},
		{scenBurstNFT, func(ctx context.Context) error { return b.burst(ctx, burstCases()[1]) }},
		{scenPortsIPT, func(ctx context.Context) error { return b.bridge(ctx, portsCases()[0]) }},
		{scenPortsNFT, func(ctx context.Context) error { return b.bridge(ctx, portsCases()[1]) }},
		{scenCycleIPT, func(ctx context.Context) error { return b.bridge(ctx, cycleCases()[0]) }},
		{scenCycleNFT, func(ctx context.Context) error { return b.bridge(ctx, cycleCases()[1]) }},
	}
	for _, s := range steps {
		if !opts.wants(s.key) {
			continue
		}
		if ctx.Err() != nil {
			break
		}
		t0 := time.Now()
		b.logf("== %s", s.key)
		if err := s.fn(ctx); err != nil {
			failed = true
			b.rep.addError(fmt.Sprintf("%s: %v", s.key, err))
			b.logf("%s failed: %v", s.key, err)
		}
		b.logf("== %s done in %s", s.key, time.Since(t0).Round(time.Second))
	}
	if ctx.Err() != nil {
		b.rep.addError("interrupted: results are partial")
		failed = true
	}
	b.rep.addHeader(fmt.Sprintf("total bench time %s", time.Since(b.start).Round(time.Second)))

	var out strings.Builder
	b.rep.render(&out)
	fmt.Println()
	fmt.Print(out.String())
	if err := writeResults(opts.out, out.String()); err != nil {
		fmt.Fprintf(os.Stderr, "bench: %v\n", err)
		failed = true
	} else {
		fmt.Fprintf(os.Stderr, "bench: results written to %s\n", opts.out)
	}
	if err := writePlot(opts.plot, b.rep); err != nil {
		fmt.Fprintf(os.Stderr, "bench: %v\n", err)
		failed = true
	} else if len(b.rep.points) > 0 {
		where, _ := filepath.Abs(opts.plot)
		fmt.Fprintf(os.Stderr, "bench: plot written to %s\n", where)
	}
	if failed || len(b.rep.errors) > 0 {
		return 1
	}
	return 0
}

// describe records how and where the run was made.
func (b *bench) describe() {
	mode := "full"
	if b.opts.quick {
		mode = "quick (BENCH_QUICK=1)"
	}
	kernel, _ := os.ReadFile("/proc/sys/kernel/osrelease")
	b.rep.addHeader(fmt.Sprintf("%s, %s, mode %s, %d pre-attach workers",
		time.Now().UTC().Format("2006-01-02 15:04 UTC"), runtimeDesc(strings.TrimSpace(string(kernel))), mode, b.opts.workers))
	b.rep.addHeader(fmt.Sprintf("samples per point: host-local %d, bridge %d, bridge ipMasq %d, ports %d, one at a time %d, VERSION %d; bursts: rounds %d, %d calls from %d workers",
		b.opts.samples, b.opts.bridgeSamples, b.opts.masqSamples, b.opts.portsSamples, b.opts.cycleSamples, b.opts.versionSamples, b.opts.burst.rounds, b.opts.burst.n, b.opts.burst.workers))
	b.rep.addHeader(fmt.Sprintf("reference: %s; ours: %s", b.ref.dir, b.ours.dir))
	b.rep.addHeader("times are wall-clock per plugin process (fork, exec, wait) as a runtime sees them; ms as median (p90)")
	b.rep.addHeader(delTiming(b.opts.delAfter))
	b.rep.addHeader(settleTiming(b.opts.settle))
}

// settleTiming says when a bridge scenario's sampling starts.
func settleTiming(settle time.Duration) string {
	if settle <= 0 {
		return "bridge sampling: right after the containers are attached (BENCH_SETTLE=0)"
	}
	return fmt.Sprintf("bridge sampling: %s after the containers are attached (BENCH_SETTLE)", settle)
}

// delTiming says when a bridge probe's DEL runs after its ADD.
func delTiming(after time.Duration) string {
	if after <= 0 {
		return "bridge probes: DEL right after its ADD (BENCH_DEL_AFTER=0)"
	}
	return fmt.Sprintf("bridge probes: DEL %s after its ADD (BENCH_DEL_AFTER)", after)
}

func runtimeDesc(kernel string) string {
	return fmt.Sprintf("%d CPUs, linux %s, %s", runtime.NumCPU(), kernel, runtime.Version())
}

func (b *bench) logf(format string, args ...any) {
	fmt.Fprintf(b.log, "[%6.1fs] %s\n", time.Since(b.start).Seconds(), fmt.Sprintf(format, args...))
}

// writeResults stores the rendered report, creating its directory.
func writeResults(path, text string) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("create results directory: %w", err)
	}
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		return fmt.Errorf("write results: %w", err)
	}
	return nil
}

// side follows one implementation through a scenario. Once status is set
// the implementation is out of the scenario (not built, or it failed).
type side struct {
	impl   impl
	status string
}

// sides returns the reference and ours for a scenario needing plugins.
func (b *bench) sides(plugins ...string) []*side {
	out := []*side{{impl: b.ref, status: b.ref.missing(plugins...)}}
	oursSide := &side{impl: b.ours}
	if b.ours.dir == "" {
		oursSide.status = "not built"
	} else {
		oursSide.status = b.ours.missing(plugins...)
	}
	return append(out, oursSide)
}

func (s *side) active() bool { return s.status == "" }

// fail takes the side out of the scenario and records why.
func (b *bench) fail(ctx context.Context, s *side, scenario string, err error) {
	if !s.active() {
		return
	}
	// A plugin killed because the run was interrupted is not its failure.
	if ctx.Err() != nil || errors.Is(err, context.Canceled) {
		s.status = "interrupted"
		return
	}
	s.status = "error (see below)"
	b.rep.addError(fmt.Sprintf("%s, %s: %v", scenario, s.impl.name, err))
	b.logf("%s: %s failed: %v", scenario, s.impl.name, err)
}

// cell turns a side's samples at one point into a table cell.
func (s *side) cell(samples []time.Duration) cell {
	if !s.active() {
		return cell{status: s.impl.name + ": " + s.status}
	}
	return cell{sum: summarize(samples)}
}
