package bridge

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/containernetworking/cni/pkg/skel"
	"github.com/containernetworking/cni/pkg/types"

	"github.com/flatcni/plugins/pkg/firewall"
	"github.com/flatcni/plugins/pkg/link"
)

// gcArgs is a GC of conf (testConf's shape) with the valid attachments
// given ("" for none).
func gcArgs(conf []byte, valid string) *skel.CmdArgs {
	c := strings.Replace(string(conf), `"1.0.0"`, `"1.1.0"`, 1)
	c = strings.Replace(c, `"ipam"`, `"cni.dev/valid-attachments":[`+valid+`],"ipam"`, 1)
	return &skel.CmdArgs{Path: "/opt/cni/bin", StdinData: []byte(c)}
}

// An IPAM plugin that leads back to the bridge is refused by ADD; the DEL
// the runtime makes after that failed ADD, and GC, go on without it (it
// holds nothing: ADD never ran it), or they would fail for ever.
func TestTeardownWithIPAMLoop(t *testing.T) {
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := os.Symlink(self, filepath.Join(dir, "bridge")); err != nil {
		t.Fatal(err)
	}
	n := newFakeNode(testNetns)
	n.deps.IPAM = NodeIPAM{}
	args := testArgs(testConf("bridge", ""), "c1")
	args.Path = dir
	if _, err := n.deps.Add(args); err == nil || !strings.Contains(err.Error(), "loop") {
		t.Fatalf("ADD with the bridge as IPAM plugin: %v, want a loop refused", err)
	}
	if err := n.deps.Del(args); err != nil {
		t.Errorf("DEL: %v", err)
	}
	gc := gcArgs(testConf("bridge", ""), "")
	gc.Path = dir
	if err := n.deps.GC(gc); err != nil {
		t.Errorf("GC: %v", err)
	}
}

// DEL releases the attachment's addresses only once its interface is gone:
// when deleting it fails, DEL fails and keeps the lease for the runtime's
// next DEL (released now, the address could go to a new container while
// the old interface still has it). Deleted from the container's side after
// the host end's deletion failed, it releases.
func TestDelKeepsLeaseWhileInterfaceLeft(t *testing.T) {
	n := newFakeNode(testNetns)
	addOK(t, n, testArgs(testConf("host-local", ""), "c1"))
	boom := errors.New("netlink: no buffer space")
	n.links.fail["DelLinkWithAlias"], n.links.fail["DelVeth"] = boom, boom
	if err := n.deps.Del(testArgs(testConf("host-local", ""), "c1")); err == nil {
		t.Fatal("DEL succeeded though the interface could not be deleted")
	}
	if _, leased := n.ipam.leases["c1/eth0"]; !leased {
		t.Error("the lease was released while the interface is still there")
	}
	delete(n.links.fail, "DelVeth")
	if err := n.deps.Del(testArgs(testConf("host-local", ""), "c1")); err == nil {
		t.Fatal("DEL succeeded though the host end's deletion failed")
	}
	if _, leased := n.ipam.leases["c1/eth0"]; leased {
		t.Error("the lease was kept though the pair went from the container's side")
	}
	delete(n.links.fail, "DelLinkWithAlias")
	if err := n.deps.Del(testArgs(testConf("host-local", ""), "c1")); err != nil {
		t.Errorf("DEL: %v", err)
	}
}

