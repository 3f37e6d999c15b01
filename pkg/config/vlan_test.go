package config

import (
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/containernetworking/cni/pkg/types"
)

func intp(v int) *int { return &v }

func TestVlanIDs(t *testing.T) {
	tests := []struct {
		name    string
		vlan    int
		trunks  []VlanTrunk
		want    []int
		wantErr string
	}{
		{name: "nothing"},
		{name: "access vlan only", vlan: 100},
		{name: "vlan 0 is none", vlan: 0, trunks: []VlanTrunk{}},
		{name: "vlan max", vlan: 4094},
		{name: "vlan negative", vlan: -1, wantErr: "vlan: -1 out of range 0-4094"},
		{name: "vlan too big", vlan: 4095, wantErr: "vlan: 4095 out of range 0-4094"},
		{name: "single ids", trunks: []VlanTrunk{{ID: intp(20)}, {ID: intp(10)}}, want: []int{10, 20}},
		{name: "range", trunks: []VlanTrunk{{MinID: intp(5), MaxID: intp(8)}}, want: []int{5, 6, 7, 8}},
		{name: "range of one", trunks: []VlanTrunk{{MinID: intp(4094), MaxID: intp(4094)}}, want: []int{4094}},
		{name: "range and id in one entry", trunks: []VlanTrunk{{MinID: intp(1), MaxID: intp(2), ID: intp(9)}}, want: []int{1, 2, 9}},
		{name: "duplicates merged", trunks: []VlanTrunk{{MinID: intp(3), MaxID: intp(6)}, {ID: intp(4)}, {MinID: intp(5), MaxID: intp(7)}, {ID: intp(4)}}, want: []int{3, 4, 5, 6, 7}},
		{name: "vlan and trunk together", vlan: 7, trunks: []VlanTrunk{{ID: intp(7)}, {ID: intp(8)}}, want: []int{7, 8}},
		{name: "empty entry ignored", trunks: []VlanTrunk{{}}},
		{name: "id zero", trunks: []VlanTrunk{{ID: intp(0)}}, wantErr: "vlanTrunk[0]: id 0 out of range 1-4094"},
		{name: "id too big", trunks: []VlanTrunk{{ID: intp(1)}, {ID: intp(4095)}}, wantErr: "vlanTrunk[1]: id 4095 out of range 1-4094"},
		{name: "maxID too big", trunks: []VlanTrunk{{ID: intp(1)}, {MinID: intp(1), MaxID: intp(5000)}}, wantErr: "vlanTrunk[1]: maxID 5000 out of range 1-4094"},
		{name: "minID zero", trunks: []VlanTrunk{{MinID: intp(0), MaxID: intp(5)}}, wantErr: "vlanTrunk[0]: minID 0 out of range 1-4094"},
		{name: "min greater than max", trunks: []VlanTrunk{{MinID: intp(9), MaxID: intp(5)}}, wantErr: "vlanTrunk[0]: minID 9 is greater than maxID 5"},
		{name: "minID alone", trunks: []VlanTrunk{{MinID: intp(9)}}, wantErr: "vlanTrunk[0]: minID 9 given without maxID"},
		{name: "maxID alone", trunks: []VlanTrunk{{ID: intp(3)}, {MaxID: intp(9), ID: intp(4)}}, wantErr: "vlanTrunk[1]: maxID 9 given without minID"},
		{name: "bad vlan reported before trunks", vlan: 5000, trunks: []VlanTrunk{{ID: intp(0)}}, wantErr: "vlan: 5000"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := VlanIDs(tt.vlan, tt.trunks)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("VlanIDs() error = %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("VlanIDs() unexpected error: %v", err)
			}
			if !slices.Equal(got, tt.want) {
				t.Fatalf("VlanIDs() = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestVlanTrunkJSON(t *testing.T) {
	tests := []struct {
		name string
		conf string
		want []int
	}{
		{name: "keys", conf: `[{"minID":100,"maxID":102},{"id":7}]`, want: []int{7, 100, 101, 102}},
		{name: "empty list", conf: `[]`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var trunks []VlanTrunk
			if err := json.Unmarshal([]byte(tt.conf), &trunks); err != nil {
				t.Fatal(err)
			}
			got, err := VlanIDs(0, trunks)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got, tt.want) {
				t.Fatalf("VlanIDs() = %v, want %v", got, tt.want)
			}
			if !NeedsVlanFiltering(0, trunks) {
				t.Fatalf("NeedsVlanFiltering(0, %s) = false, want true", tt.conf)
			}
		})
	}
}

func TestNeedsVlanFiltering(t *testing.T) {
	tests := []struct {
		name   string
		vlan   int
		trunks []VlanTrunk
		want   bool
	}{
		{name: "neither", want: false},
		{name: "vlan", vlan: 3, want: true},
		{name: "empty trunk list present", trunks: []VlanTrunk{}, want: true},
		{name: "trunk", trunks: []VlanTrunk{{ID: intp(2)}}, want: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := NeedsVlanFiltering(tt.vlan, tt.trunks); got != tt.want {
				t.Fatalf("NeedsVlanFiltering() = %v, want %v", got, tt.want)
			}
		})
	}
}

// A configuration's VLAN error is code 7 and starts with the key at fault.
func TestLoadBridgeVlanErrorNamesKey(t *testing.T) {
	for conf, want := range map[string]string{
		`"vlan":5000`:                     "vlan: 5000 out of range 0-4094",
		`"vlanTrunk":[{"id":1},{"id":0}]`: "vlanTrunk[1]: id 0 out of range 1-4094",
	} {
		_, err := LoadBridge([]byte(`{"cniVersion":"1.1.0","name":"n","type":"bridge",`+conf+`}`), "")
		var te *types.Error
		if !errors.As(err, &te) || te.Code != types.ErrInvalidNetworkConfig || te.Msg != want {
			t.Errorf("%s: error %v, want code 7 %q", conf, err, want)
		}
	}
}
