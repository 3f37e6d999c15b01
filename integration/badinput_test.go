package integration

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/containernetworking/cni/pkg/types"

	"github.com/flatcni/plugins/pkg/ipam/disk"
)

// Configuration templates (see relConf).
const (
	relHL     = `{"cniVersion":"1.0.0","name":"@NET@","type":"host-local","ipam":{"type":"host-local","dataDir":"@DATA@",%s}}`
	relBridge = `{"cniVersion":"1.0.0","name":"@NET@","type":"bridge","bridge":"@BR@","isGateway":true,%s"ipam":{"type":"host-local","dataDir":"@DATA@","subnet":"10.77.0.0/24"}}`
)

func hlConf(ipam string) string { return strings.Replace(relHL, "%s", ipam, 1) }
func brConf(keys string) string { return strings.Replace(relBridge, "%s", keys, 1) }

// badCase is one invalid ADD (or DEL) and the CNI error it must give.
type badCase struct {
	name    string
	plugin  string // "bridge" or "host-local"
	command string // default ADD
	conf    string // template for relConf
	id      string // container ID (default "bad-1")
	ifname  string // default eth0
	netns   string // default: the container namespace; "-" for ""
	bridge  string // default br-bad
	env     []string
	// setup prepares the node before the "before" snapshot (e.g. fill a range).
	setup    func(t *testing.T, e *relEnv, c *badCase)
	wantCode uint
	wantMsg  []string // each must appear in the error message (the culprit)
	// wantOK: the command must succeed (a DEL or GC that must get through
	// what an ADD refuses), still changing nothing on the node.
	wantOK bool
	// after runs last: checks of its own, or a follow-up (the runtime's DEL).
	after func(t *testing.T, e *relEnv, c *badCase)
}

func (c *badCase) network() string {
	return "n-" + strings.NewReplacer(" ", "-", "/", "-").Replace(c.name)
}

func (c *badCase) bridgeName() string {
	if c.bridge != "" {
		return c.bridge
	}
	return "br-bad"
}