// An ipMasqBackend edited since the ADDs into a name no backend has (ADD
// rejects it): DEL and GC look in every backend, and remove the network's
// mappings and rules, instead of leaving a published port forwarding to a
// released address (and held against every later ADD).
func TestTeardownWithUnknownBackend(t *testing.T) {
	n := newFakeNode(testNetns)
	fp := n.deps.Ports.(*fakePorts)
	nft := firewall.NewFakePortsNamed(firewall.NFTablesName)
	fp.byName = map[string]*firewall.FakePorts{firewall.IPTablesName: firewall.NewFakePortsNamed(firewall.IPTablesName), firewall.NFTablesName: nft}
	ports := `,"capabilities":{"portMappings":true},"runtimeConfig":{"portMappings":[{"hostPort":8080,"containerPort":80}]}`
	good := testConf("host-local", `,"ipMasqBackend":"nftables"`+ports)
	typo := testConf("host-local", `,"ipMasqBackend":"nft"`+ports)
	gone := func(after string, err error) {
		t.Helper()
		if err != nil {
			t.Fatalf("%s: %v", after, err)
		}
		if l, _ := nft.List(); len(l) != 0 {
			t.Errorf("mappings left after %s: %+v", after, l)
		}
		if _, ok := n.fw.Network("net1"); ok {
			t.Errorf("the network's rules left after %s", after)
		}
	}
	addOK(t, n, testArgs(good, "c1"))
	gone("its last DEL", n.deps.Del(testArgs(typo, "c1")))
	addOK(t, n, testArgs(good, "c2"))
	gone("GC without valid attachments", n.deps.GC(gcArgs(typo, "")))
}

// A key of the wrong JSON type (edited since the ADDs, or in a
// configuration ADD rejected) does not fail DEL and GC, which never use it
// (a DEL failing for it would be retried for ever); GC's valid attachments
// must be right (read as none, every attachment would go), and a bridge
// name that is not a string is dropped (nothing of a bridge to remove).
func TestTeardownWithMistypedKey(t *testing.T) {
	n := newFakeNode(testNetns)
	addOK(t, n, testArgs(testConf("host-local", ""), "c1"))
	bad := testConf("host-local", `,"mtu":"1450","hairpinMode":"yes"`)
	if _, err := n.deps.Add(testArgs(bad, "c2")); err == nil {
		t.Fatal("ADD with mistyped keys succeeded")
	}
	if err := n.deps.Del(testArgs(bad, "c1")); err != nil {
		t.Errorf("DEL: %v", err)
	}
	if _, leased := n.ipam.leases["c1/eth0"]; leased {
		t.Error("DEL kept the lease")
	}
	addOK(t, n, testArgs(testConf("host-local", ""), "c3"))
	if err := n.deps.GC(gcArgs(bad, `{"containerID":"c3","ifname":"eth0"}`)); err != nil {
		t.Errorf("GC: %v", err)
	}
	if _, leased := n.ipam.leases["c3/eth0"]; !leased {
		t.Error("GC released a valid attachment's lease")
	}
	badValid := strings.Replace(string(gcArgs(bad, "").StdinData), `"cni.dev/valid-attachments":[]`, `"cni.dev/valid-attachments":"all"`, 1)
	if err := n.deps.GC(&skel.CmdArgs{Path: "/opt/cni/bin", StdinData: []byte(badValid)}); err == nil || !strings.Contains(err.Error(), "valid-attachments") {
		t.Errorf("GC with valid attachments that are no list: %v, want an error naming them", err)
	}
	if _, leased := n.ipam.leases["c3/eth0"]; !leased {
		t.Error("GC with unreadable valid attachments released a lease")
	}
	brNum := []byte(strings.Replace(string(testConf("host-local", "")), `"bridge":"cni0"`, `"bridge":5`, 1))
	if err := n.deps.Del(testArgs(brNum, "c3")); err != nil {
		t.Errorf("DEL with a bridge name that is a number: %v", err)
	}
}

// A MAC spoof check made while macspoofchk was on goes with the
// attachment's DEL after it was turned off: the host veth's name comes
// from the attachment, so a later ADD of the same container would be held
// to the old container's MAC.
func TestDelRemovesSpoofCheckTurnedOff(t *testing.T) {
	n := newFakeNode(testNetns)
	addOK(t, n, testArgs(testConf("host-local", ""), "c1"))
	if len(n.spoof.checks) != 1 {
		t.Fatalf("checks after ADD: %v", n.spoof.checks)
	}
	off := []byte(strings.Replace(string(testConf("host-local", "")), `"macspoofchk":true`, `"macspoofchk":false`, 1))
	if err := n.deps.Del(testArgs(off, "c1")); err != nil {
		t.Fatal(err)
	}
	if len(n.spoof.checks) != 0 {
		t.Errorf("checks after DEL with macspoofchk turned off: %v", n.spoof.checks)
	}
}

