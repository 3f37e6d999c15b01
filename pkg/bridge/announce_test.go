package bridge

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"testing"
)

// What the container's kernel says of its addresses when its interface
// comes up goes nowhere (the interface is up before it has them, and with
// IPAM its port joins the bridge only after it is configured: DeferAttach).
// ADD of addresses that may have been another container's (asked for by
// the runtime: CNI_ARGS IP=) has the interface announce them once the port
// is on the bridge, in its VLAN (after AttachPort and SetPortVlans), and
// releases the announcer; also without a deferred attach (enabledad),
// after the addresses.
func TestAddAnnouncesAfterAttach(t *testing.T) {
	for _, tc := range []struct {
		extra    string
		deferred bool
	}{
		{"", true},
		{`,"vlan":100`, true},
		{`,"enabledad":true`, false},
	} {
		t.Run("conf"+tc.extra, func(t *testing.T) {
			n := newFakeNode(testNetns)
			if tc.extra == `,"vlan":100` {
				n.deps.Links = vlanLinks{n.links}
			}
			args := testArgs(testConf("host-local", tc.extra), "c1")
			args.Args = "IP=10.0.0.9"
			res := addOK(t, n, args)
			calls := n.links.calls
			i := callIndex(calls, "Announce")
			if i < 0 {
				t.Fatalf("no announcement of the container's addresses: %v", calls)
			}
			if want := fmt.Sprintf("Announce %s eth0 [%s]", testNetns, res.IPs[0].Address.String()); calls[i] != want {
				t.Errorf("%q, want %q", calls[i], want)
			}
			before := []string{"SetupVeth", "ConfigureContainer"}
			if tc.deferred {
				before = append(before, "AttachPort")
			}
			if tc.extra == `,"vlan":100` {
				before = append(before, "SetPortVlans")
			}
			for _, m := range before {
				if j := callIndex(calls, m); j < 0 || j > i {
					t.Errorf("%s (%d) not before Announce (%d): %v", m, j, i, calls)
				}
			}
			if h := n.links.hosts[res.Interfaces[1].Name]; h == nil || h.master == 0 {
				t.Errorf("port not on the bridge: %+v", h)
			}
			if n.links.announcers != 0 {
				t.Errorf("%d announcers left open", n.links.announcers)
			}
		})
	}
}

// The announcement floods every port of the bridge: ADD makes it only
// when the addresses may have been another container's, asked for by the
// runtime (CNI_ARGS IP=, args.cni.ips, runtimeConfig.ips) or known to the
// node's neighbour table; otherwise the announcer is closed unused.
func TestAddAnnouncesOnlyReusedAddresses(t *testing.T) {
	for _, tc := range []struct {
		name     string
		extra    string
		envArgs  string
		neighbor bool
		want     bool
	}{
		{name: "fresh address"},
		{name: "CNI_ARGS IP", envArgs: "IgnoreUnknown=1;IP=10.0.0.9", want: true},
		{name: "args.cni.ips", extra: `,"args":{"cni":{"ips":["10.0.0.9"]}}`, want: true},
		{name: "runtimeConfig.ips", extra: `,"runtimeConfig":{"ips":["10.0.0.9"]}`, want: true},
		{name: "known to the node", neighbor: true, want: true},
		// Without a gateway the node has no entry to tell: nothing is
		// even opened unless the runtime asked for the addresses.
		{name: "no gateway", extra: "nogw"},
		{name: "no gateway, CNI_ARGS IP", extra: "nogw", envArgs: "IP=10.0.0.9", want: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n := newFakeNode(testNetns)
			if tc.neighbor {
				n.links.neighbours = map[netip.Addr]bool{netip.MustParseAddr("10.1.0.2"): true}
			}
			conf := testConf("host-local", tc.extra)
			if tc.extra == "nogw" {
				conf = []byte(strings.Replace(string(testConf("host-local", "")), `"isGateway":true`, `"isGateway":false`, 1))
			}
			args := testArgs(conf, "c1")
			args.Args = tc.envArgs
			res := addOK(t, n, args)
			if tc.neighbor && res.IPs[0].Address.IP.String() != "10.1.0.2" {
				t.Fatalf("the fake IPAM gave %v, the test expects 10.1.0.2", res.IPs[0].Address)
			}
			if got := callIndex(n.links.calls, "Announce") >= 0; got != tc.want {
				t.Errorf("announced: %v, want %v: %v", got, tc.want, n.links.calls)
			}
			if n.links.announcers != 0 {
				t.Errorf("%d announcers left open", n.links.announcers)
			}
			if tc.extra == "nogw" && !tc.want && n.links.opened != 0 {
				t.Errorf("an announcer was opened where nothing could be announced")
			}
		})
	}
}

// Without IPAM there is no address to tell: ADD announces nothing and
// opens nothing for it.
func TestAddL2NoAnnounce(t *testing.T) {
	for name, conf := range map[string][]byte{
		"up":   []byte(`{"cniVersion":"1.0.0","name":"net1","type":"bridge","bridge":"cni0"}`),
		"down": []byte(`{"cniVersion":"1.0.0","name":"net1","type":"bridge","bridge":"cni0","disableContainerInterface":true}`),
	} {
		t.Run(name, func(t *testing.T) {
			n := newFakeNode(testNetns)
			addOK(t, n, testArgs(conf, "c1"))
			if i := callIndex(n.links.calls, "Announce"); i >= 0 || n.links.announcers != 0 {
				t.Errorf("announced (%d) or left an announcer (%d): %v", i, n.links.announcers, n.links.calls)
			}
		})
	}
}

// An ADD that fails after the container's interface was configured
// releases the announcer (its undo) without announcing: that comes last,
// after the gateway's addresses.
func TestAddFailedReleasesAnnouncer(t *testing.T) {
	boom := errors.New("boom")
	for _, step := range []string{"AttachPort", "EnsureGatewayAddrs"} {
		t.Run(step, func(t *testing.T) {
			n := newFakeNode(testNetns)
			n.links.fail[step] = boom
			args := testArgs(testConf("host-local", ""), "c1")
			args.Args = "IP=10.0.0.9"
			if _, err := n.deps.Add(args); err == nil {
				t.Fatal("ADD succeeded")
			}
			announced := callIndex(n.links.calls, "Announce") >= 0
			if announced || n.links.announcers != 0 {
				t.Errorf("announced: %v, announcers left open: %d: %v", announced, n.links.announcers, n.links.calls)
			}
		})
	}
}
