package firewall

import (
	"fmt"
	"strings"
	"testing"
)

func TestWithStampLine(t *testing.T) {
	at := func(node string, gen uint32) string { return stamp{node: node, gen: gen}.line("nftables", "fp") }
	ports := func(node string, gen uint32) string { return stamp{node: node, gen: gen}.line("nftables-ports", "fp") }
	for _, tc := range []struct {
		name, old, node, want string
	}{
		{"empty marker", "", "b 1", at("b 1", 7) + "\n"},
		{"the node's line replaced", at("b 1", 5) + "\n", "b 1", at("b 1", 7) + "\n"},
		{"another node's line kept", at("b 2", 5) + "\n", "b 1", at("b 2", 5) + "\n" + at("b 1", 7) + "\n"},
		{"another backend's line of the node kept", ports("b 1", 5) + "\n", "b 1", ports("b 1", 5) + "\n" + at("b 1", 7) + "\n"},
		{"a cookie that only starts alike is another node", at("b 12", 5) + "\n", "b 1", at("b 12", 5) + "\n" + at("b 1", 7) + "\n"},
		{"another boot's lines dropped", at("a 1", 5) + "\n" + at("a 2", 5) + "\n", "b 1", at("b 1", 7) + "\n"},
	} {
		if got := withStampLine(tc.old, stamp{node: tc.node, gen: 7}, "nftables", "fp"); got != tc.want {
			t.Errorf("%s: got %q, want %q", tc.name, got, tc.want)
		}
	}
	var old string
	for i := range 20 {
		old = withStampLine(old, stamp{node: fmt.Sprintf("b %d", i), gen: 1}, "nftables", "fp")
	}
	lines := strings.Split(strings.TrimSuffix(old, "\n"), "\n")
	if len(lines) != markerLines || lines[len(lines)-1] != at("b 19", 1) || lines[0] != at("b 4", 1) {
		t.Errorf("after 20 nodes the marker holds %d lines (want the latest %d):\n%s", len(lines), markerLines, old)
	}
}

func TestCarriedLines(t *testing.T) {
	at := func(node string, gen uint32) string { return stamp{node: node, gen: gen}.line("nftables", "fp") }
	ports := func(node string, gen uint32) string { return stamp{node: node, gen: gen}.line("nftables-ports", "fp") }
	before, now := stamp{node: "b 1", gen: 7}, stamp{node: "b 1", gen: 8}
	for _, tc := range []struct {
		name, marker, want string
		ok                 bool
	}{
		{"the node's line at before's generation", at("b 1", 7) + "\n", at("b 1", 8) + "\n", true},
		{"other nodes' lines kept", at("b 2", 7) + "\n" + at("b 1", 7) + "\n" + at("b 3", 9) + "\n", at("b 2", 7) + "\n" + at("b 1", 8) + "\n" + at("b 3", 9) + "\n", true},
		{"the node's line at another generation", at("b 1", 6) + "\n", "", false},
		{"each of the node's lines at before's generation", at("b 1", 7) + "\n" + ports("b 1", 7) + "\n", at("b 1", 8) + "\n" + ports("b 1", 8) + "\n", true},
		{"only the node's lines at before's generation", at("b 1", 7) + "\n" + ports("b 1", 6) + "\n", at("b 1", 8) + "\n" + ports("b 1", 6) + "\n", true},
		{"a generation that only starts with before's", at("b 1", 70) + "\n", "", false},
		{"no line of the node", at("b 11", 7) + "\n", "", false},
		{"empty marker", "", "", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := carriedLines(tc.marker, before, now)
			if ok != tc.ok || got != tc.want {
				t.Errorf("carriedLines(%q) = %q, %t; want %q, %t", tc.marker, got, ok, tc.want, tc.ok)
			}
		})
	}
}
