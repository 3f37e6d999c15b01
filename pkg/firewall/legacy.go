package firewall

import (
	"crypto/sha512"
	"encoding/hex"
	"strconv"
	"strings"
)

// The reference plugin's per-container masquerade rules.
const (
	// legacyNFTTable and legacyNFTChain hold the reference's nftables rules
	// (table family inet).
	legacyNFTTable = "cni_plugins_masquerade"
	legacyNFTChain = "masq_checks"
	// legacyNFTCommentMax is the length the reference truncates comments to.
	legacyNFTCommentMax = 128
)

// isLegacyMasqChain reports whether chain is named like a reference
// masquerade chain: "CNI-" and 24 lowercase hex digits. (The reference's
// other chains, e.g. portmap's CNI-DN-…, do not match.)
func isLegacyMasqChain(chain string) bool {
	hexPart, ok := strings.CutPrefix(chain, "CNI-")
	if !ok || len(hexPart) != 24 {
		return false
	}
	for _, c := range hexPart {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

// parseLegacyComment parses the reference's iptables comment
// `name: "<network>" id: "<containerID>"` (both Go-quoted).
func parseLegacyComment(c string) (network, containerID string, ok bool) {
	rest, ok := strings.CutPrefix(c, "name: ")
	if !ok {
		return "", "", false
	}
	qn, err := strconv.QuotedPrefix(rest)
	if err != nil {
		return "", "", false
	}
	rest, ok = strings.CutPrefix(rest[len(qn):], " id: ")
	if !ok {
		return "", "", false
	}
	qi, err := strconv.QuotedPrefix(rest)
	if err != nil || len(qi) != len(rest) {
		return "", "", false
	}
	network, err1 := strconv.Unquote(qn)
	containerID, err2 := strconv.Unquote(qi)
	if err1 != nil || err2 != nil {
		return "", "", false
	}
	return network, containerID, true
}

// legacyNFTNetworkHash is the network part of the reference's nftables rule
// comments: the first 16 hex digits of the SHA-512 of the network name.
func legacyNFTNetworkHash(network string) string {
	sum := sha512.Sum512([]byte(network))
	return hex.EncodeToString(sum[:])[:16]
}

// legacyNFTKeep decides whether a rule of the reference's nftables chain must
// stay, given its comment "<nethash>-<hash>, net: <net>, if: <if>, id: <id>"
// (truncated to 128 characters). Rules of other networks stay; so do rules
// whose container ID is kept, or cannot be read because of truncation and
// could belong to a kept container.
func legacyNFTKeep(comment, network string, keep map[string]bool) bool {
	if !strings.HasPrefix(comment, legacyNFTNetworkHash(network)+"-") {
		return true
	}
	idx := strings.LastIndex(comment, ", id: ")
	truncated := len(comment) >= legacyNFTCommentMax
	if idx < 0 {
		// The ID was cut off entirely: keep the rule if anything is kept.
		return !truncated || len(keep) > 0
	}
	id := comment[idx+len(", id: "):]
	if keep[id] {
		return true
	}
	if truncated {
		for k := range keep {
			if strings.HasPrefix(k, id) {
				return true
			}
		}
	}
	return false
}
