// Package leasetest reads a network's lease directory for tests: who holds
// which address, and whether the index and the lease files agree.
package leasetest

import (
	"strings"
	"testing"

	"github.com/flatcni/plugins/pkg/ipam/disk"
)

// Holders maps each lease file of a network directory (named after its
// address) to its holder, "<containerID>/<ifname>".
func Holders(t testing.TB, netDir string) map[string]string {
	t.Helper()
	leases, err := disk.ReadLeases(netDir)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, l := range leases {
		out[l.Addr.String()] = l.ContainerID + "/" + l.IfName
	}
	return out
}

// CheckStore fails the test unless the index lists exactly the lease files,
// by holder, and no temporary file is left behind.
func CheckStore(t testing.TB, netDir string) {
	t.Helper()
	if probs := disk.Check(netDir); len(probs) > 0 {
		t.Fatalf("lease store %s:\n%s", netDir, strings.Join(probs, "\n"))
	}
	if tmp := disk.TempFiles(netDir); len(tmp) > 0 {
		t.Fatalf("temporary files left behind: %v", tmp)
	}
}
