package l2

import (
	"net"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"

	"github.com/vishvananda/netlink"
)

func TestSpoofComment(t *testing.T) {
	tests := []struct {
		name, network, cid, ifname string
		wantErr                    string
	}{
		{name: "plain", network: "mynet", cid: "0123abcd", ifname: "eth0"},
		{name: "network with spaces and equals", network: "my net if=x net=y", cid: "c1", ifname: "net1"},
		{name: "empty network", network: "", cid: "c1", ifname: "eth0", wantErr: "empty network name"},
		{name: "empty container", network: "n", cid: "", ifname: "eth0", wantErr: "invalid container ID"},
		{name: "container with space", network: "n", cid: "a b", ifname: "eth0", wantErr: `invalid container ID "a b"`},
		{name: "interface with slash", network: "n", cid: "c", ifname: "a/b", wantErr: `invalid interface name "a/b"`},
		{name: "too long", network: strings.Repeat("n", 200), cid: strings.Repeat("c", 64), ifname: "eth0", wantErr: "too long"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := spoofComment(tt.network, tt.cid, tt.ifname)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("spoofComment() error = %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("spoofComment(): %v", err)
			}
			att, ok := parseSpoofComment(c)
			want := Attachment{Network: tt.network, ContainerID: tt.cid, IfName: tt.ifname}
			if !ok || !sameAttachment(att, want) {
				t.Fatalf("parseSpoofComment(%q) = %+v, %v; want %+v", c, att, ok, want)
			}
		})
	}
	for _, foreign := range []string{"", "macspoofchk-abc", spoofTag + " cid=x", spoofTag + " cid= if=eth0 net=n"} {
		if att, ok := parseSpoofComment(foreign); ok {
			t.Errorf("parseSpoofComment(%q) = %+v, want not ours", foreign, att)
		}
	}
}

func TestSetupMacSpoofCheckArgs(t *testing.T) {
	mac := net.HardwareAddr{2, 0, 0, 0, 0, 1}
	tests := []struct {
		name     string
		hostVeth string
		mac      net.HardwareAddr
		wantErr  string
	}{
		{name: "no host veth", hostVeth: "", mac: mac, wantErr: `invalid host veth name ""`},
		{name: "host veth too long", hostVeth: "veth0123456789ab", mac: mac, wantErr: "invalid host veth name"},
		{name: "no mac", hostVeth: "veth0", mac: nil, wantErr: "not a 6-byte Ethernet MAC"},
		{name: "infiniband mac", hostVeth: "veth0", mac: make(net.HardwareAddr, 20), wantErr: "not a 6-byte Ethernet MAC"},
	}
	// These calls fail validation before touching the kernel; as root they
	// still run in a throwaway namespace in case that ever changes.
	call := func(t *testing.T, f func() error) error { return f() }
	if os.Geteuid() == 0 {
		node := newNetns(t, "spoofargs")
		call = func(t *testing.T, f func() error) error { return inNetns(t, node, f) }
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := call(t, func() error { return SetupMacSpoofCheck("n", "c", "eth0", tt.hostVeth, tt.mac) })
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("SetupMacSpoofCheck() error = %v, want one containing %q", err, tt.wantErr)
			}
		})
	}
}

// interfaceMAC reads the MAC of ifname inside the named namespace.
func interfaceMAC(t *testing.T, nsName, ifname string) net.HardwareAddr {
	t.Helper()
	var mac net.HardwareAddr
	if err := inNetns(t, nsName, func() error {
		link, err := netlink.LinkByName(ifname)
		if err != nil {
			return err
		}
		mac = link.Attrs().HardwareAddr
		return nil
	}); err != nil {
		t.Fatalf("read MAC of %s in %s: %v", ifname, nsName, err)
	}
	return mac
}

// listChecks runs MacSpoofChecks inside the named namespace.
func listChecks(t *testing.T, nsName, network string) []Attachment {
	t.Helper()
	var atts []Attachment
	if err := inNetns(t, nsName, func() (err error) {
		atts, err = MacSpoofChecks(network)
		return err
	}); err != nil {
		t.Fatalf("MacSpoofChecks(%q): %v", network, err)
	}
	return atts
}

