package main

import (
	"context"
	"fmt"
	"net/netip"
	"path/filepath"
	"strings"
	"time"
)

// bridgeCase is one bridge scenario: with or without ipMasq, and its targets.
type bridgeCase struct {
	key       string
	title     string
	masq      string // "" (no ipMasq), "iptables" or "nftables"
	subnet    string
	maxAdd    float64 // ADD ours/reference at the large point
	maxDel    float64 // DEL ours/reference at the large point, when judgeDel
	maxGrowth float64 // ours, large point over baseN
	judgeDel  bool    // DEL is held to the targets too, not only ADD
	workers   int     // threads of each node; 0 for opts.workers
	ports     string  // port publishing through libcni with this backend (ports.go)
	// cycle: one point, no container attached: each sample is the
	// network's first ADD and its last DEL, what a node running one
	// container at a time pays for every container.
	cycle bool
}

func bridgeCases() []bridgeCase {
	return []bridgeCase{
		{key: scenBridge, title: "bridge", subnet: "10.130.0.0/16", maxAdd: bridgeAddRatioMax, maxDel: bridgeDelRatioMax, maxGrowth: growthMax, judgeDel: true},
		{key: scenMasqIPT, title: "bridge ipMasq iptables", masq: "iptables", subnet: "10.131.0.0/16", maxAdd: masqIPTAddRatioMax, maxGrowth: growthMax},
		{key: scenMasqNFT, title: "bridge ipMasq nftables", masq: "nftables", subnet: "10.132.0.0/16", maxAdd: masqNFTAddRatioMax, maxGrowth: growthMax},
	}
}

// cycleCases are the one-at-a-time scenarios: ipMasq with each backend, no
// container attached, so that every ADD writes the network's rules and
// every DEL removes them.
func cycleCases() []bridgeCase {
	return []bridgeCase{
		{key: scenCycleIPT, title: "one at a time ipMasq iptables", masq: "iptables", subnet: "10.137.0.0/16", cycle: true},
		{key: scenCycleNFT, title: "one at a time ipMasq nftables", masq: "nftables", subnet: "10.138.0.0/16", cycle: true},
	}
}

// samples is how many rounds the case times.
func (c bridgeCase) samples(o options) int {
	if c.cycle {
		return o.cycleSamples
	}
	if c.ports != "" {
		return o.portsSamples
	}
	if c.masq == "" {
		return o.bridgeSamples
	}
	return o.masqSamples
}

// bigN is the large attached-containers point of a case.
func (c bridgeCase) bigN(o options) int {
	if c.ports != "" {
		return o.portsN
	}
	if c.masq == "" {
		return o.bridgeN
	}
	return o.masqN
}

// bridgeRig is one implementation's node for a bridge case: a node network
// namespace with its own bridge and host-local data directory, and the
// container namespaces attached to it.
type bridgeRig struct {
	side     *side
	short    string // implementation and point, for names: "ref0", "ours1"
	key      string
	node     *node
	conf     []byte
	attached int
	names    []string // every namespace of the rig, for teardown
	// call, when set, adds or deletes a container instead of one direct
	// bridge invocation (ports.go: a conflist through libcni).
	call func(ctx context.Context, command, id, netnsName string) (time.Duration, error)
}

// run adds or deletes (command) container id in namespace netnsName.
func (r *bridgeRig) run(ctx context.Context, command, id, netnsName string) (time.Duration, error) {
	if r.call != nil {
		return r.call(ctx, command, id, netnsName)
	}
	return r.node.run(ctx, r.invocation(command, id, netnsName))
}

