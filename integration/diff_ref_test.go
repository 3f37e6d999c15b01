package integration

import (
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"
)

// TestDiffRef is a differential test against the reference plugins: the same
// ADD, CHECK and DEL go through the reference bridge + host-local and through
// ours, each in a throwaway node namespace with its own container namespace
// (same bridge name, subnet, container ID and ifname), and the normalized
// results and kernel states must be equal. MAC addresses, the link-local
// addresses derived from them, host veth names, namespace names and
// interface indexes are replaced by placeholders; what differs on purpose
// (docs/differences.md) is dropped explicitly in diffNormalize.
func TestDiffRef(t *testing.T) {
	requireRoot(t)
	refBin := refBinDir(t)
	run := uniq()
	for i, tc := range diffCases() {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			br := fmt.Sprintf("dr%d%s", i, run)
			ref, ours := NewNode(t), NewNode(t)
			ref.Bin = refBin
			for _, n := range []*Node{ref, ours} {
				// Links the plugins make on the node (the bridge) skip
				// IPv6 DAD, on both sides alike: otherwise every ADD
				// restarts DAD of the bridge's addresses (its carrier
				// comes back) and the states are only comparable a
				// second or two later. The gateway address's own DAD
				// flag is compared (see diffState).
				n.MustRun(t, "sysctl", "-qw", "net.ipv6.conf.default.accept_dad=0")
			}
			sides := []*diffSide{{name: "reference", node: ref}, {name: "flatcni", node: ours}}
			versions := []string{"0.2.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"}
			for i, v := range versions {
				cid := fmt.Sprintf("diffref-%s-%s-%s", tc.name, strings.ReplaceAll(v, ".", ""), run)
				diffOneVersion(t, tc, br, v, cid, sides, i == len(versions)-1)
			}
		})
	}
}

type diffCase struct {
	name string
	// plugin returns the bridge plugin's keys (without cniVersion and name)
	// for a node whose host-local dataDir is dataDir.
	plugin func(br, dataDir string) map[string]any
	env    []string // extra plugin environment (CNI_ARGS)
}

func hostLocal(dataDir string, ranges ...string) map[string]any {
	var rs []any
	for _, r := range ranges {
		rs = append(rs, []any{map[string]any{"subnet": r}})
	}
	return map[string]any{"type": "host-local", "dataDir": dataDir, "ranges": rs}
}