func TestMacSpoofCheckTraffic(t *testing.T) {
	requireRoot(t)
	const network = "spoofnet"
	top := newTopology(t, "spoof", "192.0.2.1", "192.0.2.2", "192.0.2.3")
	a, b := top.containers[0], top.containers[1]
	macA := interfaceMAC(t, a.netns, "eth0")
	spoofed := net.HardwareAddr{0x02, 0x42, 0xde, 0xad, 0xbe, 0xef}

	forget := func() {
		for _, c := range top.containers {
			run(t, "ip", "-n", c.netns, "neigh", "flush", "all")
		}
	}
	inNode := func(what string, f func() error) {
		t.Helper()
		if err := inNetns(t, top.node, f); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	}
	expectReach := func(step string, want bool) {
		t.Helper()
		forget()
		if got := pingOK(a.netns, b.addr); got != want {
			t.Errorf("%s: A reaches B = %v, want %v", step, got, want)
		}
		if got := pingOK(b.netns, a.addr); got != want {
			t.Errorf("%s: B reaches A = %v, want %v", step, got, want)
		}
		if !pingOK(b.netns, "192.0.2.1") {
			t.Errorf("%s: B (unchecked) no longer reaches the gateway", step)
		}
	}
	expectChecks := func(step string, want ...Attachment) {
		t.Helper()
		got := listChecks(t, top.node, network)
		if len(got) != len(want) {
			t.Fatalf("%s: MacSpoofChecks = %+v, want %+v", step, got, want)
		}
		for i := range want {
			if !sameAttachment(got[i], want[i]) || got[i].HostVeth != want[i].HostVeth || got[i].MAC.String() != want[i].MAC.String() {
				t.Errorf("%s: MacSpoofChecks[%d] = %+v, want %+v", step, i, got[i], want[i])
			}
		}
	}

	expectReach("before any check", true)

	inNode("set up check", func() error { return SetupMacSpoofCheck(network, "cid-a", "eth0", a.hostVeth, macA) })
	expectChecks("after setup", Attachment{network, "cid-a", "eth0", a.hostVeth, macA})
	expectReach("check with the right MAC", true)
	if _, err := exec.LookPath("nft"); err == nil {
		out := run(t, "ip", "netns", "exec", top.node, "nft", "list", "table", "bridge", spoofTable)
		for _, want := range []string{`iifname "` + a.hostVeth + `"`, "ether saddr != " + macA.String(), "drop", `comment "` + spoofTag + " cid=cid-a if=eth0 net=" + network + `"`} {
			if !strings.Contains(out, want) {
				t.Errorf("nft list table shows no %q:\n%s", want, out)
			}
		}
	}

	run(t, "ip", "-n", a.netns, "link", "set", "eth0", "address", spoofed.String())
	expectReach("A spoofing another MAC", false)

	inNode("set up again with the new MAC", func() error {
		return SetupMacSpoofCheck(network, "cid-a", "eth0", a.hostVeth, spoofed)
	})
	expectChecks("after second setup", Attachment{network, "cid-a", "eth0", a.hostVeth, spoofed})
	expectReach("check replaced with the new MAC", true)

	run(t, "ip", "-n", a.netns, "link", "set", "eth0", "address", macA.String())
	expectReach("back to the old MAC", false)

	inNode("tear down", func() error { return TeardownMacSpoofCheck(network, "cid-a", "eth0") })
	expectChecks("after teardown")
	expectReach("after teardown", true)
	inNode("tear down again", func() error { return TeardownMacSpoofCheck(network, "cid-a", "eth0") })
}

