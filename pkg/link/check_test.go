package link

import (
	"net"
	"testing"
)

func TestCheckBridge(t *testing.T) {
	mac, _ := net.ParseMAC("02:42:0a:01:00:01")
	other, _ := net.ParseMAC("02:42:0a:01:00:02")
	tests := []struct {
		name    string
		br      Bridge
		promisc bool
		wantMAC net.HardwareAddr
		wantErr []string // nil: no error
	}{
		{name: "match", br: Bridge{Name: "cni0", MAC: mac}, wantMAC: mac},
		{name: "promisc match", br: Bridge{Name: "cni0", MAC: mac, Promisc: true}, promisc: true, wantMAC: mac},
		{name: "MAC not compared", br: Bridge{Name: "cni0", MAC: mac}, wantMAC: nil},
		{name: "promisc on by hand", br: Bridge{Name: "cni0", MAC: mac, Promisc: true},
			wantErr: []string{`bridge "cni0"`, "promiscuous mode is on", "promiscMode is false"}},
		{name: "promisc off by hand", br: Bridge{Name: "cni0", MAC: mac}, promisc: true,
			wantErr: []string{`bridge "cni0"`, "promiscuous mode is off", "promiscMode is true"}},
		{name: "MAC differs", br: Bridge{Name: "cni0", MAC: other}, wantMAC: mac,
			wantErr: []string{`bridge "cni0"`, "MAC is 02:42:0a:01:00:02", "prevResult has 02:42:0a:01:00:01"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := CheckBridge(tc.br, tc.promisc, tc.wantMAC)
			if tc.wantErr == nil {
				if err != nil {
					t.Fatalf("CheckBridge: %v", err)
				}
				return
			}
			wantErrContains(t, err, tc.wantErr...)
		})
	}
}

func TestCheckHostVeth(t *testing.T) {
	requireRoot(t)
	node, cont := newNetNS(t, "chknode"), newNetNS(t, "chkcont")
	in(t, node, func() error {
		br, host, _, err := bridgedVeth("chkbr", cont)
		if err != nil {
			return err
		}
		other, err := EnsureBridge(BridgeConfig{Name: "chkbr2"})
		if err != nil {
			return err
		}
		if err := CheckHostVeth(br, host.Name, host.MAC); err != nil {
			t.Errorf("own MAC: %v", err)
		}
		if err := CheckHostVeth(br, host.Name, nil); err != nil {
			t.Errorf("MAC not compared: %v", err)
		}
		wrong := append(net.HardwareAddr(nil), host.MAC...)
		wrong[5] ^= 0xff
		err = CheckHostVeth(br, host.Name, wrong)
		wantErrContains(t, err, host.Name, "MAC is "+host.MAC.String(), "prevResult has "+wrong.String())
		wantErrContains(t, CheckHostVeth(other, host.Name, host.MAC), host.Name, `not attached to bridge "chkbr2"`)
		wantErrContains(t, CheckHostVeth(br, "vethnone", nil), `"vethnone"`)
		return nil
	})
}