// GC keeps the addresses of a stale attachment whose interface it could
// not delete (handed to IPAM as valid), as DEL does: released, they could
// go to a new container while the old interface still has them. The next
// GC that deletes the interface releases them.
func TestGCKeepsLeaseWhileInterfaceLeft(t *testing.T) {
	n := newFakeNode(testNetns)
	conf := testConf("host-local", "")
	addOK(t, n, testArgs(conf, "c1"))
	n.links.fail["DelPortWithAlias"] = errors.New("netlink: no buffer space")
	if err := n.deps.GC(gcArgs(conf, "")); err == nil {
		t.Error("GC succeeded though a stale interface could not be deleted")
	}
	if _, leased := n.ipam.leases["c1/eth0"]; !leased {
		t.Error("GC released the lease of an attachment whose interface is still there")
	}
	delete(n.links.fail, "DelPortWithAlias")
	if err := n.deps.GC(gcArgs(conf, "")); err != nil {
		t.Errorf("GC: %v", err)
	}
	if _, leased := n.ipam.leases["c1/eth0"]; leased {
		t.Error("GC kept the lease once the interface was gone")
	}
}

// Two networks naming one bridge: the last DEL of one removes its rules
// (and forgets it) while the other's containers are on the bridge, when its
// IPAM (host-local in-process) holds no address of it any more; with a
// plugin run by exec, which cannot tell, the bridge answers and the rules
// stay (for GC).
func TestLastDelOfNetworkSharingBridge(t *testing.T) {
	for _, local := range []bool{true, false} {
		n := newFakeNode(testNetns, "/run/netns/c2")
		n.ipam.local, n.ipam.exec = local, !local
		net1 := testConf("host-local", "")
		net2 := []byte(strings.Replace(string(net1), `"name":"net1"`, `"name":"net2"`, 1))
		addOK(t, n, testArgs(net1, "c1"))
		a2 := testArgs(net2, "c2")
		a2.Netns = "/run/netns/c2"
		addOK(t, n, a2)
		if err := n.deps.Del(testArgs(net1, "c1")); err != nil {
			t.Fatal(err)
		}
		_, kept := n.fw.Network("net1")
		if local && kept {
			t.Error("host-local in-process: net1's rules left after its last DEL, beside net2's container")
		}
		if !local && !kept {
			t.Error("IPAM by exec: net1's rules removed while a container is on its bridge")
		}
		if _, ok := n.fw.Network("net2"); !ok {
			t.Errorf("net2's rules went with net1's last DEL (local %v)", local)
		}
	}
}

// vlanLinks names the VLAN gateway pair's port, which the fake's SetupVeth
// would otherwise leave unnamed.
type vlanLinks struct{ *fakeLinks }

func (v vlanLinks) SetupVeth(cfg link.VethConfig) (link.Interface, link.Interface, error) {
	if cfg.HostName == "" {
		cfg.HostName = "gwport"
	}
	return v.fakeLinks.SetupVeth(cfg)
}

// A failed ADD of a VLAN network removes the gateway pair it made, and then
// the bridge it made, as it does its veth; not a pair another container's
// network uses.
func TestAddUndoVlanGateway(t *testing.T) {
	n := newFakeNode(testNetns)
	n.deps.Links = vlanLinks{n.links}
	n.links.fail["EnableForwarding"] = errors.New("boom")
	if _, err := n.deps.Add(testArgs(testConf("host-local", `,"vlan":100`), "c1")); err == nil {
		t.Fatal("ADD succeeded")
	}
	if len(n.links.hosts) != 0 || len(n.links.bridges) != 0 {
		t.Errorf("left by the failed ADD: hosts %v, bridges %v", n.links.hosts, n.links.bridges)
	}
	delete(n.links.fail, "EnableForwarding")
	addOK(t, n, testArgs(testConf("host-local", `,"vlan":100`), "c1"))
	n.links.fail["EnableForwarding"] = errors.New("boom")
	n.links.netns["/run/netns/c2"] = true
	a2 := testArgs(testConf("host-local", `,"vlan":100`), "c2")
	a2.Netns = "/run/netns/c2"
	if _, err := n.deps.Add(a2); err == nil {
		t.Fatal("ADD succeeded")
	}
	if _, ok := n.links.hosts["gwport"]; !ok {
		t.Error("a failed ADD removed the gateway pair another container uses")
	}
}

