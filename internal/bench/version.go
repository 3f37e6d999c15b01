package main

import (
	"context"
	"fmt"
	"os/exec"
	"time"
)

// version times CNI_COMMAND=VERSION, the pure start-up cost of a plugin
// process, for both plugins of both implementations, beside a hello-world Go
// binary as the floor. Samples are interleaved so load drift hits all alike.
// As root it also measures what `ip netns exec` would add per process.
func (b *bench) version(ctx context.Context) error {
	const scen = "VERSION"
	type target struct {
		label string
		side  *side
		bin   string
	}
	var targets []target
	for _, p := range []string{"bridge", "host-local"} {
		for _, s := range b.sides(p) {
			targets = append(targets, target{label: p, side: s, bin: s.impl.bin(p)})
		}
	}
	samples := make([][]time.Duration, len(targets))
	var floor, libs []time.Duration
	for range b.opts.versionSamples {
		for i, t := range targets {
			if !t.side.active() {
				continue
			}
			took, err := invocation{bin: t.bin, command: "VERSION"}.run(ctx)
			if err != nil {
				b.fail(ctx, t.side, scen, err)
				continue
			}
			samples[i] = append(samples[i], took)
		}
		if b.opts.hello != "" {
			// Same exec path as the plugins, so only start-up differs.
			took, err := invocation{bin: b.opts.hello, command: "VERSION"}.run(ctx)
			if err != nil {
				return fmt.Errorf("hello-world floor: %w", err)
			}
			floor = append(floor, took)
		}
		if b.opts.libs != "" {
			took, err := invocation{bin: b.opts.libs, command: "VERSION"}.run(ctx)
			if err != nil {
				return fmt.Errorf("required-libraries floor: %w", err)
			}
			libs = append(libs, took)
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
	}
	note := "no hello-world floor given (-hello)"
	if len(floor) > 0 {
		note = "hello-world Go binary built like the plugins (floor): " + summarize(floor).String()
		if len(libs) > 0 {
			note += "; a binary that only links the required libraries: " + summarize(libs).String()
		}
		if extra, err := b.ipNetnsExecCost(ctx); err != nil {
			b.rep.addError(fmt.Sprintf("%s: measure ip netns exec: %v", scen, err))
		} else if extra != "" {
			note += "; " + extra
		}
	}
	for i := 0; i < len(targets); i += 2 {
		x := row{
			scenario: "VERSION start-up",
			point:    targets[i].label,
			ref:      targets[i].side.cell(samples[i]),
			ours:     targets[i+1].side.cell(samples[i+1]),
		}
		if i == 0 {
			x.note = note
		}
		b.rep.addRow(x)
		b.logf("VERSION %s: reference %s | %s", x.point, x.ref, x.ours)
		if len(floor) > 0 {
			b.rep.addCheck(versionCheck(x.point, x.ours.sum, summarize(floor)))
		}
	}
	if len(floor) > 0 && len(libs) > 0 {
		// What any plugin on these libraries pays before its own code runs.
		b.rep.addCheck(ratioCheck("VERSION start-up, required libraries only/hello-world", summarize(libs), summarize(floor), infoOnly, 0))
	}
	return nil
}

// versionCheck judges one of our plugins' VERSION start-up against the
// hello-world floor.
func versionCheck(plugin string, ours, hello summary) check {
	return ratioCheck(fmt.Sprintf("VERSION start-up %s, ours/hello-world", plugin), ours, hello, atMost, versionOverHelloMax)
}

// ipNetnsExecCost measures the hello binary run directly and through
// `ip netns exec` into a namespace of this run, and describes the difference.
// The bench itself does not use ip netns exec: this is for comparison with
// harnesses that do. It returns "" when not root.
func (b *bench) ipNetnsExecCost(ctx context.Context) (string, error) {
	if !b.root {
		return "", nil
	}
	name := b.nss.name("exec-probe")
	if err := b.nss.add(ctx, []string{name}); err != nil {
		return "", err
	}
	defer b.nss.del(context.WithoutCancel(ctx), []string{name})
	var direct, wrapped []time.Duration
	for range b.opts.versionSamples {
		d, err := timeCommand(ctx, b.opts.hello)
		if err != nil {
			return "", err
		}
		w, err := timeCommand(ctx, "ip", "netns", "exec", name, b.opts.hello)
		if err != nil {
			return "", err
		}
		direct = append(direct, d)
		wrapped = append(wrapped, w)
	}
	ds, ws := summarize(direct), summarize(wrapped)
	return fmt.Sprintf("`ip netns exec` would add %s ms per process (not used here)", ms(ws.median-ds.median)), nil
}

// timeCommand runs a command with no input and returns its wall time.
func timeCommand(ctx context.Context, name string, args ...string) (time.Duration, error) {
	cmd := exec.CommandContext(ctx, name, args...)
	start := time.Now()
	out, err := cmd.CombinedOutput()
	took := time.Since(start)
	if err != nil {
		return took, fmt.Errorf("run %s: %w: %s", name, err, oneLine(string(out)))
	}
	return took, nil
}
