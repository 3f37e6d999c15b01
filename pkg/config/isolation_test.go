package config

import (
	"strings"
	"testing"
)

func TestIsolationKeys(t *testing.T) {
	const base = `"cniVersion":"1.1.0","name":"n","type":"bridge","ipam":{"type":"host-local"}`
	tests := []struct {
		name     string
		keys     string
		mode     string
		isolates bool
		noICC    bool
		wantErr  string
	}{
		{name: "defaults", mode: "none"},
		{name: "none", keys: `"isolation":"none"`, mode: "none"},
		{name: "isolated", keys: `"isolation":"isolated"`, mode: "isolated", isolates: true},
		{name: "strict", keys: `"isolation":"strict","ipMasq":true`, mode: "strict", isolates: true},
		{name: "icc true", keys: `"icc":true`, mode: "none"},
		{name: "icc false", keys: `"icc":false`, mode: "none", isolates: true, noICC: true},
		{name: "internal", keys: `"internal":true,"isGateway":true`, mode: "none", isolates: true},
		{name: "unknown mode", keys: `"isolation":"Strict"`, wantErr: `isolation: unknown value "Strict"`},
		{name: "internal with ipMasq", keys: `"internal":true,"ipMasq":true`, wantErr: "internal: cannot be combined with ipMasq"},
		{name: "internal with isDefaultGateway", keys: `"internal":true,"isDefaultGateway":true`, wantErr: "internal: cannot be combined with isDefaultGateway"},
		// The key as written, not the Go path of the embedded struct
		// ("Isolation.icc").
		{name: "icc wrong type", keys: `"icc":"no"`, wantErr: "icc: expected bool"},
		{name: "isolation wrong type", keys: `"isolation":true`, wantErr: "isolation: expected string"},
		{name: "vlan", keys: `"icc":false,"vlan":5`, wantErr: "vlan: 5 cannot be combined with isolation"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			conf := "{" + base
			if tc.keys != "" {
				conf += "," + tc.keys
			}
			b, err := LoadBridge([]byte(conf+"}"), "")
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) || strings.Contains(err.Error(), "Isolation.") {
					t.Fatalf("error %v, want one containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if b.Mode() != tc.mode || b.Isolates() != tc.isolates || b.NoICC() != tc.noICC {
				t.Errorf("mode %q isolates %v noICC %v, want %q %v %v", b.Mode(), b.Isolates(), b.NoICC(), tc.mode, tc.isolates, tc.noICC)
			}
		})
	}
}

// Teardown must still see the keys of a configuration ADD rejected, to
// remove whatever an earlier valid ADD of the network left.
func TestIsolationTeardownLoad(t *testing.T) {
	b, err := LoadBridgeForTeardown([]byte(`{"cniVersion":"1.1.0","name":"n","type":"bridge","internal":true,"ipMasq":true}`))
	if err != nil {
		t.Fatal(err)
	}
	if !b.Isolates() {
		t.Error("teardown does not see internal")
	}
}