func diffCases() []diffCase {
	return []diffCase{
		{name: "gateway-v4", plugin: func(br, dd string) map[string]any {
			return map[string]any{"type": "bridge", "bridge": br, "isGateway": true, "ipam": hostLocal(dd, "10.71.0.0/24")}
		}},
		{name: "defgw-dual", plugin: func(br, dd string) map[string]any {
			return map[string]any{"type": "bridge", "bridge": br, "isDefaultGateway": true, "ipam": hostLocal(dd, "10.72.0.0/24", "fd72::/64")}
		}},
		{name: "l2only", plugin: func(br, dd string) map[string]any {
			return map[string]any{"type": "bridge", "bridge": br, "ipam": map[string]any{}}
		}},
		{name: "mtu-hairpin", plugin: func(br, dd string) map[string]any {
			return map[string]any{"type": "bridge", "bridge": br, "isGateway": true, "mtu": 1400, "hairpinMode": true, "ipam": hostLocal(dd, "10.73.0.0/24", "fd73::/64")}
		}},
		{name: "promisc", plugin: func(br, dd string) map[string]any {
			return map[string]any{"type": "bridge", "bridge": br, "isGateway": true, "promiscMode": true, "ipam": hostLocal(dd, "10.74.0.0/24")}
		}},
		{name: "mac-cniargs", env: []string{"CNI_ARGS=IgnoreUnknown=1;MAC=0a:58:0a:4b:00:42"}, plugin: func(br, dd string) map[string]any {
			return map[string]any{"type": "bridge", "bridge": br, "isGateway": true, "ipam": hostLocal(dd, "10.75.0.0/24", "fd75::/64")}
		}},
		{name: "mac-runtimeconfig", plugin: func(br, dd string) map[string]any {
			return map[string]any{"type": "bridge", "bridge": br, "isGateway": true, "ipam": hostLocal(dd, "10.76.0.0/24"),
				"capabilities": map[string]any{"mac": true}, "runtimeConfig": map[string]any{"mac": "0a:58:0a:4c:00:43"}}
		}},
		{name: "routes-gateway", plugin: func(br, dd string) map[string]any {
			ipam := map[string]any{"type": "host-local", "dataDir": dd,
				"ranges": []any{
					[]any{map[string]any{"subnet": "10.77.0.0/24", "gateway": "10.77.0.254", "rangeStart": "10.77.0.10", "rangeEnd": "10.77.0.20"}},
					[]any{map[string]any{"subnet": "fd77::/64", "gateway": "fd77::fe"}},
				},
				"routes": []any{
					map[string]any{"dst": "0.0.0.0/0"},
					map[string]any{"dst": "192.168.77.0/24", "gw": "10.77.0.1"},
					map[string]any{"dst": "fd99::/64"},
					map[string]any{"dst": "172.31.77.0/24", "priority": 300},
				}}
			return map[string]any{"type": "bridge", "bridge": br, "isGateway": true, "ipam": ipam}
		}},
		{name: "no-gateway", plugin: func(br, dd string) map[string]any {
			return map[string]any{"type": "bridge", "bridge": br, "isGateway": false, "ipam": hostLocal(dd, "10.78.0.0/24", "fd78::/64")}
		}},
		{name: "isolation", plugin: func(br, dd string) map[string]any {
			return map[string]any{"type": "bridge", "bridge": br, "isGateway": true, "portIsolation": true, "ipam": hostLocal(dd, "10.79.0.0/24")}
		}},
		{name: "dad", plugin: func(br, dd string) map[string]any {
			return map[string]any{"type": "bridge", "bridge": br, "isGateway": true, "enabledad": true, "ipam": hostLocal(dd, "10.80.0.0/24", "fd80::/64")}
		}},
		{name: "l2-down", plugin: func(br, dd string) map[string]any {
			return map[string]any{"type": "bridge", "bridge": br, "disableContainerInterface": true, "ipam": map[string]any{}}
		}},
	}
}

// diffSide is one implementation's node and its current attachment.
type diffSide struct {
	name      string
	node      *Node
	ctr       *Netns
	result    []byte
	addErr    error
	addState  map[string][]string // section -> normalized lines
	addResult string
}

