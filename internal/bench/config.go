package main

import (
	"encoding/json"
	"fmt"
	"net/netip"
)

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
