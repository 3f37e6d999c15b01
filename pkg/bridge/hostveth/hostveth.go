// Package hostveth names the host end of an attachment's veth pair. The name
// and alias derive from the attachment (container ID and interface name), so
// that DEL finds the host end from the node alone, even after the container
// netns is gone. It imports only pkg/sha2, itself a leaf: pkg/bridge/early
// uses it before the rest of the plugin has initialised (crypto/sha256 and
// encoding/hex would make early wait for os and fmt to initialise).
package hostveth

import "github.com/flatcni/plugins/pkg/sha2"

// Name is the host end's name: "veth" and the first four bytes of the
// SHA-256 of the container ID, a NUL and the interface name, in hex. When it
// is taken (a hash collision), package link draws a random name instead; the
// alias still tells the attachment.
func Name(containerID, ifName string) string {
	sum := sha2.Sum256([]byte(containerID + "\x00" + ifName))
	const hexDigits = "0123456789abcdef"
	name := []byte("veth")
	for _, b := range sum[:4] {
		name = append(name, hexDigits[b>>4], hexDigits[b&15])
	}
	return string(name)
}

// Alias labels the host end with its attachment.
func Alias(containerID, ifName string) string {
	return "flatcni:" + containerID + "/" + ifName
}
