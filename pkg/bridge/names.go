package bridge

import (
	"crypto/sha256"
	"encoding/hex"
)

// hostVethName derives the host end's name from the attachment, so that DEL
// can remove a surviving host veth after the container netns is gone. When it
// is taken (a hash collision), package link draws a random name instead.
func hostVethName(containerID, ifName string) string {
	sum := sha256.Sum256([]byte(containerID + "\x00" + ifName))
	return "veth" + hex.EncodeToString(sum[:4])
}

// hostVethAlias labels the host end with its attachment.
func hostVethAlias(containerID, ifName string) string {
	return "flatcni:" + containerID + "/" + ifName
}
