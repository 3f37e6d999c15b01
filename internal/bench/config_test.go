package main

import (
	"encoding/json"
	"net/netip"
	"testing"
)

func TestBridgeConfig(t *testing.T) {
	ipam := hostLocalIPAM(netip.MustParsePrefix("10.130.0.0/16"), "/tmp/x")
	tests := []struct {
		name        string
		backend     string
		wantMasq    bool
		wantBackend string
	}{
		{"no masquerade", "", false, ""},
		{"iptables", "iptables", true, "iptables"},
		{"nftables", "nftables", true, "nftables"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := bridgeConfig("br0", tt.backend, ipam)
			if err != nil {
				t.Fatal(err)
			}
			var got map[string]any
			if err := json.Unmarshal(b, &got); err != nil {
				t.Fatal(err)
			}
			masq, _ := got["ipMasq"].(bool)
			backend, _ := got["ipMasqBackend"].(string)
			if masq != tt.wantMasq || backend != tt.wantBackend {
				t.Errorf("ipMasq=%v ipMasqBackend=%q, want %v %q", masq, backend, tt.wantMasq, tt.wantBackend)
			}
			if got["type"] != "bridge" || got["bridge"] != "br0" || got["name"] != benchNetwork {
				t.Errorf("unexpected config %s", b)
			}
			ipamGot, _ := got["ipam"].(map[string]any)
			if ipamGot["type"] != "host-local" || ipamGot["dataDir"] != "/tmp/x" {
				t.Errorf("unexpected ipam section %s", b)
			}
		})
	}
}
