package main

import (
	"encoding/xml"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// plotPoint is one implementation's latency for one operation at one size
// of a scenario: a point of the plot.
type plotPoint struct {
	scenario string // the panel
	xLabel   string // what n counts
	op       string // "ADD", "DEL", "ADD+DEL"
	n        int
	side     string // "reference" or "ours"
	sum      summary
}

// Plot geometry, in SVG user units.
const (
	plotCols   = 2
	panelW     = 460
	panelH     = 300
	plotTop    = 78 // title, subtitle and legend above the panels
	plotMargin = 10
	// The axes' box inside a panel.
	axisLeft   = 58
	axisRight  = 16
	axisTop    = 30
	axisBottom = 44
)

var sideColor = map[string]string{"reference": "#c0392b", "ours": "#1f6fb4"}

// writePlot writes the report's points as an SVG file at path; a report
// with no points (a run of scenarios that plot nothing) writes none.
func writePlot(path string, r *report) error {
	if len(r.points) == 0 {
		return nil
	}
	subtitle := ""
	if len(r.header) > 0 {
		subtitle = r.header[0]
	}
	var buf strings.Builder
	renderPlot(&buf, r.points, subtitle)
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("create plot directory: %w", err)
	}
	if err := os.WriteFile(path, []byte(buf.String()), 0o644); err != nil {
		return fmt.Errorf("write plot: %w", err)
	}
	return nil
}

// series is one line of a panel: one side's one operation.
type series struct {
	side, op string
	pts      []plotPoint // by n
}

// panel is one scenario's part of the plot.
type panel struct {
	title, xLabel string
	series        []*series
}

// groupPoints sorts points into panels (in the order scenarios first
// appear) and series (reference first, then ours; ADD before DEL).
func groupPoints(points []plotPoint) []*panel {
	var panels []*panel
	byName := map[string]*panel{}
	for _, p := range points {
		pn := byName[p.scenario]
		if pn == nil {
			pn = &panel{title: p.scenario, xLabel: p.xLabel}
			byName[p.scenario] = pn
			panels = append(panels, pn)
		}
		var s *series
		for _, x := range pn.series {
			if x.side == p.side && x.op == p.op {
				s = x
			}
		}
		if s == nil {
			s = &series{side: p.side, op: p.op}
			pn.series = append(pn.series, s)
		}
		s.pts = append(s.pts, p)
	}
	for _, pn := range panels {
		slices.SortStableFunc(pn.series, func(a, b *series) int {
			if c := strings.Compare(sideRank(a.side), sideRank(b.side)); c != 0 {
				return c
			}
			return strings.Compare(a.op, b.op)
		})
		for _, s := range pn.series {
			slices.SortStableFunc(s.pts, func(a, b plotPoint) int { return a.n - b.n })
		}
	}
	return panels
}

func sideRank(side string) string {
	if side == "reference" {
		return "0"
	}
	return "1" + side
}