func (s *diffSide) conf(t *testing.T, tc diffCase, br, version string, prevResult []byte) []byte {
	t.Helper()
	conf := tc.plugin(br, s.node.LeaseDir())
	conf["cniVersion"] = version
	conf["name"] = "diffref"
	if prevResult != nil {
		conf["prevResult"] = json.RawMessage(prevResult)
	}
	raw, err := json.Marshal(conf)
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

// diffOneVersion runs ADD, CHECK and DEL of one attachment with results of
// version on both sides and compares them. The state DEL leaves is compared
// only when last: the bridge's operational state follows the loss of its
// last port up to a second later, and the next ADD brings it back anyway
// (each DEL is still checked to leave no veth on either side).
func diffOneVersion(t *testing.T, tc diffCase, br, version, cid string, sides []*diffSide, last bool) {
	t.Helper()
	// ADD on both sides, then read back everything the ADD changed.
	for _, s := range sides {
		s.ctr = NewNetns(t, "dr-c")
		s.result, s.addErr = s.node.Exec(t, "bridge", "ADD", cid, s.ctr.Path, "eth0", s.conf(t, tc, br, version, nil), tc.env...)
		conf, ctr, node := s.conf(t, tc, br, version, nil), s.ctr, s.node
		t.Cleanup(func() { _, _ = node.Exec(t, "bridge", "DEL", cid, ctr.Path, "eth0", conf, tc.env...) })
	}
	if (sides[0].addErr == nil) != (sides[1].addErr == nil) {
		t.Fatalf("v%s ADD: reference err=%v, flatcni err=%v", version, sides[0].addErr, sides[1].addErr)
	}
	if sides[0].addErr != nil {
		// Both refused (an L2-only result has no 0.2.0 form): the same
		// error, and nothing left behind on either side.
		if a, b := string(sides[0].result), string(sides[1].result); a != b {
			t.Errorf("v%s ADD failed differently:\nreference: %s\nflatcni:   %s", version, a, b)
		}
		for _, s := range sides {
			if v := hostVeths(t, s.node); len(v) != 0 {
				// The reference leaves its host veth (with the
				// container end) when the result does not convert.
				if s.name == "reference" {
					t.Logf("v%s: the reference's failed ADD left host veths %v", version, v)
				} else {
					t.Errorf("v%s %s: failed ADD left host veths %v", version, s.name, v)
				}
			}
			s.ctr.Delete()
			waitNetnsReleased(t, s.node)
		}
		return
	}
	waitSettled(t, sides[0].node.Netns, sides[0].ctr, sides[1].node.Netns, sides[1].ctr)
	for _, s := range sides {
		var norm normalizer
		s.addState, norm = diffState(t, s.node, s.ctr, br)
		s.addResult = normalizeResult(t, s.result, norm, s.ctr.Path)
	}
	if a, b := sides[0].addResult, sides[1].addResult; a != b {
		t.Errorf("v%s ADD result differs:\nreference: %s\nflatcni:   %s", version, a, b)
	}
	diffStates(t, "v"+version+" after ADD", sides[0].addState, sides[1].addState)

	// CHECK (0.4.0 on) with the ADD result as prevResult.
	if version != "0.2.0" && version != "0.3.1" {
		var errs [2]error
		var outs [2][]byte
		for i, s := range sides {
			outs[i], errs[i] = s.node.Exec(t, "bridge", "CHECK", cid, s.ctr.Path, "eth0", s.conf(t, tc, br, version, s.result), tc.env...)
		}
		l2only := len(tc.plugin(br, "")["ipam"].(map[string]any)) == 0
		if l2only && errs[0] != nil && errs[1] == nil && strings.Contains(string(outs[0]), "no plugin name provided") {
			// The reference's CHECK fails without IPAM (it runs an IPAM
			// CHECK with no plugin name); ours checks the attachment.
		} else if (errs[0] == nil) != (errs[1] == nil) {
			t.Errorf("v%s CHECK: reference err=%v, flatcni err=%v", version, errs[0], errs[1])
		} else if errs[0] != nil && CNIError(t, outs[0]).Code != CNIError(t, outs[1]).Code {
			t.Errorf("v%s CHECK error codes differ: reference %v, flatcni %v", version, errs[0], errs[1])
		}
	}

	// DEL, twice, leaves both nodes alike.
	for _, s := range sides {
		for range 2 {
			if _, err := s.node.Exec(t, "bridge", "DEL", cid, s.ctr.Path, "eth0", s.conf(t, tc, br, version, nil), tc.env...); err != nil {
				t.Errorf("v%s %s DEL: %v", version, s.name, err)
			}
		}
	}
	var after [2]map[string][]string
	if last {
		waitSettled(t, sides[0].node.Netns, sides[0].ctr, sides[1].node.Netns, sides[1].ctr)
		for i, s := range sides {
			after[i], _ = diffState(t, s.node, s.ctr, br)
		}
		diffStates(t, "v"+version+" after DEL", after[0], after[1])
	}
	for _, s := range sides {
		if v := hostVeths(t, s.node); len(v) != 0 {
			t.Errorf("v%s %s: host veths left after DEL: %v", version, s.name, v)
		}
		if out := s.ctr.MustRun(t, "ip", "-o", "link", "show"); strings.Count(strings.TrimSpace(out), "\n") != 0 {
			t.Errorf("v%s %s: container links after DEL, want only lo:\n%s", version, s.name, out)
		}
		s.ctr.Delete()
	}
	// The kernel dismantles a deleted namespace later, on a work queue: until
	// then the node keeps its namespace ID and any link whose other end was
	// in it (the reference's failed ADD leaves such a veth). The next version
	// starts once both nodes are back to no peer namespace and no veth, so
	// that the two sides are compared from the same state.
	for _, s := range sides {
		waitNetnsReleased(t, s.node)
	}
}

// waitNetnsReleased waits (up to 10 s) until node holds no namespace ID of
// another namespace and no veth: what deleted container namespaces leave
// until the kernel has dismantled them. Not a timing assertion: a node that
// has not settled by then is compared as it is.
func waitNetnsReleased(t *testing.T, node *Node) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		ids, err := node.Run("ip", "netns", "list-id")
		if err == nil && strings.TrimSpace(ids) == "" && len(hostVeths(t, node)) == 0 {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// waitSettled waits (up to 3 s) until the links in the namespaces show
// what the kernel settles on: an operational state that follows the carrier
// (the kernel updates it, and route "linkdown" flags, up to a second later)
// and no IPv6 address in duplicate address detection on a link with
// carrier. Not a timing assertion: what has not settled by then is compared
// as it is.
func waitSettled(t *testing.T, namespaces ...*Netns) {
	t.Helper()
	deadline := time.Now().Add(3 * time.Second)
	for _, ns := range namespaces {
		for time.Now().Before(deadline) && !settledNS(ns) {
			time.Sleep(50 * time.Millisecond)
		}
	}
}

func settledNS(ns *Netns) bool {
	out, err := ns.Run("ip", "-j", "addr", "show")
	if err != nil {
		return true
	}
	var links []struct {
		Flags     []string
		Operstate string
		AddrInfo  []struct {
			Family    string
			Tentative bool
		} `json:"addr_info"`
	}
	if json.Unmarshal([]byte(out), &links) != nil {
		return true
	}
	for _, l := range links {
		has := func(f string) bool {
			for _, x := range l.Flags {
				if x == f {
					return true
				}
			}
			return false
		}
		if !has("UP") || has("LOOPBACK") {
			continue
		}
		if has("LOWER_UP") != (l.Operstate == "UP") {
			return false
		}
		if has("LOWER_UP") {
			for _, a := range l.AddrInfo {
				if a.Tentative {
					return false
				}
			}
		}
	}
	return true
}

// normalizer replaces what legitimately differs between two runs (MACs,
// link-local addresses derived from them, host veth names, namespace names)
// with placeholders.
type normalizer struct {
	repl     *strings.Replacer
	hostVeth string
}

func (n normalizer) s(x string) string { return n.repl.Replace(x) }

// eui64 is the link-local address the kernel derives from mac.
func eui64(mac net.HardwareAddr) string {
	if len(mac) != 6 {
		return ""
	}
	ip := net.IP{0xfe, 0x80, 0, 0, 0, 0, 0, 0, mac[0] ^ 2, mac[1], mac[2], 0xff, 0xfe, mac[3], mac[4], mac[5]}
	return ip.String()
}

// dumpNS runs the commands in one shell inside ns (one process start
// instead of one per command) and returns each one's output.
func dumpNS(t *testing.T, ns *Netns, cmds [][2]string) map[string]string {
	t.Helper()
	var script strings.Builder
	for _, c := range cmds {
		fmt.Fprintf(&script, "echo '@@@%s'; %s 2>/dev/null; ", c[0], c[1])
	}
	out, err := ns.Run("sh", "-c", script.String()+"true")
	if err != nil {
		t.Fatalf("state of %s: %v\n%s", ns.Name, err, out)
	}
	res := map[string]string{}
	for _, part := range strings.Split(out, "@@@")[1:] {
		name, body, _ := strings.Cut(part, "\n")
		res[name] = body
	}
	return res
}

// nsLink is what the normalizer needs of "ip -j link".
type nsLink struct {
	Ifname   string `json:"ifname"`
	Address  string `json:"address"`
	Linkinfo struct {
		InfoKind string `json:"info_kind"`
	} `json:"linkinfo"`
}

// newNormalizer maps the MACs of the container interface, the host veth
// and the bridge (and the link-local addresses derived from them), the host
// veth's name and the namespaces' names to placeholders.
func newNormalizer(t *testing.T, node *Node, ctr *Netns, br string, nodeDump, ctrDump map[string]string) normalizer {
	t.Helper()
	var nodeLinks, ctrLinks []nsLink
	if err := json.Unmarshal([]byte(nodeDump["links"]), &nodeLinks); err != nil {
		t.Fatalf("ip -j link in %s: %v", node.Name, err)
	}
	if err := json.Unmarshal([]byte(ctrDump["links"]), &ctrLinks); err != nil {
		t.Fatalf("ip -j link in %s: %v", ctr.Name, err)
	}
	macOf := func(links []nsLink, name string) net.HardwareAddr {
		for _, l := range links {
			if l.Ifname == name {
				mac, _ := net.ParseMAC(l.Address)
				return mac
			}
		}
		return nil
	}
	var hostVeth string
	for _, l := range nodeLinks {
		if l.Linkinfo.InfoKind == "veth" {
			if hostVeth != "" {
				t.Fatalf("more than one veth in node %s: %s, %s", node.Name, hostVeth, l.Ifname)
			}
			hostVeth = l.Ifname
		}
	}
	var pairs []string
	seen := map[string]bool{}
	add := func(role string, mac net.HardwareAddr) {
		if mac == nil || seen[mac.String()] {
			return
		}
		seen[mac.String()] = true
		pairs = append(pairs, mac.String(), "<"+role+"-mac>", eui64(mac), "<"+role+"-ll>")
		// Bridge and root IDs print the MAC without leading zeros.
		var short []string
		for _, b := range mac {
			short = append(short, fmt.Sprintf("%x", b))
		}
		if s := strings.Join(short, ":"); s != mac.String() {
			pairs = append(pairs, "."+s+`"`, ".<"+role+`-mac>"`)
		}
	}
	add("ctr", macOf(ctrLinks, "eth0"))
	if hostVeth != "" {
		add("hostveth", macOf(nodeLinks, hostVeth))
	}
	add("bridge", macOf(nodeLinks, br))
	// A bridge whose MAC is not pinned follows its ports: its link-local
	// address derives from the MAC it was made with.
	for _, l := range strings.Split(nodeDump["addrs"], "\n") {
		f := strings.Fields(l)
		if len(f) >= 4 && f[1] == br && f[2] == "inet6" && strings.HasPrefix(f[3], "fe80:") {
			ll, _, _ := strings.Cut(f[3], "/")
			if !slices.Contains(pairs, ll) {
				pairs = append(pairs, ll, "<bridge-ll>")
			}
		}
	}
	pairs = append(pairs, node.Name, "<node-netns>", ctr.Name, "<ctr-netns>")
	if hostVeth != "" {
		// Host veth names differ on purpose (docs/differences.md: derived
		// from the attachment).
		pairs = append(pairs, hostVeth, "<hostveth>")
	}
	return normalizer{repl: strings.NewReplacer(pairs...), hostVeth: hostVeth}
}

// normalizeResult is the ADD result with MACs, the host veth name and the
// sandbox path replaced, re-encoded with sorted keys.
func normalizeResult(t *testing.T, raw []byte, norm normalizer, sandbox string) string {
	t.Helper()
	var v any
	if err := json.Unmarshal(raw, &v); err != nil {
		t.Fatalf("result %q: %v", raw, err)
	}
	var walk func(any) any
	walk = func(x any) any {
		switch x := x.(type) {
		case map[string]any:
			for k, e := range x {
				x[k] = walk(e)
			}
		case []any:
			for i, e := range x {
				x[i] = walk(e)
			}
		case string:
			if x == sandbox {
				return "<sandbox>"
			}
			return norm.s(x)
		}
		return x
	}
	out, err := json.Marshal(walk(v))
	if err != nil {
		t.Fatal(err)
	}
	return string(out)
}

var (
	lifetimes = regexp.MustCompile(`\s+valid_lft \S+ preferred_lft \S+`)
	ifindexes = regexp.MustCompile(`^\d+: `)
	spaces    = regexp.MustCompile(`\s+`)
)

// stateCmds are what diffState reads in each namespace.
var stateCmds = [][2]string{
	{"links", "ip -d -j link show"},
	{"addrs", "ip -o addr show"},
	{"routes-4", "ip -4 route show table all"},
	{"routes-6", "ip -6 route show table all"},
	{"sysctls", "grep -r . /proc/sys/net/ipv4/ip_forward /proc/sys/net/ipv4/conf /proc/sys/net/ipv6/conf"},
}

// diffState reads the kernel state of the node and of the container that the
// bridge plugin may change, normalized, one sorted list of lines per section,
// and the normalizer it used.
func diffState(t *testing.T, node *Node, ctr *Netns, br string) (map[string][]string, normalizer) {
	t.Helper()
	nodeDump, ctrDump := dumpNS(t, node.Netns, stateCmds), dumpNS(t, ctr, stateCmds)
	norm := newNormalizer(t, node, ctr, br, nodeDump, ctrDump)
	st := map[string][]string{}
	for _, side := range []struct {
		prefix string
		ns     *Netns
		dump   map[string]string
	}{{"ctr", ctr, ctrDump}, {"node", node.Netns, nodeDump}} {
		st[side.prefix+" links"] = linkLines(t, side.ns, side.dump["links"], norm)
		st[side.prefix+" addrs"] = addrLines(side.dump["addrs"], norm)
		for _, k := range []string{"routes-4", "routes-6"} {
			st[side.prefix+" "+k] = sortedLines(norm.s(side.dump[k]), nil)
		}
		st[side.prefix+" sysctls"] = sortedLines(norm.s(side.dump["sysctls"]), func(l string) bool {
			// Host veths get IPv6 address generation mode "none" on purpose
			// (docs/differences.md: no IPv6 address on host veths).
			return strings.HasPrefix(l, "/proc/sys/net/ipv6/conf/<hostveth>/addr_gen_mode:") ||
				// Unreadable or write-only entries.
				strings.Contains(l, "/stable_secret:")
		})
	}
	st["node leases"] = leaseLines(t, node.LeaseDir())
	// Deliberate (docs/differences.md): no IPv6 link-local address on our
	// host veths, hence no fe80::/64, local or subnet-router anycast route
	// for it.
	for _, k := range []string{"node addrs", "node routes-6"} {
		st[k] = dropLines(st[k], func(l string) bool {
			return strings.Contains(l, "<hostveth-ll>") || (strings.Contains(l, "fe80::") && strings.Contains(l, "dev <hostveth>"))
		})
	}
	// Deliberate (docs/differences.md: "No DAD wait"): our IPv6 addresses carry
	// the nodad flag, in the container (where both plugins also set
	// accept_dad=0, so neither does DAD there) and on the bridge (the
	// gateway address without enabledad: pkg/link.EnsureGatewayAddrs; the
	// reference adds it with DAD, so it is usable only a second or so later).
	for _, k := range []string{"ctr addrs", "node addrs"} {
		for i, l := range st[k] {
			st[k][i] = strings.Replace(l, " nodad", "", 1)
		}
	}
	// Deliberate (docs/differences.md): the reference sets accept_ra=0 on
	// its host veths, ours leave the kernel's default. A bridge port's own IPv6
	// stack gets no frames (the bridge takes them), so it never sees a
	// router advertisement, and setting it costs a /proc/sys open.
	st["node sysctls"] = dropLines(st["node sysctls"], func(l string) bool {
		return strings.HasPrefix(l, "/proc/sys/net/ipv6/conf/<hostveth>/accept_ra:")
	})
	return st, norm
}

func sortedLines(s string, drop func(string) bool) []string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		l = strings.TrimSpace(spaces.ReplaceAllString(l, " "))
		if l == "" || (drop != nil && drop(l)) {
			continue
		}
		out = append(out, l)
	}
	sort.Strings(out)
	return out
}

