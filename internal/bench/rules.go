package main

import "strings"

// countIptablesRules counts the rules ("-A" lines) in iptables-save output.
func countIptablesRules(save string) int {
	n := 0
	for _, line := range strings.Split(save, "\n") {
		if strings.HasPrefix(line, "-A ") {
			n++
		}
	}
	return n
}

// countNftRules counts the rules in `nft -a list ruleset` output: the lines
// carrying a handle that do not open a table, chain, set, map or flowtable.
// With the iptables-nft backend, iptables rules are counted here as well.
func countNftRules(ruleset string) int {
	n := 0
	for _, line := range strings.Split(ruleset, "\n") {
		line = strings.TrimSpace(line)
		if !strings.Contains(line, "# handle ") {
			continue
		}
		first, _, _ := strings.Cut(line, " ")
		switch first {
		case "table", "chain", "set", "map", "flowtable", "counter", "quota", "ct", "limit", "secmark", "synproxy":
			continue
		}
		n++
	}
	return n
}
