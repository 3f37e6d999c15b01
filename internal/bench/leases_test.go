package main

import (
	"net/netip"
	"os"
	"path/filepath"
	"testing"
)

func TestWriteLeases(t *testing.T) {
	tests := []struct {
		name      string
		subnet    string
		n         int
		wantFiles map[string]string
		wantErr   bool
	}{
		{
			name:   "three",
			subnet: "10.128.0.0/16",
			n:      3,
			wantFiles: map[string]string{
				"10.128.0.2":         "pre-0\r\neth0",
				"10.128.0.3":         "pre-1\r\neth0",
				"10.128.0.4":         "pre-2\r\neth0",
				"last_reserved_ip.0": "10.128.0.4",
			},
		},
		{
			name:   "crosses an octet",
			subnet: "10.1.0.0/16",
			n:      255,
			wantFiles: map[string]string{
				"10.1.0.255":         "pre-253\r\neth0",
				"10.1.1.0":           "pre-254\r\neth0",
				"last_reserved_ip.0": "10.1.1.0",
			},
		},
		{name: "none", subnet: "10.2.0.0/16", n: 0, wantFiles: map[string]string{}},
		{name: "too small", subnet: "10.3.0.0/30", n: 5, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			err := writeLeases(dir, "net", netip.MustParsePrefix(tt.subnet), tt.n)
			if (err != nil) != tt.wantErr {
				t.Fatalf("writeLeases error = %v, wantErr %v", err, tt.wantErr)
			}
			if tt.wantErr {
				return
			}
			entries, err := os.ReadDir(filepath.Join(dir, "net"))
			if err != nil {
				t.Fatal(err)
			}
			wantCount := tt.n
			if tt.n > 0 {
				wantCount++ // last_reserved_ip.0
			}
			if len(entries) != wantCount {
				t.Errorf("got %d files, want %d", len(entries), wantCount)
			}
			for name, want := range tt.wantFiles {
				got, err := os.ReadFile(filepath.Join(dir, "net", name))
				if err != nil {
					t.Errorf("read %s: %v", name, err)
					continue
				}
				if string(got) != want {
					t.Errorf("%s = %q, want %q", name, got, want)
				}
			}
		})
	}
}
