// Package hostveth names the host end of an attachment's veth pair. The name
// and alias derive from the attachment (container ID and interface name), so
// that DEL finds the host end from the node alone, even after the container
// netns is gone.
package hostveth

import (
	"crypto/sha256"
	"encoding/hex"
	"strings"
)

// Name is the host end's name: "veth" and the first four bytes of the
// SHA-256 of the container ID, a NUL and the interface name, in hex. When it
// is taken (a hash collision), package link draws a random name instead; the
// alias still tells the attachment.
func Name(containerID, ifName string) string {
	sum := sha256.Sum256([]byte(containerID + "\x00" + ifName))
	return "veth" + hex.EncodeToString(sum[:4])
}

// maxAlias is the longest alias the kernel keeps (IFALIASZ less the NUL).
const maxAlias = 255

// IsAlias reports whether alias is one Alias makes (or a VLAN gateway
// pair's, which has the same prefix).
func IsAlias(alias string) bool { return strings.HasPrefix(alias, "flatcni:") }

// Alias labels the host end with its attachment: "flatcni:<id>/<ifname>",
// or when that is longer than the kernel allows (container IDs have no
// length limit), "flatcni:sha256:" and the SHA-256 of "<id>/<ifname>" in
// hex. ADD and DEL compute the same alias either way.
func Alias(containerID, ifName string) string {
	alias := "flatcni:" + containerID + "/" + ifName
	if len(alias) <= maxAlias {
		return alias
	}
	sum := sha256.Sum256([]byte(containerID + "/" + ifName))
	return "flatcni:sha256:" + hex.EncodeToString(sum[:])
}
