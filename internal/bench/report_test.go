package main

import (
	"bytes"
	"strings"
	"testing"
	"time"
)

func TestCheckVerdict(t *testing.T) {
	tests := []struct {
		name string
		c    check
		want string
	}{
		{"pass below", check{value: 0.2, defined: true, kind: atMost, limit: 0.25}, "PASS"},
		{"pass equal", check{value: 1.3, defined: true, kind: atMost, limit: 1.3}, "PASS"},
		{"fail above", check{value: 0.5, defined: true, kind: atMost, limit: 0.4}, "FAIL"},
		{"undefined", check{kind: atMost, limit: 0.4}, "n/a"},
		{"info", check{value: 16, defined: true, kind: infoOnly}, "info"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.c.verdict(); got != tt.want {
				t.Errorf("verdict() = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestRender(t *testing.T) {
	r := &report{}
	r.addHeader("mode: quick")
	r.addRow(row{
		scenario: "host-local",
		point:    "ADD+DEL @10",
		ref:      cell{sum: summary{n: 3, median: 40 * time.Millisecond, p90: 50 * time.Millisecond}},
		ours:     cell{status: "not built"},
		note:     "a|b",
	})
	r.addRow(row{
		scenario: "bridge",
		point:    "ADD @10",
		ref:      cell{sum: summary{n: 3, median: 40 * time.Millisecond, p90: 50 * time.Millisecond}},
		ours:     cell{sum: summary{n: 3, median: 10 * time.Millisecond, p90: 12 * time.Millisecond}},
	})
	r.addCheck(check{name: "ours/ref", value: 0.25, defined: true, kind: atMost, limit: 0.4})
	r.addCheck(check{name: "just over", value: 0.1009, defined: true, kind: atMost, limit: 0.1})
	r.addCheck(check{name: "growth", value: 1.11, defined: true, kind: atMost, limit: 1.15, lo: 1.1012, hi: 1.1449, hasInterval: true})
	var buf bytes.Buffer
	r.render(&buf)
	out := buf.String()
	for _, want := range []string{
		"| host-local | ADD+DEL @10 | 40.0 (50.0) | not built | - | a/b |",
		"| bridge | ADD @10 | 40.0 (50.0) | 10.0 (12.0) | 0.25x |  |",
		"| Target | Value | 90% interval | Limit | Result |",
		"| ours/ref | 0.250x | - | ≤ 0.40x | PASS |",
		"| just over | 0.101x | - | ≤ 0.10x | FAIL |",
		"| growth | 1.11x | 1.10-1.14x | ≤ 1.15x | PASS |",
		"- mode: quick",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("render output lacks %q:\n%s", want, out)
		}
	}
}