// renderPlot writes an SVG document: one panel per scenario, with the
// median latency of ADD and DEL (solid and dashed lines) against the
// scenario's size, and a whisker from each median up to its p90.
func renderPlot(w io.Writer, points []plotPoint, subtitle string) {
	panels := groupPoints(points)
	rows := max((len(panels)+plotCols-1)/plotCols, 1)
	width := plotCols*panelW + 2*plotMargin
	height := plotTop + rows*panelH + plotMargin
	fmt.Fprintf(w, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="sans-serif" font-size="12">`+"\n", width, height, width, height)
	fmt.Fprintf(w, `<rect width="%d" height="%d" fill="white"/>`+"\n", width, height)
	text(w, plotMargin, 20, "start", 15, "flatcni beside the reference plugins: latency per plugin call (median; whisker to p90)")
	text(w, plotMargin, 38, "start", 11, subtitle)
	legend(w, plotMargin, 58)
	if len(panels) == 0 {
		text(w, width/2, plotTop+panelH/2, "middle", 14, "no data")
	}
	for i, pn := range panels {
		x0 := plotMargin + (i%plotCols)*panelW
		y0 := plotTop + (i/plotCols)*panelH
		drawPanel(w, pn, x0, y0)
	}
	fmt.Fprintln(w, "</svg>")
}

// legend draws a sample line for each side and operation.
func legend(w io.Writer, x, y int) {
	for _, side := range []string{"reference", "ours"} {
		for _, op := range []string{"ADD", "DEL"} {
			fmt.Fprintf(w, `<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="%s" stroke-width="2"%s/>`+"\n", x, y-4, x+28, y-4, sideColor[side], dash(op))
			text(w, x+34, y, "start", 12, side+" "+op)
			x += 150
		}
	}
	text(w, x, y, "start", 11, "(ADD+DEL: one cycle, solid)")
}

func dash(op string) string {
	if op == "DEL" {
		return ` stroke-dasharray="6 4"`
	}
	return ""
}

func drawPanel(w io.Writer, pn *panel, x0, y0 int) {
	left, top := float64(x0+axisLeft), float64(y0+axisTop)
	right, bottom := float64(x0+panelW-axisRight), float64(y0+panelH-axisBottom)
	maxN, maxMs := 0, 0.0
	for _, s := range pn.series {
		for _, p := range s.pts {
			maxN = max(maxN, p.n)
			maxMs = max(maxMs, msf(p.sum.p90), msf(p.sum.median))
		}
	}
	xTicks, xMax := niceTicks(float64(maxN))
	yTicks, yMax := niceTicks(maxMs)
	px := func(n float64) float64 { return left + (right-left)*n/xMax }
	py := func(v float64) float64 { return bottom - (bottom-top)*v/yMax }

	fmt.Fprintf(w, `<g class="panel">`+"\n")
	text(w, x0+axisLeft, y0+axisTop-10, "start", 13, pn.title)
	for _, t := range yTicks {
		y := py(t)
		fmt.Fprintf(w, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#e4e4e4"/>`+"\n", left, y, right, y)
		text(w, int(left)-6, int(y)+4, "end", 11, tickLabel(t))
	}
	for _, t := range xTicks {
		x := px(t)
		fmt.Fprintf(w, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#888"/>`+"\n", x, bottom, x, bottom+4)
		text(w, int(x), int(bottom)+17, "middle", 11, tickLabel(t))
	}
	fmt.Fprintf(w, `<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="none" stroke="#888"/>`+"\n", left, top, right-left, bottom-top)
	text(w, int((left+right)/2), int(bottom)+35, "middle", 12, pn.xLabel)
	fmt.Fprintf(w, `<text x="%d" y="%d" text-anchor="middle" font-size="12" transform="rotate(-90 %d %d)">ms</text>`+"\n",
		x0+16, int((top+bottom)/2), x0+16, int((top+bottom)/2))

	for i, s := range pn.series {
		// Whiskers of the series side by side, not on top of each other.
		off := (float64(i) - float64(len(pn.series)-1)/2) * 5
		color := sideColor[s.side]
		if color == "" {
			color = "#333"
		}
		var line []string
		for _, p := range s.pts {
			x, y := px(float64(p.n))+off, py(msf(p.sum.median))
			line = append(line, fmt.Sprintf("%.1f,%.1f", x, y))
			y90 := py(msf(p.sum.p90))
			fmt.Fprintf(w, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="%s"/>`+"\n", x, y, x, y90, color)
			fmt.Fprintf(w, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="%s"/>`+"\n", x-3, y90, x+3, y90, color)
			fmt.Fprintf(w, `<circle cx="%.1f" cy="%.1f" r="3" fill="%s"><title>`, x, y, color)
			xmlText(w, fmt.Sprintf("%s %s %s at %d: median %s ms, p90 %s ms", pn.title, s.side, s.op, p.n, ms(p.sum.median), ms(p.sum.p90)))
			fmt.Fprintln(w, `</title></circle>`)
		}
		fmt.Fprintf(w, `<polyline points="%s" fill="none" stroke="%s" stroke-width="2"%s/>`+"\n", strings.Join(line, " "), color, dash(s.op))
	}
	fmt.Fprintln(w, "</g>")
}

// niceTicks returns ticks from 0 at a step of 1, 2 or 5 times a power of
// ten, about five of them, and the axis maximum (the last tick, above v).
func niceTicks(v float64) ([]float64, float64) {
	if !(v > 0) || math.IsInf(v, 0) {
		v = 1
	}
	raw := v / 5
	mag := math.Pow(10, math.Floor(math.Log10(raw)))
	step := mag
	for _, m := range []float64{1, 2, 5, 10} {
		if m*mag >= raw {
			step = m * mag
			break
		}
	}
	var ticks []float64
	for k := 0; ; k++ {
		t := float64(k) * step
		ticks = append(ticks, t)
		if t >= v*1.04 {
			return ticks, t
		}
	}
}

func tickLabel(v float64) string {
	return strings.TrimSuffix(strings.TrimRight(fmt.Sprintf("%.3f", v), "0"), ".")
}

// msf is d in milliseconds.
func msf(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// text writes an SVG text element with escaped content.
func text(w io.Writer, x, y int, anchor string, size int, s string) {
	fmt.Fprintf(w, `<text x="%d" y="%d" text-anchor="%s" font-size="%d">`, x, y, anchor, size)
	xmlText(w, s)
	fmt.Fprintln(w, "</text>")
}

func xmlText(w io.Writer, s string) {
	_ = xml.EscapeText(w, []byte(s))
}