// A key DEL and GC act on, of the wrong JSON type: ipam.type fails them as
// before (read as none, IPAM would be skipped and the lease kept for
// ever); ipMasq and the isolation keys let them through, and the
// network's rules stay while a container of it is attached (read as their
// zero value, they would remove a live network's rules).
func TestTeardownWithMistypedKeyTheyUse(t *testing.T) {
	for _, tc := range []struct {
		bad    string
		passes bool
	}{{`"ipMasq":"true"`, true}, {`"internal":"yes"`, true}, {`"ipam":"host-local"`, false}, {`"ipam":{"type":["host-local"]}`, false}} {
		bad := tc.bad
		n := newFakeNode(testNetns, "/run/netns/c2")
		good := string(testConf("host-local", ""))
		addOK(t, n, testArgs([]byte(good), "c1"))
		a2 := testArgs([]byte(good), "c2")
		a2.Netns = "/run/netns/c2"
		addOK(t, n, a2)
		conf := good
		switch {
		case strings.HasPrefix(bad, `"ipMasq"`):
			conf = strings.Replace(good, `"ipMasq":true`, bad, 1)
		case strings.HasPrefix(bad, `"ipam"`):
			conf = strings.Replace(good, `"ipam":{"type":"host-local"}`, bad, 1)
		default:
			conf = strings.Replace(good, `"ipMasq":true`, `"ipMasq":true,`+bad, 1)
		}
		if err := n.deps.Del(testArgs([]byte(conf), "c1")); (err == nil) != tc.passes {
			t.Errorf("%s: DEL error %v, want success %v", bad, err, tc.passes)
		}
		if _, ok := n.fw.Network("net1"); !ok {
			t.Errorf("%s: the network's rules went with c2 attached", bad)
		}
		if err := n.deps.GC(gcArgs([]byte(conf), `{"containerID":"c2","ifname":"eth0"}`)); (err == nil) != tc.passes {
			t.Errorf("%s: GC error %v, want success %v", bad, err, tc.passes)
		}
		if _, ok := n.fw.Network("net1"); !ok {
			t.Errorf("%s: GC removed the network's rules with c2 attached", bad)
		}
	}
}

// GC keeps the stale attachments' addresses when it could not look for
// their interfaces (the bridge's lookup failed).
func TestGCKeepsLeasesItCannotCheck(t *testing.T) {
	n := newFakeNode(testNetns)
	conf := testConf("host-local", "")
	addOK(t, n, testArgs(conf, "c1"))
	n.links.fail["BridgeByName"] = errors.New("netlink: no buffer space")
	_ = n.deps.GC(gcArgs(conf, ""))
	if _, leased := n.ipam.leases["c1/eth0"]; !leased {
		t.Error("GC released a lease while it could not look for its interface")
	}
}

// The bridge an ADD found may go before its port joins it (a failed ADD of
// the network removed the one it had made, before this ADD's host end was
// there to keep it): the ADD makes it again and attaches there.
func TestAddRemakesBridgeGoneBeforeAttach(t *testing.T) {
	n := newFakeNode(testNetns)
	n.links.beforeSetupVeth = func() {
		n.links.mu.Lock()
		delete(n.links.bridges, "cni0")
		n.links.mu.Unlock()
	}
	res := addOK(t, n, testArgs(testConf("host-local", ""), "c1"))
	br, ok := n.links.bridges["cni0"]
	if !ok {
		t.Fatal("no bridge after the ADD")
	}
	if h := n.links.hosts[res.Interfaces[1].Name]; h == nil || h.master != br.Index {
		t.Errorf("the host end is not a port of the bridge made again: %+v", h)
	}
}

