package main

import "testing"

func TestCountIptablesRules(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want int
	}{
		{"empty", "", 0},
		{"chains and rules", "*nat\n:POSTROUTING ACCEPT [0:0]\n:CNI-abc - [0:0]\n-A POSTROUTING -s 10.0.0.2/32 -j CNI-abc\n-A CNI-abc -d 10.0.0.0/16 -j ACCEPT\nCOMMIT\n", 2},
		{"comment mentioning -A", "# -A not a rule\n-A X -j Y\n", 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := countIptablesRules(tt.in); got != tt.want {
				t.Errorf("countIptablesRules = %d, want %d", got, tt.want)
			}
		})
	}
}

func TestCountNftRules(t *testing.T) {
	ruleset := `table inet cni_plugins_masquerade { # handle 5
	map masq_checks { # handle 3
		type ipv4_addr : verdict
	}
	chain postrouting { # handle 1
		type nat hook postrouting priority srcnat; policy accept;
		ip saddr 10.0.0.2 jump masq_checks # handle 4
		ip daddr != 10.0.0.0/16 masquerade # handle 6
	}
}
`
	tests := []struct {
		name string
		in   string
		want int
	}{
		{"empty", "", 0},
		{"table with map and chain", ruleset, 2},
		{"no handles", "table ip nat {\n\tchain X {\n\t\tmasquerade\n\t}\n}\n", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := countNftRules(tt.in); got != tt.want {
				t.Errorf("countNftRules = %d, want %d", got, tt.want)
			}
		})
	}
}