func dropLines(lines []string, drop func(string) bool) []string {
	var out []string
	for _, l := range lines {
		if !drop(l) {
			out = append(out, l)
		}
	}
	return out
}

func addrLines(out string, norm normalizer) []string {
	var lines []string
	for _, l := range strings.Split(out, "\n") {
		l = ifindexes.ReplaceAllString(lifetimes.ReplaceAllString(strings.ReplaceAll(l, `\`, " "), ""), "")
		lines = append(lines, l)
	}
	return sortedLines(norm.s(strings.Join(lines, "\n")), nil)
}

// linkLines flattens "ip -d -j link show" into "ifname key=value" lines,
// without interface indexes and running timers.
func linkLines(t *testing.T, ns *Netns, out string, norm normalizer) []string {
	t.Helper()
	var links []map[string]any
	if err := json.Unmarshal([]byte(out), &links); err != nil {
		t.Fatalf("ip -d -j link show in %s: %v", ns.Name, err)
	}
	var lines []string
	for _, l := range links {
		name, _ := l["ifname"].(string)
		isHostVeth := name == norm.hostVeth && name != ""
		var flat func(prefix string, v any)
		flat = func(prefix string, v any) {
			switch v := v.(type) {
			case map[string]any:
				for k, e := range v {
					if k == "ifindex" || k == "link_index" || strings.HasSuffix(k, "_timer") {
						continue
					}
					// Deliberate on our host veths (docs/differences.md): an
					// alias naming the attachment, IPv6 address generation
					// mode "none".
					if isHostVeth && (k == "ifalias" || k == "inet6_addr_gen_mode") {
						continue
					}
					// A veth without carrier (its peer down) is DOWN or
					// LOWERLAYERDOWN depending on the carrier of whichever
					// node link has the ifindex its peer has in the
					// container (the kernel's default_operstate looks the
					// peer's index up in the veth's own namespace): as
					// ifindex, it depends on the order links were made in
					// (a failed ADD removes the bridge it made, the
					// reference leaves it).
					if isHostVeth && k == "operstate" && e == "LOWERLAYERDOWN" {
						e = "DOWN"
					}
					flat(prefix+"."+k, e)
				}
			case []any:
				var elems []string
				for _, e := range v {
					b, _ := json.Marshal(e)
					elems = append(elems, string(b))
				}
				sort.Strings(elems)
				lines = append(lines, prefix+"="+strings.Join(elems, ","))
			default:
				b, _ := json.Marshal(v)
				lines = append(lines, prefix+"="+string(b))
			}
		}
		flat(name, l)
	}
	return sortedLines(norm.s(strings.Join(lines, "\n")), nil)
}

func leaseLines(t *testing.T, dir string) []string {
	t.Helper()
	var lines []string
	_ = filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			return nil
		}
		if fi.IsDir() && fi.Name() == ".flatcni" {
			return filepath.SkipDir // our index (README: Lease files)
		}
		if fi.IsDir() || fi.Name() == "lock" {
			return nil
		}
		b, _ := os.ReadFile(p)
		lines = append(lines, strings.TrimPrefix(p, dir)+": "+strings.ReplaceAll(string(b), "\r\n", `\r\n`))
		return nil
	})
	sort.Strings(lines)
	return lines
}

// diffStates reports, per section, the lines only one side has.
func diffStates(t *testing.T, what string, ref, ours map[string][]string) {
	t.Helper()
	var keys []string
	for k := range ref {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		a, b := ref[k], ours[k]
		onlyA, onlyB := minus(a, b), minus(b, a)
		if len(onlyA)+len(onlyB) > 0 {
			t.Errorf("%s: %s differ:\n  only reference:\n    %s\n  only flatcni:\n    %s", what, k,
				strings.Join(onlyA, "\n    "), strings.Join(onlyB, "\n    "))
		}
	}
}

func minus(a, b []string) []string {
	count := map[string]int{}
	for _, l := range b {
		count[l]++
	}
	var out []string
	for _, l := range a {
		if count[l] > 0 {
			count[l]--
			continue
		}
		out = append(out, l)
	}
	return out
}
