package firewall

import (
	"crypto/sha256"
	"encoding/hex"
	"strings"
)

const (
	// iptChainPrefix starts the name of every iptables chain of ours.
	iptChainPrefix = "FLATCNI-"
	// iptChainMaxLen is the longest chain name iptables accepts.
	iptChainMaxLen = 28
	// commentPrefix starts the comment of every rule of ours.
	commentPrefix = "flatcni net="
	// nftTablePrefix starts the name of every nftables table of ours.
	nftTablePrefix = "flatcni-"
)

// iptChainName returns the iptables chain of the network: the prefix and as
// much of the SHA-256 of the name as fits in iptables' 28 characters.
func iptChainName(network string) string {
	sum := sha256.Sum256([]byte(network))
	return iptChainPrefix + hex.EncodeToString(sum[:])[:iptChainMaxLen-len(iptChainPrefix)]
}

// ruleComment is the comment on each rule inside a network's chains.
func ruleComment(network string) string {
	return commentPrefix + network
}

// jumpComment is the comment on the rules jumping to a network's chains (or,
// for nftables, on the rules in iptables-nft's FORWARD chain); it carries the
// fingerprint of the configuration the rules were written for.
func jumpComment(network, fingerprint string) string {
	return commentPrefix + network + " cfg=" + fingerprint
}

// parseComment returns the network named by a comment of ours.
func parseComment(c string) (string, bool) {
	rest, ok := strings.CutPrefix(c, commentPrefix)
	if !ok {
		return "", false
	}
	name, _, _ := strings.Cut(rest, " ")
	if validateName(name) != nil {
		return "", false
	}
	return name, true
}

// nftTableName returns the nftables table (family inet) of the network.
func nftTableName(network string) string {
	return nftTablePrefix + network
}
