package main

import (
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
)

// benchNetwork is the CNI network name of every bench config; host-local
// keeps its leases under <dataDir>/<network>.
const benchNetwork = "flatcni-bench"

// leaseSep separates container ID and interface name inside a lease file of
// the reference host-local disk store.
const leaseSep = "\r\n"

// writeLeases pre-populates a host-local data directory with n leases in the
// reference's on-disk layout: one file per address named after it, holding
// "<containerID>\r\n<ifname>", plus last_reserved_ip.0 naming the last one.
// Addresses start at the subnet's third address (the first host address is
// the default gateway).
func writeLeases(dataDir, network string, subnet netip.Prefix, n int) error {
	dir := filepath.Join(dataDir, network)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("create lease directory %s: %w", dir, err)
	}
	addr := subnet.Masked().Addr().Next()
	for i := range n {
		addr = addr.Next()
		if !subnet.Contains(addr) {
			return fmt.Errorf("write %d leases: subnet %s is too small", n, subnet)
		}
		body := fmt.Sprintf("pre-%d%seth0", i, leaseSep)
		if err := os.WriteFile(filepath.Join(dir, addr.String()), []byte(body), 0o600); err != nil {
			return fmt.Errorf("write lease %s: %w", addr, err)
		}
	}
	if n == 0 {
		return nil
	}
	last := filepath.Join(dir, "last_reserved_ip.0")
	if err := os.WriteFile(last, []byte(addr.String()), 0o600); err != nil {
		return fmt.Errorf("write %s: %w", last, err)
	}
	return nil
}