// Published ports and a vlan do not go together (the rules name the
// bridge, not the VLAN's gateway pair): a configuration error naming vlan,
// before the node changes.
func TestPortsRefuseVlan(t *testing.T) {
	n := newFakeNode(testNetns)
	conf := testConf("host-local", `,"vlan":100,"capabilities":{"portMappings":true},"runtimeConfig":{"portMappings":[{"hostPort":8080,"containerPort":80}]}`)
	_, err := n.deps.Add(testArgs(conf, "c1"))
	var te *types.Error
	if !errors.As(err, &te) || te.Code != types.ErrInvalidNetworkConfig || !strings.Contains(te.Msg, "vlan") {
		t.Errorf("ADD with vlan and published ports: %v, want a configuration error naming vlan", err)
	}
	if len(n.links.bridges) != 0 || len(n.links.hosts) != 0 {
		t.Errorf("the node changed: %v %v", n.links.bridges, n.links.hosts)
	}
}

// A network name longer than any rule can carry (the CNI specification
// bounds none) is refused by an ADD that would make rules, so the network
// never has any: its DEL and GC have none to remove and succeed, whatever
// the configuration asks (the runtime would otherwise retry them for ever).
func TestTeardownNameTooLongForRules(t *testing.T) {
	long := "n" + strings.Repeat("a", 209)
	for extra, rules := range map[string]bool{
		`,"ipMasq":false`: false,
		`,"ipMasq":true`:  true,
		`,"ipMasq":true,"ipMasqBackend":"nftables"`:            true,
		`,"ipMasq":false,"ipMasqBackend":"iptables"`:           false,
		`,"ipMasq":false,"isolation":"strict"`:                 true,
		`,"ipMasq":"yes"`:                                      true, // refused by the parser (a DEL and GC case)
		`,"ipMasq":false,"capabilities":{"portMappings":true}`: false,
		`,"ipMasq":false,"capabilities":{"portMappings":true},"runtimeConfig":{"portMappings":[{"hostPort":8080,"containerPort":80}]}`: true,
	} {
		t.Run(extra, func(t *testing.T) {
			n := newFakeNode(testNetns)
			conf := strings.Replace(string(testConf("host-local", "")), `"net1"`, strconv.Quote(long), 1)
			conf = strings.Replace(conf, `"ipMasq":true,`, "", 1)
			conf = strings.TrimSuffix(conf, "}") + extra + "}"
			args := testArgs([]byte(conf), "c1")
			_, addErr := n.deps.Add(args)
			// Refused before the node changes when it would need rules.
			if (addErr != nil) != rules {
				t.Errorf("ADD: %v", addErr)
			}
			if e, ok := addErr.(*types.Error); addErr != nil && (!ok || e.Code != types.ErrInvalidNetworkConfig || !strings.Contains(e.Msg, "longer than 200") && !strings.Contains(extra, `"yes"`)) {
				t.Errorf("ADD: %v, want a configuration error naming the limit", addErr)
			}
			if addErr != nil && slices.ContainsFunc(n.links.calls, func(c string) bool { return strings.HasPrefix(c, "SetupVeth") || strings.HasPrefix(c, "EnsureBridge") }) {
				t.Errorf("the refused ADD changed the node: %v", n.links.calls)
			}
			if err := n.deps.Del(args); err != nil {
				t.Errorf("DEL (ADD: %v): %v", addErr, err)
			}
			if addErr == nil {
				addOK(t, n, args)
			}
			for _, valid := range []string{``, `{"containerID":"c1","ifname":"eth0"}`} {
				if err := n.deps.GC(gcArgs([]byte(conf), valid)); err != nil {
					t.Errorf("GC (valid: %s) (ADD: %v): %v", valid, addErr, err)
				}
			}
		})
	}
}