// TestBadInput feeds the built plugins invalid input through exec, as a
// runtime would, and checks the error code and message and that the node
// (links, addresses, routes, rules, leases) is unchanged.
func TestBadInput(t *testing.T) {
	e := newRelEnv(t)
	outer := t
	fakeDir := relFakeIPAM(t)
	victim := newOutside(t)
	fifo := filepath.Join(t.TempDir(), "fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	// runtimeDel is the runtime's DEL after a failed ADD: it must succeed
	// and leave the node as before the ADD (no rule, no bridge).
	runtimeDel := func(t *testing.T, e *relEnv, c *badCase) {
		conf := relConf(c.conf, e.dataDir, c.network(), c.bridgeName())
		before := e.node.Snapshot(t)
		if out, err := e.node.Exec(t, c.plugin, "DEL", "bad-1", e.cont.Path, "eth0", conf, c.env...); err != nil {
			t.Fatalf("DEL after the failed ADD: %v\n%s", err, out)
		}
		relSettle(t, e.node, c.bridgeName())
		RequireSame(t, before, e.node.Snapshot(t))
	}
	// warmMasq runs a good ADD and DEL with ipMasq on a network of its own.
	warmMasq := func(t *testing.T, e *relEnv, c *badCase) {
		conf := relConf(brConf(`"ipMasq":true,`), e.dataDir, "warm-masq", "br-warmm")
		for _, cmd := range []string{"ADD", "DEL"} {
			if out, err := e.node.Exec(t, "bridge", cmd, "warm", e.cont.Path, "eth9", conf); err != nil {
				t.Fatalf("warm-up %s: %v\n%s", cmd, err, out)
			}
		}
		relSettle(t, e.node, "br-warmm")
	}
	// plantCase: an ADD of host-local with the entry rel of the network's
	// folder ("" for the folder itself) replaced by a symbolic link to
	// target, or a FIFO when target is "". The ADD fails with code 5
	// naming the entry (wantMsg; nil: the folder's path); then a DEL of
	// the ADD's container and of the holder of a lease made before both
	// succeed, and the holder's lease is gone.
	plantCase := func(name, rel, target string, wantMsg []string) badCase {
		c := badCase{name: name, plugin: "host-local", conf: hlConf(`"subnet":"10.66.0.0/24"`), wantCode: types.ErrIOFailure, wantMsg: wantMsg}
		c.setup = func(t *testing.T, e *relEnv, c *badCase) {
			dir := filepath.Join(e.dataDir, c.network())
			conf := relConf(c.conf, e.dataDir, c.network(), "")
			if out, err := e.node.Exec(t, "host-local", "ADD", "holder", e.cont.Path, "eth0", conf); err != nil {
				t.Fatalf("holder ADD: %v\n%s", err, out)
			}
			path := filepath.Join(dir, rel)
			if rel == "" { // keep the holder's lease aside: nothing can release it then
				if err := os.Rename(dir, dir+".aside"); err != nil {
					t.Fatal(err)
				}
				c.wantMsg = []string{path, "symbolic link"}
			}
			if err := os.RemoveAll(path); err != nil {
				t.Fatal(err)
			}
			var err error
			if target == "" {
				err = syscall.Mkfifo(path, 0o600)
			} else {
				err = os.Symlink(target, path)
			}
			if err != nil {
				t.Fatal(err)
			}
		}
		c.after = func(t *testing.T, e *relEnv, c *badCase) {
			dir := filepath.Join(e.dataDir, c.network())
			conf := relConf(c.conf, e.dataDir, c.network(), "")
			for _, id := range []string{"bad-1", "holder"} {
				if out, err := e.node.Exec(t, "host-local", "DEL", id, e.cont.Path, "eth0", conf); err != nil {
					t.Errorf("DEL %s: %v\n%s", id, err, out)
				}
			}
			// (disk.ReadLeases, not relLeasesOf: it would block on a FIFO.)
			leases, _ := disk.ReadLeases(dir)
			for _, l := range leases {
				if rel != "" && l.ContainerID == "holder" {
					t.Errorf("DEL left the holder's lease %s", l.Addr)
				}
			}
		}
		return c
	}
	notNetns := filepath.Join(t.TempDir(), "not-a-netns")
	if err := os.WriteFile(notNetns, nil, 0o644); err != nil {
		t.Fatal(err)
	}

	// addHolder takes the only free address of a network for another container.
	addHolder := func(plugin string) func(t *testing.T, e *relEnv, c *badCase) {
		return func(t *testing.T, e *relEnv, c *badCase) {
			conf := relConf(c.conf, e.dataDir, c.network(), c.bridgeName())
			holder := NewNetns(outer, "holder") // lives as long as the node: its port keeps the bridge's carrier steady
			if out, err := e.node.Exec(t, plugin, "ADD", "holder", holder.Path, "eth0", conf); err != nil {
				t.Fatalf("holder ADD: %v\n%s", err, out)
			}
		}
	}
	// warm runs one good ADD and DEL first, so that the bridge exists (a
	// failed first ADD leaves the bridge, shared by the network, as the
	// reference does).
	warm := func(t *testing.T, e *relEnv, c *badCase) {
		conf := relConf(brConf(""), e.dataDir, "warm", c.bridgeName())
		if c.bridge != "" {
			conf = relConf(c.conf, e.dataDir, c.network(), c.bridgeName())
		}
		if out, err := e.node.Exec(t, "bridge", "ADD", "warm", e.cont.Path, "eth9", conf); err != nil {
			t.Fatalf("warm-up ADD: %v\n%s", err, out)
		}
		if out, err := e.node.Exec(t, "bridge", "DEL", "warm", e.cont.Path, "eth9", conf); err != nil {
			t.Fatalf("warm-up DEL: %v\n%s", err, out)
		}
		relSettle(t, e.node, c.bridgeName())
	}
	both := func(fs ...func(t *testing.T, e *relEnv, c *badCase)) func(t *testing.T, e *relEnv, c *badCase) {
		return func(t *testing.T, e *relEnv, c *badCase) {
			for _, f := range fs {
				f(t, e, c)
			}
		}
	}
	goodHL := hlConf(`"subnet":"10.66.0.0/24"`)
	tiny := `"subnet":"10.77.0.0/30"` // one address besides the gateway

	cases := []badCase{
		// Undecodable input: 6.
		{name: "hl truncated json", plugin: "host-local", conf: goodHL[:40], wantCode: types.ErrDecodingFailure, wantMsg: []string{"network config"}},
		{name: "hl empty stdin", plugin: "host-local", conf: "", wantCode: types.ErrDecodingFailure, wantMsg: []string{"network config"}},
		{name: "hl not an object", plugin: "host-local", conf: `[1,2,3]`, wantCode: types.ErrDecodingFailure, wantMsg: []string{"network config"}},
		{name: "hl cniVersion a number", plugin: "host-local", conf: `{"cniVersion":1,"name":"x","ipam":{"subnet":"10.0.0.0/24"}}`, wantCode: types.ErrDecodingFailure, wantMsg: []string{"cniVersion"}},
		{name: "bridge truncated json", plugin: "bridge", conf: brConf("")[:60], wantCode: types.ErrDecodingFailure, wantMsg: []string{"network config"}},
		{name: "bridge garbage", plugin: "bridge", conf: "\x00\xff not json", wantCode: types.ErrDecodingFailure, wantMsg: []string{"network config"}},
		{name: "bridge DEL truncated json", plugin: "bridge", command: "DEL", conf: brConf("")[:60], wantCode: types.ErrDecodingFailure, wantMsg: []string{"network config"}},

		// Version: 1.
		{name: "hl unknown cniVersion", plugin: "host-local", conf: strings.Replace(goodHL, "1.0.0", "9.9.9", 1), wantCode: types.ErrIncompatibleCNIVersion, wantMsg: []string{"incompatible CNI versions"}},
		{name: "bridge unknown cniVersion", plugin: "bridge", conf: strings.Replace(brConf(""), "1.0.0", "2.0.0", 1), wantCode: types.ErrIncompatibleCNIVersion, wantMsg: []string{"incompatible CNI versions"}},

		// Environment: 4.
		{name: "hl container ID with path", plugin: "host-local", conf: goodHL, id: "../../etc", wantCode: types.ErrInvalidEnvironmentVariables, wantMsg: []string{`CNI_CONTAINERID "../../etc"`, "containerID"}},
		{name: "bridge container ID with slash", plugin: "bridge", conf: brConf(""), id: "a/b", wantCode: types.ErrInvalidEnvironmentVariables, wantMsg: []string{`CNI_CONTAINERID "a/b"`, "containerID"}},
		{name: "bridge empty container ID", plugin: "bridge", conf: brConf(""), env: []string{"CNI_CONTAINERID="}, wantCode: types.ErrInvalidEnvironmentVariables, wantMsg: []string{"CNI_CONTAINERID"}},
		{name: "bridge ifname too long", plugin: "bridge", conf: brConf(""), ifname: "eth0123456789abcd", wantCode: types.ErrInvalidEnvironmentVariables, wantMsg: []string{`CNI_IFNAME "eth0123456789abcd"`, "interface name", "long"}},
		{name: "bridge ifname with slash", plugin: "bridge", conf: brConf(""), ifname: "eth/0", wantCode: types.ErrInvalidEnvironmentVariables, wantMsg: []string{`CNI_IFNAME "eth/0"`, "interface name", "/"}},
		{name: "hl ifname with slash", plugin: "host-local", conf: goodHL, ifname: "../x", wantCode: types.ErrInvalidEnvironmentVariables, wantMsg: []string{`CNI_IFNAME "../x"`, "interface name"}},
		{name: "hl ifname dotdot", plugin: "host-local", conf: goodHL, ifname: "..", wantCode: types.ErrInvalidEnvironmentVariables, wantMsg: []string{`CNI_IFNAME ".."`, "interface name"}},
		{name: "bridge empty netns", plugin: "bridge", conf: brConf(""), netns: "-", wantCode: types.ErrInvalidEnvironmentVariables, wantMsg: []string{"CNI_NETNS"}},
		{name: "bridge unknown command", plugin: "bridge", conf: brConf(""), env: []string{"CNI_COMMAND=FROB"}, wantCode: types.ErrInvalidEnvironmentVariables, wantMsg: []string{"FROB"}},
		{name: "hl bad CNI_ARGS", plugin: "host-local", conf: goodHL, env: []string{"CNI_ARGS=garbage"}, wantCode: types.ErrInvalidEnvironmentVariables, wantMsg: []string{"garbage"}},
		{name: "hl bad CNI_ARGS IP", plugin: "host-local", conf: goodHL, env: []string{"CNI_ARGS=IP=10.66.0.300"}, wantCode: types.ErrInvalidEnvironmentVariables, wantMsg: []string{"10.66.0.300"}},
		{name: "bridge bad CNI_ARGS IP", plugin: "bridge", conf: brConf(""), env: []string{"CNI_ARGS=IgnoreUnknown=1;IP=1.2.3"}, wantCode: types.ErrInvalidEnvironmentVariables, wantMsg: []string{"IP=1.2.3"}},

		// Namespace: 8.
		{name: "bridge missing netns", plugin: "bridge", conf: brConf(""), netns: "/var/run/netns/flatcni-it-does-not-exist", wantCode: types.ErrInvalidNetNS, wantMsg: []string{"flatcni-it-does-not-exist"}},
		{name: "bridge netns not a namespace", plugin: "bridge", conf: brConf(""), netns: notNetns, wantCode: types.ErrInvalidNetNS, wantMsg: []string{notNetns}},
		{name: "bridge netns is a directory", plugin: "bridge", conf: brConf(""), netns: "/", wantCode: types.ErrInvalidNetNS, wantMsg: []string{`"/"`}},
		// The node's own namespace: refused before anything changes (skel
		// would only say so after ADD or DEL had run).
		{name: "bridge netns is the node", plugin: "bridge", conf: brConf(""), netns: e.node.Path, wantCode: types.ErrInvalidNetNS, wantMsg: []string{e.node.Path, "should not be the same"}},
		{name: "bridge DEL netns is the node", plugin: "bridge", command: "DEL", conf: brConf(""), netns: e.node.Path, wantCode: types.ErrInvalidNetNS, wantMsg: []string{e.node.Path, "should not be the same"}},
		// host-local too, before it reserves (skel would refuse only after
		// the lease was written and the result printed).
		{name: "hl netns is the node", plugin: "host-local", conf: goodHL, netns: e.node.Path, wantCode: types.ErrInvalidNetNS, wantMsg: []string{e.node.Path, "should not be the same"},
			after: func(t *testing.T, e *relEnv, c *badCase) {
				if leases := leaseFiles(t, filepath.Join(e.dataDir, c.network())); len(leases) > 0 {
					t.Errorf("refused ADD left leases: %v", leases)
				}
			}},

		// Invalid configuration: 7.
		{name: "hl missing name", plugin: "host-local", conf: strings.Replace(goodHL, `"name":"@NET@",`, "", 1), wantCode: types.ErrInvalidNetworkConfig, wantMsg: []string{"name"}},
		{name: "bridge missing name", plugin: "bridge", conf: strings.Replace(brConf(""), `"name":"@NET@",`, "", 1), wantCode: types.ErrInvalidNetworkConfig, wantMsg: []string{"name"}},
		{name: "hl network name with path", plugin: "host-local", conf: strings.Replace(goodHL, `"name":"@NET@"`, `"name":"../../etc"`, 1), wantCode: types.ErrInvalidNetworkConfig, wantMsg: []string{"../../etc"}},
		{name: "bridge network name with slash", plugin: "bridge", conf: strings.Replace(brConf(""), `"name":"@NET@"`, `"name":"a/b"`, 1), wantCode: types.ErrInvalidNetworkConfig, wantMsg: []string{"a/b"}},
		{name: "hl no ipam", plugin: "host-local", conf: `{"cniVersion":"1.0.0","name":"x"}`, wantCode: types.ErrInvalidNetworkConfig, wantMsg: []string{"ipam"}},
		{name: "hl subnet wrong type", plugin: "host-local", conf: hlConf(`"subnet":24`), wantCode: types.ErrInvalidNetworkConfig, wantMsg: []string{"subnet"}},
		{name: "hl ranges wrong type", plugin: "host-local", conf: hlConf(`"ranges":{"subnet":"10.0.0.0/24"}`), wantCode: types.ErrInvalidNetworkConfig, wantMsg: []string{"ranges"}},
		{name: "bridge mtu wrong type", plugin: "bridge", conf: brConf(`"mtu":"1500",`), wantCode: types.ErrInvalidNetworkConfig, wantMsg: []string{"mtu"}},
		{name: "bridge ipMasq wrong type", plugin: "bridge", conf: brConf(`"ipMasq":"yes",`), wantCode: types.ErrInvalidNetworkConfig, wantMsg: []string{"ipMasq"}},
		{name: "hl invalid CIDR", plugin: "host-local", conf: hlConf(`"subnet":"10.66.0.0/33"`), wantCode: types.ErrInvalidNetworkConfig, wantMsg: []string{"10.66.0.0/33"}},
		{name: "hl invalid range CIDR", plugin: "host-local", conf: hlConf(`"ranges":[[{"subnet":"10.66.0.0/24"}],[{"subnet":"fd00::zz/64"}]]`), wantCode: types.ErrInvalidNetworkConfig, wantMsg: []string{"ipam.ranges[1][0].subnet", "fd00::zz/64"}},
		{name: "hl subnet host bits", plugin: "host-local", conf: hlConf(`"subnet":"10.66.0.9/24"`), wantCode: types.ErrInvalidNetworkConfig, wantMsg: []string{"10.66.0.9/24"}},
		{name: "hl single address subnet", plugin: "host-local", conf: hlConf(`"subnet":"10.66.0.9/32"`), wantCode: types.ErrInvalidNetworkConfig, wantMsg: []string{"10.66.0.9/32"}},
		{name: "hl rangeStart outside subnet", plugin: "host-local", conf: hlConf(`"subnet":"10.66.0.0/24","rangeStart":"10.67.0.5"`), wantCode: types.ErrInvalidNetworkConfig, wantMsg: []string{"rangeStart", "10.67.0.5"}},
		{name: "hl rangeEnd outside subnet", plugin: "host-local", conf: hlConf(`"ranges":[[{"subnet":"10.66.0.0/24","rangeEnd":"10.66.1.0"}]]`), wantCode: types.ErrInvalidNetworkConfig, wantMsg: []string{"rangeEnd", "10.66.1.0"}},
		// A gateway outside the subnet is accepted, as by the reference.
		{name: "hl gateway not an address", plugin: "host-local", conf: hlConf(`"subnet":"10.66.0.0/24","gateway":"192.168.0.x"`), wantCode: types.ErrInvalidNetworkConfig, wantMsg: []string{"gateway", "192.168.0.x"}},
		{name: "hl rangeEnd before rangeStart", plugin: "host-local", conf: hlConf(`"subnet":"10.66.0.0/24","rangeStart":"10.66.0.50","rangeEnd":"10.66.0.40"`), wantCode: types.ErrInvalidNetworkConfig, wantMsg: []string{"10.66.0.40", "10.66.0.50"}},
		{name: "hl overlapping range sets", plugin: "host-local", conf: hlConf(`"ranges":[[{"subnet":"10.66.0.0/24"}],[{"subnet":"10.66.0.0/16"}]]`), wantCode: types.ErrInvalidNetworkConfig, wantMsg: []string{"ipam.ranges[1]", "overlaps"}},
		{name: "hl overlapping ranges in a set", plugin: "host-local", conf: hlConf(`"ranges":[[{"subnet":"10.66.0.0/24"},{"subnet":"10.66.0.0/25"}]]`), wantCode: types.ErrInvalidNetworkConfig, wantMsg: []string{"ipam.ranges[0]", "overlaps"}},
		{name: "hl mixed families in a set", plugin: "host-local", conf: hlConf(`"ranges":[[{"subnet":"10.66.0.0/24"},{"subnet":"fd00::/64"}]]`), wantCode: types.ErrInvalidNetworkConfig, wantMsg: []string{"ipam.ranges[0]"}},
		{name: "hl no ranges", plugin: "host-local", conf: hlConf(`"ranges":[]`), wantCode: types.ErrInvalidNetworkConfig, wantMsg: []string{"ipam.ranges"}},
		{name: "hl route bad dst", plugin: "host-local", conf: hlConf(`"subnet":"10.66.0.0/24","routes":[{"dst":"0.0.0.0/0"},{"dst":"300.0.0.0/8"}]`), wantCode: types.ErrInvalidNetworkConfig, wantMsg: []string{"ipam.routes[1]"}},
		{name: "hl requested IP outside ranges", plugin: "host-local", conf: goodHL, env: []string{"CNI_ARGS=IP=10.99.0.5"}, wantCode: types.ErrInvalidNetworkConfig, wantMsg: []string{"10.99.0.5"}},
		{name: "hl requested gateway", plugin: "host-local", conf: goodHL, env: []string{"CNI_ARGS=IP=10.66.0.1"}, wantCode: types.ErrInvalidNetworkConfig, wantMsg: []string{"10.66.0.1", "gateway"}},
		{name: "hl requested runtimeConfig IP outside", plugin: "host-local", conf: strings.Replace(goodHL, `"type":"host-local",`, `"type":"host-local","runtimeConfig":{"ips":["10.99.0.7/24"]},`, 1), wantCode: types.ErrInvalidNetworkConfig, wantMsg: []string{"10.99.0.7"}},
		{name: "hl two requested in one set", plugin: "host-local", conf: goodHL, env: []string{"CNI_ARGS=IP=10.66.0.5,10.66.0.6"}, wantCode: types.ErrInvalidNetworkConfig, wantMsg: []string{"10.66.0.5", "10.66.0.6"}},
		{name: "bridge bad mtu", plugin: "bridge", conf: brConf(`"mtu":20,`), wantCode: types.ErrInvalidNetworkConfig, wantMsg: []string{"mtu", "20"}},
		{name: "bridge huge mtu", plugin: "bridge", conf: brConf(`"mtu":70000,`), wantCode: types.ErrInvalidNetworkConfig, wantMsg: []string{"mtu", "70000"}},
		{name: "bridge negative mtu", plugin: "bridge", conf: brConf(`"mtu":-1,`), wantCode: types.ErrInvalidNetworkConfig, wantMsg: []string{"mtu", "-1"}},
		{name: "bridge unknown masquerade backend", plugin: "bridge", conf: brConf(`"ipMasq":true,"ipMasqBackend":"pf",`), wantCode: types.ErrInvalidNetworkConfig, wantMsg: []string{"ipMasqBackend", "pf"}},
		{name: "bridge empty masquerade backend", plugin: "bridge", conf: brConf(`"ipMasq":true,"ipMasqBackend":"",`), wantCode: types.ErrInvalidNetworkConfig, wantMsg: []string{"ipMasqBackend"}},
		{name: "bridge bad nonMasqueradeCIDRs", plugin: "bridge", conf: brConf(`"ipMasq":true,"nonMasqueradeCIDRs":["10.0.0.0/8","nope"],`), wantCode: types.ErrInvalidNetworkConfig, wantMsg: []string{"nonMasqueradeCIDRs[1]", "nope"}},
		{name: "bridge name too long", plugin: "bridge", conf: brConf(`"bridge":"br0123456789abcdef",`), wantCode: types.ErrInvalidNetworkConfig, wantMsg: []string{"bridge", "br0123456789abcdef"}},
		{name: "bridge name with slash", plugin: "bridge", conf: brConf(`"bridge":"br/0",`), wantCode: types.ErrInvalidNetworkConfig, wantMsg: []string{"br/0"}},
		{name: "bridge hairpin with promisc", plugin: "bridge", conf: brConf(`"hairpinMode":true,"promiscMode":true,`), wantCode: types.ErrInvalidNetworkConfig, wantMsg: []string{"hairpinMode", "promiscMode"}},
		{name: "bridge vlan out of range", plugin: "bridge", conf: brConf(`"vlan":5000,`), wantCode: types.ErrInvalidNetworkConfig, wantMsg: []string{"5000"}},
		{name: "bridge vlan without kernel support", plugin: "bridge", conf: brConf(`"vlan":100,`), wantCode: types.ErrInvalidNetworkConfig, wantMsg: []string{"vlan"}},
		{name: "bridge bad mac in CNI_ARGS", plugin: "bridge", conf: brConf(""), env: []string{"CNI_ARGS=MAC=zz:zz"}, wantCode: types.ErrInvalidEnvironmentVariables, wantMsg: []string{"MAC", "zz:zz"}},
		{name: "bridge multicast mac", plugin: "bridge", conf: brConf(`"runtimeConfig":{"mac":"01:00:5e:00:00:01"},`), wantCode: types.ErrInvalidNetworkConfig, wantMsg: []string{"runtimeConfig.mac", "multicast"}},
		{name: "bridge ipam with container interface disabled", plugin: "bridge", conf: brConf(`"disableContainerInterface":true,`), wantCode: types.ErrInvalidNetworkConfig, wantMsg: []string{"disableContainerInterface"}},
		{name: "bridge unknown IPAM binary", plugin: "bridge", conf: strings.Replace(brConf(""), `"type":"host-local"`, `"type":"no-such-ipam"`, 1), wantCode: types.ErrInvalidNetworkConfig, wantMsg: []string{"no-such-ipam"}},
		{name: "bridge IPAM type with path", plugin: "bridge", conf: strings.Replace(brConf(""), `"type":"host-local"`, `"type":"../bin/host-local"`, 1), wantCode: types.ErrInvalidNetworkConfig, wantMsg: []string{"../bin/host-local"}},
		{name: "bridge IPAM invalid config", plugin: "bridge", conf: strings.Replace(brConf(""), `10.77.0.0/24`, `10.77.0.0/99`, 1), setup: warm, wantCode: types.ErrInvalidNetworkConfig, wantMsg: []string{"host-local", "10.77.0.0/99"}},
		{name: "bridge name taken by a non-bridge", plugin: "bridge", conf: brConf(`"bridge":"taken0",`),
			setup: func(t *testing.T, e *relEnv, c *badCase) {
				e.node.MustRun(t, "ip", "link", "add", "taken0", "type", "veth", "peer", "name", "taken0p")
			},
			wantCode: types.ErrInvalidNetworkConfig, wantMsg: []string{"taken0", "not a bridge"}},

		// Try again later: 11.
		{name: "hl exhausted range", plugin: "host-local", conf: hlConf(tiny), setup: addHolder("host-local"), wantCode: types.ErrTryAgainLater, wantMsg: []string{"n-hl-exhausted-range", "no free address"}},
		{name: "hl requested IP taken", plugin: "host-local", conf: hlConf(tiny), env: []string{"CNI_ARGS=IP=10.77.0.2"}, setup: addHolder("host-local"), wantCode: types.ErrTryAgainLater, wantMsg: []string{"10.77.0.2", "in use"}},
		{name: "bridge IPAM exhausted range", plugin: "bridge", conf: strings.Replace(brConf(""), "10.77.0.0/24", "10.77.0.0/30", 1), bridge: "br-tiny", setup: both(warm, addHolder("bridge")), wantCode: types.ErrTryAgainLater, wantMsg: []string{"host-local", "no free address"}},
		{name: "bridge fake IPAM fails", plugin: "bridge", conf: strings.Replace(brConf(""), `"type":"host-local"`, `"type":"fail-ipam"`, 1), env: []string{"CNI_PATH=" + fakeDir + ":" + e.node.Bin}, setup: warm, wantCode: types.ErrTryAgainLater, wantMsg: []string{"fail-ipam", "fake pool empty"}},

		// I/O: 5.
		{name: "hl dataDir is a file", plugin: "host-local", conf: strings.Replace(goodHL, "@DATA@", notNetns, 1), wantCode: types.ErrIOFailure, wantMsg: []string{notNetns}},
		{name: "hl resolvConf missing", plugin: "host-local", conf: hlConf(`"subnet":"10.66.0.0/24","resolvConf":"/nonexistent/resolv.conf"`), wantCode: types.ErrIOFailure, wantMsg: []string{"/nonexistent/resolv.conf"}},
		// resolvConf must be a regular file: a FIFO is refused, never waited on.
		{name: "hl resolvConf a FIFO", plugin: "host-local", conf: hlConf(`"subnet":"10.66.0.0/24","resolvConf":"` + fifo + `"`), wantCode: types.ErrIOFailure, wantMsg: []string{fifo, "not a regular file"}},
		{name: "hl resolvConf a directory", plugin: "host-local", conf: hlConf(`"subnet":"10.66.0.0/24","resolvConf":"/"`), wantCode: types.ErrIOFailure, wantMsg: []string{"resolvConf", "not a regular file"}},

		// The lease store never leaves dataDir/<network>: an entry that is
		// a symbolic link (to files outside it, which must stay as they
		// are) or a FIFO is refused by ADD, naming it, never followed or
		// waited on; DEL still releases the leases (see plantCase).
		plantCase("hl network folder a symlink", "", victim.dir, nil),
		plantCase("hl .flatcni a symlink", ".flatcni", victim.dir, []string{".flatcni", "symbolic link"}),
		plantCase("hl index folder a symlink", ".flatcni/a", victim.dir, []string{".flatcni/a", "symbolic link"}),
		plantCase("hl stamp a symlink", ".flatcni/stamp", victim.file, []string{".flatcni/stamp", "symbolic link"}),
		plantCase("hl stamp a FIFO", ".flatcni/stamp", "", []string{".flatcni/stamp", "not a regular file"}),
		plantCase("hl last_reserved_ip a symlink", "last_reserved_ip.0", victim.file, []string{"last_reserved_ip.0", "symbolic link"}),
		plantCase("hl last_reserved_ip a FIFO", "last_reserved_ip.0", "", []string{"last_reserved_ip.0", "not a regular file"}),
		plantCase("hl lock a symlink", "lock", victim.file, []string{"/lock", "symbolic link"}),
		plantCase("hl lock a FIFO", "lock", "", []string{"/lock", "not a regular file"}),

		// A failed ADD leaves the node as it was, the bridge it created included.
		{name: "bridge IPAM invalid config on a fresh bridge", plugin: "bridge", bridge: "br-fresh1", conf: strings.Replace(brConf(""), `10.77.0.0/24`, `10.77.0.0/99`, 1), wantCode: types.ErrInvalidNetworkConfig, wantMsg: []string{"host-local", "10.77.0.0/99"}},
		{name: "bridge IPAM rangeStart outside subnet on a fresh bridge", plugin: "bridge", bridge: "br-fresh2", conf: strings.Replace(brConf(""), `"subnet":"10.77.0.0/24"`, `"subnet":"10.77.0.0/24","rangeStart":"10.78.0.5"`, 1), wantCode: types.ErrInvalidNetworkConfig, wantMsg: []string{"rangeStart", "10.78.0.5"}},
		// With ipMasq the rules are made while IPAM runs; a failed ADD and
		// the runtime's DEL leave none.
		// (warmMasq first: the node's iptables and nftables tables exist
		// once any network has used them, and stay.)
		{name: "bridge ipMasq IPAM fails on a fresh bridge", plugin: "bridge", bridge: "br-fresh3", conf: strings.Replace(brConf(`"ipMasq":true,`), `"type":"host-local"`, `"type":"fail-ipam"`, 1), env: []string{"CNI_PATH=" + fakeDir + ":" + e.node.Bin}, setup: warmMasq, wantCode: types.ErrTryAgainLater, wantMsg: []string{"fail-ipam", "fake pool empty"}},
		// Fails after IPAM and the rules (the error code is not one the
		// README lists: the route is refused by the kernel).
		{name: "bridge ipMasq bad route on a fresh bridge", plugin: "bridge", bridge: "br-fresh4", conf: strings.Replace(brConf(`"ipMasq":true,`), `"subnet":"10.77.0.0/24"`, `"subnet":"10.77.0.0/24","routes":[{"dst":"10.200.0.0/16","gw":"192.0.2.1"}]`, 1), setup: warmMasq, wantCode: types.ErrInternal, wantMsg: []string{"192.0.2.1"}, after: runtimeDel},
		{name: "bridge all-zero mac", plugin: "bridge", conf: brConf(`"runtimeConfig":{"mac":"00:00:00:00:00:00"},`), wantCode: types.ErrInvalidNetworkConfig, wantMsg: []string{"runtimeConfig.mac", "all-zero"}},
		{name: "bridge multicast mac in CNI_ARGS", plugin: "bridge", conf: brConf(""), env: []string{"CNI_ARGS=MAC=33:33:00:00:00:01"}, wantCode: types.ErrInvalidEnvironmentVariables, wantMsg: []string{"MAC", "multicast"}},
		{name: "bridge netns a mount namespace", plugin: "bridge", conf: brConf(""), netns: "/proc/self/ns/mnt", wantCode: types.ErrInvalidNetNS, wantMsg: []string{"/proc/self/ns/mnt", "not a network namespace"}},
		{name: "bridge netns a procfs file", plugin: "bridge", conf: brConf(""), netns: "/proc/self/status", wantCode: types.ErrInvalidNetNS, wantMsg: []string{"/proc/self/status", "not a network namespace"}},
		{name: "bridge netns a FIFO", plugin: "bridge", conf: brConf(""), netns: fifo, wantCode: types.ErrInvalidNetNS, wantMsg: []string{fifo}},
		// DEL gets through a CNI_NETNS that is not a namespace (nothing of
		// ours can be in it), without waiting on a FIFO (skel's own check,
		// after the verb, opens it blocking: ours stats it).
		{name: "bridge DEL netns a FIFO", plugin: "bridge", command: "DEL", conf: brConf(""), netns: fifo, wantOK: true},
		// A key asking for rules of the wrong type (edited since the
		// ADDs): DEL gets through, keeping the rules while containers
		// of the network are attached (pkg/bridge's unit tests).
		{name: "bridge DEL ipMasq wrong type", plugin: "bridge", command: "DEL", conf: brConf(`"ipMasq":"yes",`), wantOK: true},
		{name: "bridge DEL icc wrong type", plugin: "bridge", command: "DEL", conf: brConf(`"icc":"no",`), wantOK: true},
		{name: "bridge DEL netns a file", plugin: "bridge", command: "DEL", conf: brConf(""), netns: notNetns, wantOK: true},
		{name: "hl DEL netns a FIFO", plugin: "host-local", command: "DEL", conf: goodHL, netns: fifo, wantOK: true},
	}

	for i := range cases {
		c := &cases[i]
		t.Run(c.name, func(t *testing.T) {
			if c.setup != nil {
				c.setup(t, e, c)
			}
			network := c.network()
			conf := relConf(c.conf, e.dataDir, network, c.bridgeName())
			id, ifname, netns, command := "bad-1", "eth0", e.cont.Path, "ADD"
			if c.id != "" {
				id = c.id
			}
			if c.ifname != "" {
				ifname = c.ifname
			}
			if c.netns == "-" {
				netns = ""
			} else if c.netns != "" {
				netns = c.netns
			}
			if c.command != "" {
				command = c.command
			}
			relSettle(t, e.node, c.bridgeName())
			before := e.node.Snapshot(t)
			contBefore := e.cont.MustRun(t, "ip", "-o", "link", "show")
			victimBefore := victim.snapshot(t)
			out, err := e.node.Exec(t, c.plugin, command, id, netns, ifname, conf, c.env...)
			switch {
			case c.wantOK && err != nil:
				t.Fatalf("%s %s failed, want success: %v", c.plugin, command, err)
			case !c.wantOK && err == nil:
				t.Fatalf("%s %s succeeded, want error code %d:\n%s", c.plugin, command, c.wantCode, out)
			}
			relSettle(t, e.node, c.bridgeName())
			if !c.wantOK {
				ce := CNIError(t, out)
				if ce.Code != c.wantCode {
					t.Errorf("error code %d, want %d: %s", ce.Code, c.wantCode, ce.Error())
				}
				for _, m := range c.wantMsg {
					if !strings.Contains(ce.Error(), m) {
						t.Errorf("error %q does not name %q", ce.Error(), m)
					}
				}
			}
			RequireSame(t, before, e.node.Snapshot(t))
			if c.after != nil {
				c.after(t, e, c)
			}
			if got := victim.snapshot(t); got != victimBefore {
				t.Errorf("files outside the store changed:\nbefore:\n%s\nafter:\n%s", victimBefore, got)
			}
			if after := e.cont.MustRun(t, "ip", "-o", "link", "show"); after != contBefore {
				t.Errorf("container namespace changed:\nbefore:\n%s\nafter:\n%s", contBefore, after)
			}
			// (A network folder that is not a directory is no store: nothing to check.)
			if fi, err := os.Lstat(filepath.Join(e.dataDir, network)); err == nil && !fi.IsDir() {
				return
			}
			if probs := relLeaseProblems(filepath.Join(e.dataDir, network)); len(probs) > 0 {
				t.Errorf("lease store: %s", strings.Join(probs, "; "))
			}
		})
	}
}

// TestBadInputIPAMFailsAfterReserve makes the ADD fail after IPAM handed out
// an address (the IPAM result holds a route the container cannot use): the
// bridge plugin must give the address back (IPAM DEL) and remove the veth.
func TestBadInputIPAMFailsAfterReserve(t *testing.T) {
	e := newRelEnv(t)
	conf := relConf(strings.Replace(brConf(""), `"subnet":"10.77.0.0/24"`,
		`"subnet":"10.77.0.0/24","routes":[{"dst":"10.200.0.0/16","gw":"192.0.2.1"}]`, 1), e.dataDir, "late", "br-late")
	warmConf := relConf(brConf(""), e.dataDir, "late", "br-late")
	if out, err := e.node.Exec(t, "bridge", "ADD", "warm", e.cont.Path, "eth9", warmConf); err != nil {
		t.Fatalf("warm-up ADD: %v\n%s", err, out)
	}
	if out, err := e.node.Exec(t, "bridge", "DEL", "warm", e.cont.Path, "eth9", warmConf); err != nil {
		t.Fatalf("warm-up DEL: %v\n%s", err, out)
	}
	relSettle(t, e.node, "br-late")
	before := e.node.Snapshot(t)
	contBefore := e.cont.MustRun(t, "ip", "-o", "link", "show")
	out, err := e.node.Exec(t, "bridge", "ADD", "late-1", e.cont.Path, "eth0", conf)
	if err == nil {
		t.Fatalf("ADD with an unreachable route gateway succeeded:\n%s", out)
	}
	relSettle(t, e.node, "br-late")
	ce := CNIError(t, out)
	if !strings.Contains(ce.Error(), "192.0.2.1") && !strings.Contains(ce.Error(), "10.200.0.0/16") {
		t.Errorf("error %q names neither the route nor its gateway", ce.Error())
	}
	RequireSame(t, before, e.node.Snapshot(t))
	if after := e.cont.MustRun(t, "ip", "-o", "link", "show"); after != contBefore {
		t.Errorf("container namespace changed:\nbefore:\n%s\nafter:\n%s", contBefore, after)
	}
	if probs := relLeaseProblems(filepath.Join(e.dataDir, "late")); len(probs) > 0 {
		t.Errorf("lease store: %s", strings.Join(probs, "; "))
	}
}

// relFakeIPAM writes a directory holding "fail-ipam", an IPAM plugin that
// always fails with "try again later".
func relFakeIPAM(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	script := "#!/bin/sh\ncat >/dev/null\n" +
		`echo '{"cniVersion":"1.0.0","code":11,"msg":"fake pool empty"}'` + "\nexit 1\n"
	if err := os.WriteFile(filepath.Join(dir, "fail-ipam"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	if _, err := exec.LookPath("sh"); err != nil {
		t.Skip("no sh for the fake IPAM plugin")
	}
	return dir
}

// outside is a directory outside every lease store, holding a file and a
// folder, which symbolic links planted in a store point to: no plugin may
// change it.
type outside struct {
	dir, file string
}

func newOutside(t *testing.T) outside {
	t.Helper()
	o := outside{dir: t.TempDir()}
	o.file = filepath.Join(o.dir, "precious")
	if err := os.WriteFile(o.file, []byte("keep me\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(o.dir, "sub"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(o.dir, "sub", "10.66.0.2"), []byte("someone\r\neth0"), 0o644); err != nil {
		t.Fatal(err)
	}
	return o
}

// snapshot lists every entry under the directory with its mode and content.
func (o outside) snapshot(t *testing.T) string {
	t.Helper()
	var b strings.Builder
	err := filepath.Walk(o.dir, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		fmt.Fprintf(&b, "%s %s %d", strings.TrimPrefix(p, o.dir), fi.Mode(), fi.ModTime().UnixNano())
		if fi.Mode().IsRegular() {
			content, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			fmt.Fprintf(&b, " %q", content)
		}
		b.WriteByte('\n')
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return b.String()
}

// TestBadIndex damages the lease index by hand (it is a cache): an entry
// deleted, emptied, filled with garbage, or replaced by a symbolic link or
// a FIFO must not make DEL leave the lease, nor a repeated ADD hand the
// attachment a second address; nothing outside the store is touched.
func TestBadIndex(t *testing.T) {
	e := newRelEnv(t)
	victim := newOutside(t)
	damages := []struct {
		name   string
		damage func(t *testing.T, entry string)
	}{
		{"deleted", func(t *testing.T, entry string) { must(t, os.Remove(entry)) }},
		{"emptied", func(t *testing.T, entry string) { must(t, os.WriteFile(entry, nil, 0o600)) }},
		{"garbage", func(t *testing.T, entry string) { must(t, os.WriteFile(entry, []byte("\x00\xff garbage"), 0o600)) }},
		{"a symlink", func(t *testing.T, entry string) {
			must(t, os.Remove(entry))
			must(t, os.Symlink(victim.file, entry))
		}},
		{"a FIFO", func(t *testing.T, entry string) {
			must(t, os.Remove(entry))
			must(t, syscall.Mkfifo(entry, 0o600))
		}},
	}
	for i, d := range damages {
		t.Run(d.name, func(t *testing.T) {
			network := fmt.Sprintf("badindex-%d", i)
			dir := filepath.Join(e.dataDir, network)
			conf := relConf(hlConf(`"ranges":[[{"subnet":"10.66.0.0/24"}],[{"subnet":"fd66::/120"}]]`), e.dataDir, network, "")
			entry := filepath.Join(dir, ".flatcni", "a", "c1@eth0")
			exec := func(cmd, id string) string {
				t.Helper()
				out, err := e.node.Exec(t, "host-local", cmd, id, e.cont.Path, "eth0", conf)
				if err != nil {
					t.Fatalf("%s %s: %v\n%s", cmd, id, err, out)
				}
				if cmd != "ADD" {
					return ""
				}
				return fmt.Sprint(relAddrs(t, relResult(t, out)))
			}
			leasesOf := func(id string) []string {
				var out []string
				leases, _ := disk.ReadLeases(dir)
				for _, l := range leases {
					if l.ContainerID == id {
						out = append(out, l.Addr.String())
					}
				}
				return out
			}
			before := victim.snapshot(t)
			first := exec("ADD", "c1")
			exec("ADD", "c2")
			d.damage(t, entry)
			if again := exec("ADD", "c1"); again != first {
				t.Errorf("repeated ADD after the entry was %s gave %v, first %v", d.name, again, first)
			}
			if got := leasesOf("c1"); len(got) != 2 {
				t.Errorf("c1 holds %v, want two leases", got)
			}
			d.damage(t, entry)
			exec("DEL", "c1")
			if got := leasesOf("c1"); len(got) != 0 {
				t.Errorf("DEL after the entry was %s left %v", d.name, got)
			}
			if got := leasesOf("c2"); len(got) != 2 {
				t.Errorf("c2 holds %v, want its two leases", got)
			}
			exec("DEL", "c2")
			if probs := relLeaseProblems(dir); len(probs) > 0 {
				t.Errorf("lease store: %s", strings.Join(probs, "; "))
			}
			if after := victim.snapshot(t); after != before {
				t.Errorf("files outside the store changed:\nbefore:\n%s\nafter:\n%s", before, after)
			}
		})
	}
}

// TestLongContainerID: container IDs of any length the spec allows (the
// kernel keeps link aliases of 255 bytes at most) attach and detach, and
// leave the node as it was.
func TestLongContainerID(t *testing.T) {
	e := newRelEnv(t)
	conf := relConf(brConf(`"ipMasq":true,`), e.dataDir, "longid", "br-long")
	for _, cmd := range []string{"ADD", "DEL"} { // the bridge and the node's rule tables exist from then on
		if out, err := e.node.Exec(t, "bridge", cmd, "warm", e.cont.Path, "eth9", conf); err != nil {
			t.Fatalf("warm-up %s: %v\n%s", cmd, err, out)
		}
	}
	relSettle(t, e.node, "br-long")
	for _, n := range []int{240, 250, 1000, 60000} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			id := strings.Repeat("c", n)
			before := e.node.Snapshot(t)
			if out, err := e.node.Exec(t, "bridge", "ADD", id, e.cont.Path, "eth0", conf); err != nil {
				t.Fatalf("ADD with a %d-character ID: %v\n%s", n, err, out)
			}
			if out, err := e.node.Exec(t, "bridge", "DEL", id, e.cont.Path, "eth0", conf); err != nil {
				t.Fatalf("DEL: %v\n%s", err, out)
			}
			relSettle(t, e.node, "br-long")
			RequireSame(t, before, e.node.Snapshot(t))
		})
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