func TestMacSpoofChecksBookkeeping(t *testing.T) {
	requireRoot(t)
	node := newNetns(t, "spoofbk")
	mac := func(last byte) net.HardwareAddr { return net.HardwareAddr{2, 0, 0, 0, 0, last} }
	type call struct {
		setup                          bool
		network, cid, ifname, hostVeth string
		mac                            net.HardwareAddr
	}
	steps := []struct {
		name string
		call call
		want map[string][]string // network -> "cid/ifname/hostVeth"
	}{
		{name: "teardown of nothing", call: call{network: "n1", cid: "c1", ifname: "eth0"}, want: map[string][]string{"": nil}},
		{name: "first", call: call{true, "n1", "c1", "eth0", "vetha", mac(1)}, want: map[string][]string{"n1": {"c1/eth0/vetha"}, "n2": nil}},
		{name: "second interface", call: call{true, "n1", "c1", "net1", "vethb", mac(2)}, want: map[string][]string{"n1": {"c1/eth0/vetha", "c1/net1/vethb"}}},
		{name: "other network same container", call: call{true, "n2", "c1", "eth0", "vethc", mac(3)}, want: map[string][]string{"n1": {"c1/eth0/vetha", "c1/net1/vethb"}, "n2": {"c1/eth0/vethc"}, "": {"c1/eth0/vetha", "c1/net1/vethb", "c1/eth0/vethc"}}},
		{name: "repeat replaces", call: call{true, "n1", "c1", "eth0", "vethd", mac(4)}, want: map[string][]string{"n1": {"c1/eth0/vethd", "c1/net1/vethb"}}},
		{name: "stale rule on reused veth name removed", call: call{true, "n1", "c2", "eth0", "vethb", mac(5)}, want: map[string][]string{"n1": {"c1/eth0/vethd", "c2/eth0/vethb"}}},
		{name: "teardown one", call: call{network: "n1", cid: "c1", ifname: "eth0"}, want: map[string][]string{"n1": {"c2/eth0/vethb"}, "n2": {"c1/eth0/vethc"}}},
		{name: "teardown other network", call: call{network: "n2", cid: "c1", ifname: "eth0"}, want: map[string][]string{"n2": nil, "": {"c2/eth0/vethb"}}},
		{name: "teardown last", call: call{network: "n1", cid: "c2", ifname: "eth0"}, want: map[string][]string{"": nil}},
	}
	for _, s := range steps {
		c := s.call
		err := inNetns(t, node, func() error {
			if c.setup {
				return SetupMacSpoofCheck(c.network, c.cid, c.ifname, c.hostVeth, c.mac)
			}
			return TeardownMacSpoofCheck(c.network, c.cid, c.ifname)
		})
		if err != nil {
			t.Fatalf("%s: %v", s.name, err)
		}
		for network, want := range s.want {
			var got []string
			for _, att := range listChecks(t, node, network) {
				got = append(got, att.ContainerID+"/"+att.IfName+"/"+att.HostVeth)
			}
			slices.Sort(got)
			slices.Sort(want)
			if !slices.Equal(got, want) {
				t.Errorf("%s: MacSpoofChecks(%q) = %v, want %v", s.name, network, got, want)
			}
		}
	}
}

// TeardownMacSpoofChecks removes exactly the checks of the attachments it
// is given (by network, container and interface), in one batch, and
// names none that does not exist as an error.
func TestTeardownMacSpoofChecks(t *testing.T) {
	requireRoot(t)
	node := newNetns(t, "spoofmany")
	mac := func(last byte) net.HardwareAddr { return net.HardwareAddr{2, 0, 0, 0, 0, last} }
	setups := []Attachment{
		{Network: "n1", ContainerID: "c1", IfName: "eth0", HostVeth: "vetha", MAC: mac(1)},
		{Network: "n1", ContainerID: "c2", IfName: "eth0", HostVeth: "vethb", MAC: mac(2)},
		{Network: "n1", ContainerID: "c3", IfName: "eth0", HostVeth: "vethc", MAC: mac(3)},
		{Network: "n2", ContainerID: "c2", IfName: "eth0", HostVeth: "vethd", MAC: mac(4)},
	}
	err := inNetns(t, node, func() error {
		for _, a := range setups {
			if err := SetupMacSpoofCheck(a.Network, a.ContainerID, a.IfName, a.HostVeth, a.MAC); err != nil {
				return err
			}
		}
		return TeardownMacSpoofChecks([]Attachment{
			{Network: "n1", ContainerID: "c2", IfName: "eth0"},
			{Network: "n1", ContainerID: "c3", IfName: "eth0"},
			{Network: "n1", ContainerID: "gone", IfName: "eth0"},
		})
	})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, att := range listChecks(t, node, "") {
		got = append(got, att.Network+"/"+att.ContainerID+"/"+att.IfName)
	}
	slices.Sort(got)
	if want := []string{"n1/c1/eth0", "n2/c2/eth0"}; !slices.Equal(got, want) {
		t.Errorf("checks left: %v, want %v", got, want)
	}
	if err := inNetns(t, node, func() error { return TeardownMacSpoofChecks(nil) }); err != nil {
		t.Errorf("no attachments: %v", err)
	}
}
