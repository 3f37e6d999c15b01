package main

import (
	"context"
	"fmt"
	"net/netip"
	"path/filepath"
	"time"
)

// hostLocalSubnet is the /16 the host-local scenario allocates from.
const hostLocalSubnet = "10.128.0.0/16"

// hostLocal times an ADD+DEL cycle of host-local on its own, at baseN and at
// opts.leases existing leases written straight to disk in the reference's
// layout. Both implementations read copies of the same files; each gets one
// untimed warm-up cycle per point (ours may build an index on first use).
// Samples rotate over points and implementations so load drift hits all.
func (b *bench) hostLocal(ctx context.Context) error {
	const scen = "host-local ADD+DEL"
	sides := b.sides("host-local")
	if !sides[0].active() {
		return fmt.Errorf("reference host-local: %s in %s", sides[0].status, b.ref.dir)
	}
	subnet := netip.MustParsePrefix(hostLocalSubnet)
	// Any path will do: host-local never enters the namespace, the skel
	// only needs CNI_NETNS set for ADD.
	netns := nsPath(b.nss.name("none"))
	points := []int{baseN, b.opts.leases}
	// cfgs[point][side]
	cfgs := make([][][]byte, len(points))
	for p, n := range points {
		cfgs[p] = make([][]byte, len(sides))
		for i, s := range sides {
			if !s.active() {
				continue
			}
			dataDir := filepath.Join(b.tmp, fmt.Sprintf("host-local-%s-%d", s.impl.name, n))
			if err := writeLeases(dataDir, benchNetwork, subnet, n); err != nil {
				return err
			}
			cfg, err := hostLocalConfig(hostLocalIPAM(subnet, dataDir))
			if err != nil {
				return err
			}
			cfgs[p][i] = cfg
			if _, err := b.hostLocalCycle(ctx, s.impl, cfg, netns, fmt.Sprintf("warm-%d", n)); err != nil {
				b.fail(ctx, s, scen, fmt.Errorf("warm-up at %d leases: %w", n, err))
			}
		}
	}
	samples := make([][][]time.Duration, len(points))
	for p := range points {
		samples[p] = make([][]time.Duration, len(sides))
	}
	for k := range b.opts.samples {
		for p, n := range points {
			for i, s := range sides {
				if !s.active() {
					continue
				}
				took, err := b.hostLocalCycle(ctx, s.impl, cfgs[p][i], netns, fmt.Sprintf("bench-%d-%d", n, k))
				if err != nil {
					b.fail(ctx, s, scen, fmt.Errorf("at %d leases: %w", n, err))
					continue
				}
				samples[p][i] = append(samples[p][i], took)
				b.raw.add(scenHostLocal, n, s.impl.name, k, "ADD+DEL", took)
			}
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
	}
	// meds[point][side]
	meds := make([][]summary, len(points))
	for p, n := range points {
		x := row{scenario: "host-local", point: fmt.Sprintf("ADD+DEL @%d leases", n), ref: sides[0].cell(samples[p][0]), ours: sides[1].cell(samples[p][1])}
		b.rep.addRow(x)
		b.rep.addPoints("host-local", "existing leases", n, "ADD+DEL", x)
		b.logf("host-local @%d: reference %s | %s", n, x.ref, x.ours)
		meds[p] = []summary{x.ref.sum, x.ours.sum}
	}
	big := b.opts.leases
	b.rep.addCheck(ratioCheck(fmt.Sprintf("host-local growth %d→%d leases, reference", baseN, big), meds[1][0], meds[0][0], infoOnly, 0))
	b.rep.addCheck(ratioCheck(fmt.Sprintf("host-local growth %d→%d leases, ours", baseN, big), meds[1][1], meds[0][1], atMost, hostLocalGrowthMax))
	b.rep.addCheck(ratioCheck(fmt.Sprintf("host-local ours/reference at %d leases (10x faster)", big), meds[1][1], meds[1][0], atMost, hostLocalRatioMax))
	return nil
}

// hostLocalCycle runs one ADD then DEL for a fresh container ID and returns
// the sum of both process times.
func (b *bench) hostLocalCycle(ctx context.Context, im impl, cfg []byte, netns, id string) (time.Duration, error) {
	inv := invocation{
		bin:         im.bin("host-local"),
		command:     "ADD",
		containerID: id,
		netns:       netns,
		ifname:      "eth0",
		cniPath:     im.dir,
		config:      cfg,
	}
	add, err := inv.run(ctx)
	if err != nil {
		return 0, err
	}
	inv.command = "DEL"
	del, err := inv.run(ctx)
	if err != nil {
		return 0, err
	}
	return add + del, nil
}
