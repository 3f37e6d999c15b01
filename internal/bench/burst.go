package main

import (
	"context"
	"fmt"
	"net/netip"
	"time"
)

// burstOptions size the burst scenarios.
type burstOptions struct {
	n       int // containers ADDed, then DELed, per burst (BENCH_BURST_N)
	workers int // parallel callers, each a thread of the node (BENCH_BURST_WORKERS)
	rounds  int // bursts per implementation (BENCH_BURST_ROUNDS; 1 in quick mode)
}

func defaultBurst() burstOptions { return burstOptions{n: 100, workers: 16, rounds: 5} }

// burstCases are the burst scenarios: one ipMasq network per backend.
func burstCases() []bridgeCase {
	return []bridgeCase{
		{key: scenBurstIPT, title: "burst ipMasq iptables", masq: "iptables", subnet: "10.133.0.0/16"},
		{key: scenBurstNFT, title: "burst ipMasq nftables", masq: "nftables", subnet: "10.134.0.0/16"},
	}
}

// burst times what a node sees when many pods start at once: opts.burst.n
// ADDs from opts.burst.workers parallel callers on one ipMasq network, then
// as many DELs the same way, each phase as the wall time from the first
// call's start to the last one's end. Each implementation gets a node of
// its own with one container attached beforehand, untimed, so that the
// bridge and the network's rules exist and every burst measures concurrent
// calls rather than the network's creation. Rounds alternate which
// implementation goes first.
func (b *bench) burst(ctx context.Context, c bridgeCase) error {
	if !b.root {
		b.rep.addRow(row{scenario: c.title, point: "-", ref: cell{status: "skipped: needs root"}, ours: cell{status: "skipped: needs root"}})
		return nil
	}
	o := b.opts.burst
	c.workers = o.workers
	sides := b.sides("bridge", "host-local")
	if !sides[0].active() {
		return fmt.Errorf("reference bridge/host-local: %s in %s", sides[0].status, b.ref.dir)
	}
	subnet := netip.MustParsePrefix(c.subnet)
	rigs := make([]*bridgeRig, len(sides))
	defer func() {
		for _, r := range rigs {
			if r != nil {
				r.teardown(context.WithoutCancel(ctx), b)
			}
		}
	}()
	for i, s := range sides {
		if !s.active() {
			continue
		}
		r, err := b.newRig(ctx, c, s, 0, subnet)
		rigs[i] = r
		if err == nil {
			err = b.attach(ctx, r, 1)
		}
		if err != nil {
			if i == 0 {
				return fmt.Errorf("reference node: %w", err)
			}
			b.fail(ctx, s, c.title, fmt.Errorf("node: %w", err))
		}
	}
	// took[phase][side], phase 0 = ADD, 1 = DEL
	var took [2][2][]time.Duration
	rules := make([]string, len(sides))
	for round := range o.rounds {
		for k := range sides {
			i := k
			if round%2 == 1 {
				i = len(sides) - 1 - k
			}
			r := rigs[i]
			if r == nil || !r.side.active() {
				continue
			}
			add, del, counts, err := b.burstRound(ctx, r, round)
			if err != nil {
				if i == 0 {
					return fmt.Errorf("reference: %w", err)
				}
				b.fail(ctx, r.side, c.title, err)
				continue
			}
			took[0][i] = append(took[0][i], add)
			took[1][i] = append(took[1][i], del)
			b.raw.add(c.key, o.n, r.side.impl.name, round, "ADD-burst", add)
			b.raw.add(c.key, o.n, r.side.impl.name, round, "DEL-burst", del)
			rules[i] = r.short + ": " + counts
			b.logf("%s round %d, %s: %d ADDs %s, %d DELs %s", c.title, round, r.side.impl.name, o.n, add.Round(time.Millisecond), o.n, del.Round(time.Millisecond))
			if err := waitQuiet(ctx, quietIdle, quietMax); err != nil {
				b.logf("%s: %v", c.title, err)
			}
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
	}
	notes := [2]string{
		fmt.Sprintf("wall time of %d calls from %d workers (rounds: %d), 1 container attached throughout; rules in node after the ADDs: %s", o.n, o.workers, o.rounds, joinNonEmpty(rules, "; ")),
		"",
	}
	var sums [2][2]summary
	for phase, op := range []string{"ADD", "DEL"} {
		x := row{scenario: c.title, point: fmt.Sprintf("%d %ss, %d workers", o.n, op, o.workers), ref: sides[0].cell(took[phase][0]), ours: sides[1].cell(took[phase][1]), note: notes[phase]}
		b.rep.addRow(x)
		sums[phase] = [2]summary{x.ref.sum, x.ours.sum}
	}
	for _, ch := range burstChecks(c.title, o, sums) {
		b.rep.addCheck(ch)
	}
	return nil
}

// burstChecks judges each phase of a burst scenario, ours against the
// reference; sums is [phase][side] as in burst.
func burstChecks(title string, o burstOptions, sums [2][2]summary) []check {
	var out []check
	for phase, op := range []string{"ADD", "DEL"} {
		name := fmt.Sprintf("%s: %d %ss from %d workers, ours/reference (4x faster)", title, o.n, op, o.workers)
		out = append(out, ratioCheck(name, sums[phase][1], sums[phase][0], atMost, burstRatioMax))
	}
	return out
}

// burstRound makes o.n fresh container namespaces, ADDs a container in each
// from the node's workers and DELs them all the same way, timing each
// phase, then removes the namespaces. counts describes the rules in the node
// between the phases.
func (b *bench) burstRound(ctx context.Context, r *bridgeRig, round int) (add, del time.Duration, counts string, err error) {
	o := b.opts.burst
	names := make([]string, o.n)
	for j := range names {
		names[j] = b.nss.name(r.key, r.short, fmt.Sprintf("b%d-%d", round, j))
	}
	r.names = append(r.names, names...)
	if err := b.nss.add(ctx, names); err != nil {
		return 0, 0, "", err
	}
	phase := func(command string) (time.Duration, error) {
		call := func(ctx context.Context, j int) error {
			_, err := r.node.run(ctx, r.invocation(command, fmt.Sprintf("burst-%d-%d", round, j), names[j]))
			return err
		}
		t0 := time.Now()
		err := parallel(ctx, o.workers, 0, o.n, call)
		return time.Since(t0), err
	}
	if add, err = phase("ADD"); err != nil {
		return 0, 0, "", fmt.Errorf("ADD burst, round %d: %w", round, err)
	}
	counts = r.ruleCounts(ctx)
	if del, err = phase("DEL"); err != nil {
		return 0, 0, "", fmt.Errorf("DEL burst, round %d: %w", round, err)
	}
	if err := b.nss.del(ctx, names); err != nil {
		return 0, 0, "", err
	}
	return add, del, counts, nil
}

// joinNonEmpty joins the non-empty strings of parts with sep.
func joinNonEmpty(parts []string, sep string) string {
	s := ""
	for _, p := range parts {
		if p == "" {
			continue
		}
		if s != "" {
			s += sep
		}
		s += p
	}
	return s
}
