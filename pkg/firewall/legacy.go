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

// legacyStale chooses the reference's per-container rules of a network that
// go, by container ID: id is a prefix of the ID when the rule's comment was
// truncated, "" when it was cut off entirely.
type legacyStale func(id string, truncated bool) bool

// staleUnlessKept is GC's choice: the rules of every container not kept
// (a truncated ID stays if it may be a kept one's).
func staleUnlessKept(keep map[string]bool) legacyStale {
	return func(id string, truncated bool) bool {
		if keep[id] {
			return false
		}
		if truncated {
			for k := range keep {
				if strings.HasPrefix(k, id) {
					return false
				}
			}
		}
		return true
	}
}

// staleOnly is DEL's choice: the rules of one container (a truncated ID
// goes if it may be its; one cut off entirely may be anyone's and stays).
func staleOnly(containerID string) legacyStale {
	return func(id string, truncated bool) bool {
		return id != "" && (id == containerID || truncated && strings.HasPrefix(containerID, id))
	}
}

// legacyNFTKeep decides whether a rule of the reference's nftables chain must
// stay, given its comment "<nethash>-<hash>, net: <net>, if: <if>, id: <id>"
// (truncated to 128 characters). Rules of other networks stay; so do rules
// whose container ID stale does not choose.
func legacyNFTKeep(comment, network string, stale legacyStale) bool {
	if !strings.HasPrefix(comment, legacyNFTNetworkHash(network)+"-") {
		return true
	}
	idx := strings.LastIndex(comment, ", id: ")
	truncated := len(comment) >= legacyNFTCommentMax
	if idx < 0 {
		// The ID was cut off entirely (or the comment is not the
		// reference's): it may be anyone's.
		return !truncated || !stale("", true)
	}
	return !stale(comment[idx+len(", id: "):], truncated)
}
