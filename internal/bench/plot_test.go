package main

import (
	"bytes"
	"encoding/xml"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func sum(median, p90 time.Duration) summary { return summary{n: 5, median: median, p90: p90} }

// wellFormed decodes every token of an SVG document and counts the
// elements by name.
func wellFormed(t *testing.T, doc string) map[string]int {
	t.Helper()
	d := xml.NewDecoder(strings.NewReader(doc))
	counts := map[string]int{}
	var root string
	for {
		tok, err := d.Token()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("SVG not well-formed: %v\n%s", err, doc)
		}
		if se, ok := tok.(xml.StartElement); ok {
			if root == "" {
				root = se.Name.Local
				if se.Name.Space != "http://www.w3.org/2000/svg" {
					t.Errorf("root namespace %q", se.Name.Space)
				}
			}
			counts[se.Name.Local]++
			if se.Name.Local == "g" {
				for _, a := range se.Attr {
					if a.Name.Local == "class" && a.Value == "panel" {
						counts["panel"]++
					}
				}
			}
		}
	}
	if root != "svg" {
		t.Fatalf("root element %q, want svg", root)
	}
	return counts
}

func TestRenderPlot(t *testing.T) {
	r := &report{}
	ms := time.Millisecond
	for _, sc := range []string{"bridge", "bridge ipMasq <iptables> & co"} {
		r.addPoints(sc, "attached containers", 10, "ADD", row{ref: cell{sum: sum(50*ms, 60*ms)}, ours: cell{sum: sum(20*ms, 25*ms)}})
		r.addPoints(sc, "attached containers", 10, "DEL", row{ref: cell{sum: sum(55*ms, 70*ms)}, ours: cell{sum: sum(22*ms, 30*ms)}})
		r.addPoints(sc, "attached containers", 500, "ADD", row{ref: cell{sum: sum(70*ms, 80*ms)}, ours: cell{sum: sum(21*ms, 25*ms)}})
		r.addPoints(sc, "attached containers", 500, "DEL", row{ref: cell{sum: sum(75*ms, 90*ms)}, ours: cell{status: "not built"}})
	}
	r.addPoints("host-local", "existing leases", 5000, "ADD+DEL", row{ref: cell{sum: sum(300*ms, 330*ms)}, ours: cell{sum: sum(20*ms, 28*ms)}})
	var buf bytes.Buffer
	renderPlot(&buf, r.points, "2026-12-06, 2 CPUs & such")
	out := buf.String()
	counts := wellFormed(t, out)
	if counts["panel"] != 3 {
		t.Errorf("%d panels, want 3", counts["panel"])
	}
	// Per bridge panel: 4 series, one of them with a single point.
	if want := 2*4 + 2; counts["polyline"] != want {
		t.Errorf("%d polylines, want %d", counts["polyline"], want)
	}
	if want := 2*7 + 2; counts["circle"] != want {
		t.Errorf("%d points, want %d", counts["circle"], want)
	}
	for _, s := range []string{"NaN", "Inf"} {
		if strings.Contains(out, s) {
			t.Errorf("plot contains %s", s)
		}
	}
	for _, s := range []string{"bridge ipMasq &lt;iptables&gt; &amp; co", "reference ADD", "ours DEL", "existing leases", "2 CPUs &amp; such"} {
		if !strings.Contains(out, s) {
			t.Errorf("plot lacks %q", s)
		}
	}
}

func TestRenderPlotDegenerate(t *testing.T) {
	var buf bytes.Buffer
	renderPlot(&buf, nil, "")
	if c := wellFormed(t, buf.String()); c["panel"] != 0 {
		t.Errorf("empty plot has %d panels", c["panel"])
	}
	buf.Reset()
	// One point of zero latency at n = 0: no division by zero.
	renderPlot(&buf, []plotPoint{{scenario: "x", op: "ADD", side: "ours", sum: summary{n: 1}}}, "")
	out := buf.String()
	wellFormed(t, out)
	if strings.Contains(out, "NaN") || strings.Contains(out, "Inf") {
		t.Errorf("degenerate plot has NaN or Inf:\n%s", out)
	}
}

func TestWritePlot(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "docs", "bench.svg")
	if err := writePlot(path, &report{}); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Fatalf("a report without points wrote a plot (stat: %v)", err)
	}
	r := &report{header: []string{"run of today"}}
	r.addPoints("bridge", "attached containers", 10, "ADD", row{ref: cell{sum: sum(time.Millisecond, 2*time.Millisecond)}})
	if err := writePlot(path, r); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	wellFormed(t, string(b))
	if !strings.Contains(string(b), "run of today") {
		t.Error("plot lacks the report's first header line")
	}
}

func TestNiceTicks(t *testing.T) {
	tests := []struct {
		v       float64
		wantMax float64
	}{{1000, 1200}, {500, 600}, {37, 40}, {0.3, 0.4}, {0, 1}}
	for _, tt := range tests {
		ticks, top := niceTicks(tt.v)
		if top != ticks[len(ticks)-1] || ticks[0] != 0 {
			t.Errorf("niceTicks(%v) = %v, %v", tt.v, ticks, top)
		}
		if top < tt.v || len(ticks) > 8 {
			t.Errorf("niceTicks(%v): top %v, %d ticks", tt.v, top, len(ticks))
		}
		if tt.v > 0 && top > tt.wantMax+1e-9 {
			t.Errorf("niceTicks(%v) top %v, want at most %v", tt.v, top, tt.wantMax)
		}
	}
}
