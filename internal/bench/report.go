package main

import (
	"fmt"
	"io"
	"strings"
)

// cell is one implementation's result at one measurement point.
type cell struct {
	sum    summary
	status string // why there is no number: "not built", an error, ...
}

func (c cell) String() string {
	if c.sum.n > 0 {
		return c.sum.String()
	}
	if c.status != "" {
		return c.status
	}
	return "-"
}

// row is one line of the measurement table.
type row struct {
	scenario string
	point    string
	ref      cell
	ours     cell
	note     string
}

// limitKind says how a check's value compares with its limit.
type limitKind int

const (
	infoOnly limitKind = iota // shown, not judged
	atMost                    // passes when value <= limit
)

// check is one line of the targets table: a ratio judged against a limit.
type check struct {
	name    string
	value   float64
	defined bool
	kind    limitKind
	limit   float64
	// lo and hi bound the value's 90% bootstrap interval, when hasInterval
	// (only ever with defined).
	lo, hi      float64
	hasInterval bool
}

// ratioCheck judges the ratio of the medians of num and den against limit
// (or shows it, for infoOnly), with its bootstrap interval.
func ratioCheck(name string, num, den summary, kind limitKind, limit float64) check {
	c := check{name: name, kind: kind, limit: limit}
	c.value, c.defined = ratio(num, den)
	if c.defined {
		c.lo, c.hi, c.hasInterval = ratioInterval(num, den)
	}
	return c
}

// verdict is PASS, FAIL, "n/a" (no value) or "info".
func (c check) verdict() string {
	switch {
	case !c.defined:
		return "n/a"
	case c.kind == infoOnly:
		return "info"
	case c.value <= c.limit:
		return "PASS"
	default:
		return "FAIL"
	}
}

func (c check) limitString() string {
	if c.kind == infoOnly {
		return "-"
	}
	return fmt.Sprintf("≤ %.2fx", c.limit)
}

func (c check) intervalString() string {
	if !c.hasInterval {
		return "-"
	}
	return fmt.Sprintf("%#.3g-%#.3gx", c.lo, c.hi)
}

func (c check) valueString() string {
	if !c.defined {
		return "-"
	}
	// Three significant digits, trailing zeros kept, so a value just over
	// its limit (0.101 vs 0.10) does not print as if it met it.
	return fmt.Sprintf("%#.3gx", c.value)
}

// report collects everything the run measured.
type report struct {
	header []string // free-form lines printed above the tables
	rows   []row
	checks []check
	errors []string
	points []plotPoint // what the plot shows
}

func (r *report) addRow(x row)          { r.rows = append(r.rows, x) }
func (r *report) addCheck(c check)      { r.checks = append(r.checks, c) }
func (r *report) addError(e string)     { r.errors = append(r.errors, e) }
func (r *report) addHeader(line string) { r.header = append(r.header, line) }

// addPoints records both implementations' latency of op at n attached
// containers (or leases: xLabel names what n counts) of a scenario, for the
// plot.
func (r *report) addPoints(scenario, xLabel string, n int, op string, x row) {
	for _, c := range []struct {
		side string
		cell cell
	}{{"reference", x.ref}, {"ours", x.ours}} {
		if c.cell.sum.n > 0 {
			r.points = append(r.points, plotPoint{scenario: scenario, xLabel: xLabel, op: op, n: n, side: c.side, sum: c.cell.sum})
		}
	}
}

// render writes the report as markdown tables.
func (r *report) render(w io.Writer) {
	fmt.Fprintln(w, "## flatcni benchmark")
	fmt.Fprintln(w)
	for _, h := range r.header {
		fmt.Fprintf(w, "- %s\n", h)
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, "| Scenario | Point | Reference ms median (p90) | Ours ms median (p90) | Ours/Ref | Notes |")
	fmt.Fprintln(w, "|---|---|---|---|---|---|")
	for _, x := range r.rows {
		rat := "-"
		if v, ok := ratio(x.ours.sum, x.ref.sum); ok {
			rat = fmt.Sprintf("%.2fx", v)
		}
		fmt.Fprintf(w, "| %s | %s | %s | %s | %s | %s |\n", x.scenario, x.point, esc(x.ref.String()), esc(x.ours.String()), rat, esc(x.note))
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, "| Target | Value | 90% interval | Limit | Result |")
	fmt.Fprintln(w, "|---|---|---|---|---|")
	for _, c := range r.checks {
		fmt.Fprintf(w, "| %s | %s | %s | %s | %s |\n", c.name, c.valueString(), c.intervalString(), c.limitString(), c.verdict())
	}
	if len(r.errors) > 0 {
		fmt.Fprintln(w)
		fmt.Fprintln(w, "Errors:")
		for _, e := range r.errors {
			fmt.Fprintf(w, "- %s\n", e)
		}
	}
}

// esc keeps a table cell on one line and free of column separators.
func esc(s string) string {
	return strings.ReplaceAll(oneLine(s), "|", "/")
}