// bridge runs one bridge case. Each implementation gets two nodes: one with
// baseN containers attached and one grown to the case's large point (by
// ADDing containers through the plugin, untimed, in parallel). Then ADD and
// DEL of extra containers are timed on all nodes in turn, sample by sample,
// so both points and both implementations see the same machine load and the
// growth ratios do not drift with it.
func (b *bench) bridge(ctx context.Context, c bridgeCase) error {
	if !b.root {
		b.rep.addRow(row{scenario: c.title, point: "-", ref: cell{status: "skipped: needs root"}, ours: cell{status: "skipped: needs root"}})
		return nil
	}
	sides := b.sides("bridge", "host-local")
	if !sides[0].active() {
		return fmt.Errorf("reference bridge/host-local: %s in %s", sides[0].status, b.ref.dir)
	}
	subnet := netip.MustParsePrefix(c.subnet)
	sizes := []int{baseN, c.bigN(b.opts)}
	if c.cycle {
		sizes = []int{0}
	}
	// rigs[point][side]
	rigs := make([][]*bridgeRig, len(sizes))
	defer func() {
		cctx := context.WithoutCancel(ctx)
		for _, rs := range rigs {
			for _, r := range rs {
				if r != nil {
					r.teardown(cctx, b)
				}
			}
		}
	}()
	attachNotes := make([][]string, len(sizes))
	for p, n := range sizes {
		rigs[p] = make([]*bridgeRig, len(sides))
		for i, s := range sides {
			if !s.active() {
				continue
			}
			r, err := b.newRig(ctx, c, s, p, subnet)
			rigs[p][i] = r
			if err == nil {
				t0 := time.Now()
				err = b.attach(ctx, r, n)
				took := time.Since(t0).Round(100 * time.Millisecond)
				attachNotes[p] = append(attachNotes[p], fmt.Sprintf("%s %s", r.short, took))
				b.logf("%s %s: %d containers attached (%s)", c.title, s.impl.name, n, took)
			}
			if err != nil {
				if i == 0 {
					return fmt.Errorf("reference node with %d containers: %w", n, err)
				}
				b.fail(ctx, s, c.title, fmt.Errorf("node with %d containers: %w", n, err))
			}
		}
	}

	if b.opts.settle > 0 {
		b.logf("%s: settling %s before sampling", c.title, b.opts.settle)
		select {
		case <-time.After(b.opts.settle):
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	samples := c.samples(b.opts)
	adds := make([][][]time.Duration, len(sizes))
	dels := make([][][]time.Duration, len(sizes))
	for p := range sizes {
		adds[p] = make([][]time.Duration, len(sides))
		dels[p] = make([][]time.Duration, len(sides))
	}
	// The probes' namespaces are made probeChunk rounds at a time and
	// removed after them (see probeChunk).
	for first := 0; first < samples; first += probeChunk {
		rounds := min(probeChunk, samples-first)
		// probes[point][side][round of the chunk]
		probes := make([][][]string, len(sizes))
		for p, n := range sizes {
			probes[p] = make([][]string, len(sides))
			for i, r := range rigs[p] {
				if r == nil || !r.side.active() {
					continue
				}
				probes[p][i] = r.probeNames(n, first, rounds, b)
				if err := b.nss.add(ctx, probes[p][i]); err != nil {
					return err
				}
			}
		}
		for j := range rounds {
			k := first + j
			for p, n := range sizes {
				for i, r := range rigs[p] {
					if r == nil || !r.side.active() {
						continue
					}
					add, del, err := r.sample(ctx, probes[p][i][j], fmt.Sprintf("probe-%d-%d", n, k), b.opts.delAfter)
					if err != nil {
						b.fail(ctx, r.side, c.title, fmt.Errorf("at %d containers: %w", n, err))
						continue
					}
					adds[p][i] = append(adds[p][i], add)
					dels[p][i] = append(dels[p][i], del)
					b.raw.add(c.key, n, r.side.impl.name, k, "ADD", add)
					b.raw.add(c.key, n, r.side.impl.name, k, "DEL", del)
				}
			}
			if ctx.Err() != nil {
				return ctx.Err()
			}
		}
		var used []string
		for _, ps := range probes {
			for _, names := range ps {
				used = append(used, names...)
			}
		}
		if err := b.nss.del(ctx, used); err != nil {
			return err
		}
		if first+rounds < samples {
			if err := waitQuiet(ctx, quietIdle, quietMax); err != nil {
				b.logf("%s: %v", c.title, err)
			}
		}
	}

	// medians[op][point][side], op 0 = ADD, 1 = DEL
	var medians [2][2][2]summary
	for p, n := range sizes {
		var notes []string
		for i, r := range rigs[p] {
			if r == nil || !r.side.active() {
				continue
			}
			medians[0][p][i] = summarize(adds[p][i])
			medians[1][p][i] = summarize(dels[p][i])
			notes = append(notes, fmt.Sprintf("%s: %s", r.short, r.ruleCounts(ctx)))
		}
		note := "rules in node: " + strings.Join(notes, "; ")
		attachNote := fmt.Sprintf("untimed pre-attach (%d workers): %s", b.opts.workers, strings.Join(attachNotes[p], ", "))
		addRow := row{scenario: c.title, point: fmt.Sprintf("ADD @%d containers", n), ref: sides[0].cell(adds[p][0]), ours: sides[1].cell(adds[p][1]), note: note}
		delRow := row{scenario: c.title, point: fmt.Sprintf("DEL @%d containers", n), ref: sides[0].cell(dels[p][0]), ours: sides[1].cell(dels[p][1]), note: attachNote}
		if c.cycle {
			addRow.point, delRow.point = "first ADD (none attached)", "last DEL"
		}
		b.rep.addRow(addRow)
		b.rep.addRow(delRow)
		if !c.cycle {
			b.rep.addPoints(c.title, "attached containers", n, "ADD", addRow)
			b.rep.addPoints(c.title, "attached containers", n, "DEL", delRow)
		}
		b.logf("%s @%d: ADD reference %s | %s; DEL reference %s | %s; %s", c.title, n, addRow.ref, addRow.ours, delRow.ref, delRow.ours, note)
	}
	if c.cycle {
		for op, name := range []string{"ADD", "DEL"} {
			m := medians[op]
			b.rep.addCheck(ratioCheck(fmt.Sprintf("%s %s ours/reference", c.title, name), m[0][1], m[0][0], infoOnly, 0))
		}
		return nil
	}
	big := sizes[1]
	for op, name := range []string{"ADD", "DEL"} {
		kind, maxRatio := atMost, c.maxAdd
		if op == 1 {
			maxRatio = c.maxDel
			if !c.judgeDel {
				kind = infoOnly
			}
		}
		m := medians[op]
		b.rep.addCheck(ratioCheck(fmt.Sprintf("%s %s growth %d→%d, reference", c.title, name, baseN, big), m[1][0], m[0][0], infoOnly, 0))
		b.rep.addCheck(ratioCheck(fmt.Sprintf("%s %s growth %d→%d, ours", c.title, name, baseN, big), m[1][1], m[0][1], kind, c.maxGrowth))
		b.rep.addCheck(ratioCheck(fmt.Sprintf("%s %s ours/reference at %d", c.title, name, big), m[1][1], m[1][0], kind, maxRatio))
	}
	return nil
}

// newRig creates the node namespace of one implementation at one point of a
// case (point 0 is baseN, 1 the large point) and
// enters it with the pre-attach workers. The rig is returned even on error so
// the caller can tear down what was made.
func (b *bench) newRig(ctx context.Context, c bridgeCase, s *side, point int, subnet netip.Prefix) (*bridgeRig, error) {
	short := "ref"
	if s.impl.name == "ours" {
		short = "ours"
	}
	short += fmt.Sprint(point) // e.g. ref0 (base point), ours1 (large point)
	r := &bridgeRig{side: s, short: short, key: c.key}
	nodeName := b.nss.name(c.key, short, "node")
	r.names = append(r.names, nodeName)
	if err := b.nss.add(ctx, []string{nodeName}); err != nil {
		return r, err
	}
	workers := b.opts.workers
	if c.workers > 0 {
		workers = c.workers
	}
	n, err := enterNode(nodeName, nsPath(nodeName), workers)
	if err != nil {
		return r, err
	}
	r.node = n
	// Bridge names differ per implementation although each has its own node,
	// so a stray interface is easy to attribute.
	conf, err := bridgeConfig("fcb-"+short, c.masq, hostLocalIPAM(subnet, filepath.Join(b.tmp, c.key+"-"+short)))
	if err != nil {
		return r, err
	}
	r.conf = conf
	if c.ports != "" {
		return r, b.portsRunner(r, c, s, subnet)
	}
	return r, nil
}

// teardown stops the node threads and deletes every namespace of the rig;
// the bridge, veths and rules go with them.
func (r *bridgeRig) teardown(ctx context.Context, b *bench) {
	if r.node != nil {
		r.node.close()
		r.node = nil
	}
	if err := b.nss.del(ctx, r.names); err != nil {
		b.logf("teardown %s %s: %v", r.key, r.short, err)
	}
	r.names = nil
}

func (r *bridgeRig) invocation(command, id, netnsName string) invocation {
	return invocation{
		bin:         r.side.impl.bin("bridge"),
		command:     command,
		containerID: id,
		netns:       nsPath(netnsName),
		ifname:      "eth0",
		cniPath:     r.side.impl.dir,
		config:      r.conf,
	}
}

// attach ADDs containers, each in a namespace of its own, until to are
// attached. The first container of a node is added alone (it creates the
// bridge); the rest by opts.workers concurrent workers.
func (b *bench) attach(ctx context.Context, r *bridgeRig, to int) error {
	from := r.attached
	if to <= from {
		return nil
	}
	names := make([]string, 0, to-from)
	for i := from; i < to; i++ {
		names = append(names, b.nss.name(r.key, r.short, fmt.Sprintf("c%d", i)))
	}
	r.names = append(r.names, names...)
	if err := b.nss.add(ctx, names); err != nil {
		return err
	}
	addOne := func(ctx context.Context, i int) error {
		_, err := r.run(ctx, "ADD", fmt.Sprintf("pre-%d", i), names[i-from])
		return err
	}
	next := from
	if from == 0 {
		if err := addOne(ctx, 0); err != nil {
			return err
		}
		next = 1
	}
	if err := parallel(ctx, b.opts.workers, next, to, addOne); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	r.attached = to
	return nil
}

// probeChunk is how many rounds of probes have their namespaces at a time.
// A namespace that a plugin has looked up sysctls in adds entries to one
// kernel hash chain that every later /proc/sys lookup in an older namespace
// walks (docs/performance.md): made all at once, a run's hundreds of probes
// would slow the reference's /proc/sys accesses on the nodes more and more
// as the run went on. 25 rounds keep at most 100 probe namespaces.
const probeChunk = 25

// probeNames returns fresh namespace names for the timed containers of
// rounds first..first+rounds-1 at one point and remembers them for
// teardown (the sampling removes them sooner).
func (r *bridgeRig) probeNames(n, first, rounds int, b *bench) []string {
	names := make([]string, rounds)
	for j := range names {
		names[j] = b.nss.name(r.key, r.short, fmt.Sprintf("p%d-%d", n, first+j))
	}
	r.names = append(r.names, names...)
	return names
}

// sample times ADD then DEL of one extra container.
func (r *bridgeRig) sample(ctx context.Context, netnsName, id string, delAfter time.Duration) (add, del time.Duration, err error) {
	add, err = r.run(ctx, "ADD", id, netnsName)
	if err != nil {
		return 0, 0, err
	}
	if delAfter > 0 {
		select {
		case <-time.After(delAfter):
		case <-ctx.Done():
			return add, 0, ctx.Err()
		}
	}
	del, err = r.run(ctx, "DEL", id, netnsName)
	if err != nil {
		return add, 0, err
	}
	return add, del, nil
}

// ruleCounts describes how many iptables and nftables rules the node holds.
func (r *bridgeRig) ruleCounts(ctx context.Context) string {
	ipt, nft := "?", "?"
	if out, err := r.node.output(ctx, "iptables-save"); err == nil {
		ipt = fmt.Sprint(countIptablesRules(out))
	}
	if out, err := r.node.output(ctx, "nft", "-a", "list", "ruleset"); err == nil {
		nft = fmt.Sprint(countNftRules(out))
	}
	return fmt.Sprintf("iptables %s, nft %s", ipt, nft)
}
