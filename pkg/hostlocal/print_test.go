package hostlocal

import (
	"bytes"
	"fmt"
	"net"
	"testing"

	"github.com/containernetworking/cni/pkg/types"
	current "github.com/containernetworking/cni/pkg/types/100"
)

// TestPrintResult checks that PrintResult writes what PrintTo writes, in
// every result version, with no, few and many addresses and routes, and
// every other optional part present or not.
func TestPrintResult(t *testing.T) {
	mask := func(s string) net.IPNet {
		ip, n, err := net.ParseCIDR(s)
		if err != nil {
			t.Fatal(err)
		}
		n.IP = ip
		return *n
	}
	idx := 0
	var results []*current.Result
	for _, nIPs := range []int{0, 1, 2, 40} {
		for _, routes := range []int{0, 2, 40} {
			for _, dns := range []bool{false, true} {
				for _, ifaces := range []bool{false, true} {
					r := &current.Result{CNIVersion: current.ImplementedSpecVersion}
					for i := 0; i < nIPs; i++ {
						ipc := &current.IPConfig{Address: mask(fmt.Sprintf("10.0.%d.%d/24", i/200, i%200+2))}
						if i%2 == 1 {
							ipc.Address = mask(fmt.Sprintf("fd00::%x/64", i+2))
						}
						if i%3 != 0 {
							ipc.Gateway = net.ParseIP("10.0.0.1")
						}
						if ifaces && i == 0 {
							ipc.Interface = &idx
						}
						r.IPs = append(r.IPs, ipc)
					}
					for i := range routes {
						rt := &types.Route{Dst: mask(fmt.Sprintf("10.%d.0.0/16", i)), GW: net.ParseIP("10.0.0.1")}
						if i%2 == 1 {
							rt = &types.Route{Dst: mask(fmt.Sprintf("fd00:%x::/64", i)), MTU: 1400}
						}
						r.Routes = append(r.Routes, rt)
					}
					if dns {
						r.DNS = types.DNS{Nameservers: []string{"10.0.0.53", "<x&>"}, Domain: "example.test", Search: []string{"a"}, Options: []string{"ndots:2"}}
					}
					if ifaces {
						r.Interfaces = []*current.Interface{{Name: "eth0", Mac: "02:00:00:00:00:01", Sandbox: "/var/run/netns/x"}}
					}
					results = append(results, r)
				}
			}
		}
	}
	for _, ver := range []string{"0.1.0", "0.2.0", "0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"} {
		for i, r := range results {
			if ver < "0.3.0" && (len(r.IPs) > 2 || len(r.IPs) == 0) {
				continue // one address per family, at least one
			}
			res, err := r.GetAsVersion(ver)
			if err != nil {
				t.Fatalf("%s #%d: %v", ver, i, err)
			}
			var want, got bytes.Buffer
			if err := res.PrintTo(&want); err != nil {
				t.Fatal(err)
			}
			if err := PrintResult(&got, res); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got.Bytes(), want.Bytes()) {
				t.Fatalf("%s #%d:\ngot  %s\nwant %s", ver, i, got.Bytes(), want.Bytes())
			}
		}
	}
}
