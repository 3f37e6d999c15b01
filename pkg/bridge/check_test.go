package bridge

import (
	"strings"
	"testing"

	"github.com/flatcni/plugins/pkg/config"
)

// CHECK compares the bridge's MAC only where ADD pinned it: with a gateway
// address on the bridge itself.
func TestBridgeMACPinned(t *testing.T) {
	for _, tc := range []struct {
		conf string
		want bool
	}{
		{`{"name":"n","isGateway":true,"ipam":{"type":"host-local"}}`, true},
		{`{"name":"n","isDefaultGateway":true,"ipam":{"type":"host-local"}}`, true},
		{`{"name":"n","ipam":{"type":"host-local"}}`, false},
		{`{"name":"n","isGateway":true,"ipam":{}}`, false},                               // no address to put on the bridge
		{`{"name":"n","isGateway":true,"vlan":100,"ipam":{"type":"host-local"}}`, false}, // gateway on <bridge>.100
	} {
		c, err := config.LoadBridge([]byte(tc.conf), "")
		if err != nil {
			t.Fatalf("%s: %v", tc.conf, err)
		}
		if got := bridgeMACPinned(c); got != tc.want {
			t.Errorf("%s: bridgeMACPinned = %v, want %v", tc.conf, got, tc.want)
		}
	}
}

func TestNodeInterface(t *testing.T) {
	res := mustResult(t, `{"cniVersion":"1.1.0","interfaces":[
		{"name":"cni0","mac":"0a:00:00:00:00:01"},
		{"name":"veth1","mac":"0a:00:00:00:00:02"},
		{"name":"eth0","mac":"0a:00:00:00:00:03","sandbox":"/var/run/netns/c"},
		{"name":"cni1","sandbox":"/var/run/netns/c"}]}`)
	for _, tc := range []struct {
		name    string
		wantMAC string // "" with wantErr
		wantErr string
	}{
		{name: "cni0", wantMAC: "0a:00:00:00:00:01"},
		{name: "veth1", wantMAC: "0a:00:00:00:00:02"},
		{name: "eth0", wantErr: `prevResult does not list bridge "eth0" on the node, only in sandbox "/var/run/netns/c"`},
		{name: "cni1", wantErr: `only in sandbox "/var/run/netns/c"`},
		{name: "br9", wantErr: `prevResult does not list bridge "br9"`},
	} {
		iface, err := nodeInterface(res, "bridge", tc.name)
		if tc.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("%s: error %v, want one containing %q", tc.name, err, tc.wantErr)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: %v", tc.name, err)
			continue
		}
		mac, err := resultMAC(iface)
		if err != nil || mac.String() != tc.wantMAC {
			t.Errorf("%s: MAC %v, %v; want %s", tc.name, mac, err, tc.wantMAC)
		}
	}
}

func TestResultMAC(t *testing.T) {
	res := mustResult(t, `{"cniVersion":"1.1.0","interfaces":[{"name":"cni0"},{"name":"veth1","mac":"not-a-mac"},{"name":"veth2","mac":"0A:00:00:00:00:0B"}]}`)
	if mac, err := resultMAC(res.Interfaces[0]); mac != nil || err != nil {
		t.Errorf("no MAC: got %v, %v; want nothing to compare", mac, err)
	}
	if _, err := resultMAC(res.Interfaces[1]); err == nil || !strings.Contains(err.Error(), `"veth1"`) || !strings.Contains(err.Error(), `"not-a-mac"`) {
		t.Errorf("bad MAC: error %v, want one naming the interface and the MAC", err)
	}
	if mac, err := resultMAC(res.Interfaces[2]); err != nil || mac.String() != "0a:00:00:00:00:0b" {
		t.Errorf("upper-case MAC: got %v, %v", mac, err)
	}
}
