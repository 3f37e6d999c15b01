package firewall

import (
	"strings"
)

// splitRuleLine splits a line of `iptables -S` output ("-A CHAIN args...")
// into the chain and the rule arguments, undoing iptables' quoting (double
// quotes, with backslash escaping '"' and '\'). Other lines (policies, chain
// declarations) give ok == false.
func splitRuleLine(line string) (chain string, spec []string, ok bool) {
	words := splitQuoted(line)
	if len(words) < 2 || words[0] != "-A" {
		return "", nil, false
	}
	return words[1], words[2:], true
}

func splitQuoted(s string) []string {
	var (
		words   []string
		cur     strings.Builder
		inWord  bool
		inQuote bool
	)
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case inQuote && c == '\\' && i+1 < len(s):
			i++
			cur.WriteByte(s[i])
		case c == '"':
			inQuote = !inQuote
			inWord = true
		case !inQuote && (c == ' ' || c == '\t' || c == '\n'):
			if inWord {
				words = append(words, cur.String())
				cur.Reset()
				inWord = false
			}
		default:
			cur.WriteByte(c)
			inWord = true
		}
	}
	if inWord {
		words = append(words, cur.String())
	}
	return words
}

// specValue returns the argument following flag in a rule spec.
func specValue(spec []string, flag string) string {
	for i := 0; i+1 < len(spec); i++ {
		if spec[i] == flag {
			return spec[i+1]
		}
	}
	return ""
}
