package main

import (
	"encoding/json"
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

// ipamConfig is the host-local section of a bench network config.
type ipamConfig struct {
	Type    string          `json:"type"`
	Ranges  [][]rangeConfig `json:"ranges"`
	DataDir string          `json:"dataDir"`
}

type rangeConfig struct {
	Subnet string `json:"subnet"`
}

// netConfig is the subset of the bridge network config the bench uses.
type netConfig struct {
	CNIVersion    string     `json:"cniVersion"`
	Name          string     `json:"name"`
	Type          string     `json:"type"`
	Bridge        string     `json:"bridge,omitempty"`
	IsGateway     bool       `json:"isGateway,omitempty"`
	IPMasq        bool       `json:"ipMasq,omitempty"`
	IPMasqBackend string     `json:"ipMasqBackend,omitempty"`
	IPAM          ipamConfig `json:"ipam"`
}

// hostLocalIPAM returns the IPAM section allocating from subnet into dataDir.
func hostLocalIPAM(subnet netip.Prefix, dataDir string) ipamConfig {
	return ipamConfig{
		Type:    "host-local",
		Ranges:  [][]rangeConfig{{{Subnet: subnet.String()}}},
		DataDir: dataDir,
	}
}

// bridgeConfig returns a bridge network config; masqBackend "" disables
// ipMasq, otherwise it names the backend ("iptables" or "nftables").
func bridgeConfig(bridge, masqBackend string, ipam ipamConfig) ([]byte, error) {
	c := netConfig{
		CNIVersion:    "1.0.0",
		Name:          benchNetwork,
		Type:          "bridge",
		Bridge:        bridge,
		IsGateway:     true,
		IPMasq:        masqBackend != "",
		IPMasqBackend: masqBackend,
		IPAM:          ipam,
	}
	b, err := json.Marshal(c)
	if err != nil {
		return nil, fmt.Errorf("encode bridge config: %w", err)
	}
	return b, nil
}

// hostLocalConfig returns the network config host-local reads when run on its
// own (as the bridge plugin would delegate to it).
func hostLocalConfig(ipam ipamConfig) ([]byte, error) {
	c := netConfig{CNIVersion: "1.0.0", Name: benchNetwork, Type: "bridge", IPAM: ipam}
	b, err := json.Marshal(c)
	if err != nil {
		return nil, fmt.Errorf("encode host-local config: %w", err)
	}
	return b, nil
}
