package link

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/flatcni/plugins/internal/testns"
)

func TestEnsureBridge(t *testing.T) {
	requireRoot(t)
	tests := []struct {
		name    string
		prepare func() error
		cfg     BridgeConfig
		wantErr []string
	}{
		{name: "create", cfg: BridgeConfig{Name: "br-new", MTU: 1400, PromiscMode: true}},
		{name: "reuse", prepare: func() error {
			_, err := EnsureBridge(BridgeConfig{Name: "br-old"})
			return err
		}, cfg: BridgeConfig{Name: "br-old"}},
		{name: "not a bridge", prepare: func() error { return addVethPair("br-dummy", "br-dummy-p") },
			cfg: BridgeConfig{Name: "br-dummy"}, wantErr: []string{`link "br-dummy" exists and is not a bridge (type veth)`}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			node := newNetNS(t, "br")
			if tc.prepare != nil {
				in(t, node, tc.prepare)
			}
			var (
				br  Bridge
				err error
			)
			in(t, node, func() error {
				br, err = EnsureBridge(tc.cfg)
				return nil
			})
			if tc.wantErr != nil {
				wantErrContains(t, err, tc.wantErr...)
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if br.Created != (tc.prepare == nil) {
				t.Errorf("Created = %v", br.Created)
			}
			in(t, node, func() error {
				l, err := netlink.LinkByName(tc.cfg.Name)
				if err != nil {
					return err
				}
				if _, ok := l.(*netlink.Bridge); !ok {
					t.Errorf("type %s, want bridge", l.Type())
				}
				a := l.Attrs()
				if a.Index != br.Index || a.HardwareAddr.String() != br.MAC.String() || br.Name != tc.cfg.Name {
					t.Errorf("returned %+v, link has index %d mac %s", br, a.Index, a.HardwareAddr)
				}
				if a.Flags&net.FlagUp == 0 {
					t.Error("bridge is not up")
				}
				if tc.cfg.MTU != 0 && a.MTU != tc.cfg.MTU {
					t.Errorf("MTU %d, want %d", a.MTU, tc.cfg.MTU)
				}
				if got := a.Promisc != 0; got != tc.cfg.PromiscMode {
					t.Errorf("promisc %v, want %v", got, tc.cfg.PromiscMode)
				}
				if v, _ := readSysctl("net/ipv6/conf/" + tc.cfg.Name + "/accept_ra"); v != "0" {
					t.Errorf("accept_ra = %q, want 0", v)
				}
				again, err := BridgeByName(tc.cfg.Name)
				if err != nil {
					return err
				}
				if again.Index != br.Index {
					t.Errorf("BridgeByName index %d, want %d", again.Index, br.Index)
				}
				return nil
			})
		})
	}
}

// Promiscuous mode is the bridge's own flag (promiscMode, "ip link set
// promisc on"), not the kernel's promiscuity count: a packet capture in
// promiscuous mode raises the count only, and neither hides a missing flag
// from EnsureBridge nor shows as Promisc.
func TestBridgePromiscFlag(t *testing.T) {
	requireRoot(t)
	node := newNetNS(t, "brpromisc")
	in(t, node, func() error {
		br, err := EnsureBridge(BridgeConfig{Name: "br-cap"})
		if err != nil {
			return err
		}
		if br.Promisc {
			t.Error("new bridge reported promiscuous")
		}
		// A capture socket in promiscuous mode on the bridge, as tcpdump's.
		fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			return err
		}
		open := true
		defer func() {
			if open {
				unix.Close(fd)
			}
		}()
		mreq := &unix.PacketMreq{Ifindex: int32(br.Index), Type: unix.PACKET_MR_PROMISC}
		if err := unix.SetsockoptPacketMreq(fd, unix.SOL_PACKET, unix.PACKET_ADD_MEMBERSHIP, mreq); err != nil {
			return err
		}
		l, err := netlink.LinkByName("br-cap")
		if err != nil {
			return err
		}
		if l.Attrs().Promisc == 0 {
			return errors.New("the capture did not raise the promiscuity count")
		}
		if got, err := BridgeByName("br-cap"); err != nil || got.Promisc {
			t.Errorf("during a capture: BridgeByName = %+v, %v; want Promisc false", got, err)
		}
		br, err = EnsureBridge(BridgeConfig{Name: "br-cap", PromiscMode: true})
		if err != nil {
			return err
		}
		if !br.Promisc {
			t.Error("EnsureBridge with PromiscMode returned Promisc false")
		}
		unix.Close(fd)
		open = false
		got, err := BridgeByName("br-cap")
		if err != nil {
			return err
		}
		if !got.Promisc {
			t.Error("promiscMode during a capture: the flag is not set once the capture ended")
		}
		return nil
	})
}

func TestBridgeByNameErrors(t *testing.T) {
	requireRoot(t)
	node := newNetNS(t, "brname")
	in(t, node, func() error {
		_, err := BridgeByName("nosuchbr")
		if !errors.Is(err, ErrNotFound) {
			t.Errorf("missing bridge: got %v, want ErrNotFound", err)
		}
		if err := addVethPair("dum0", "dum0p"); err != nil {
			return err
		}
		_, err = BridgeByName("dum0")
		if err == nil || err.Error() != `link "dum0" exists and is not a bridge (type veth)` {
			t.Errorf("non-bridge: got %v", err)
		}
		// DEL and GC ask whether the network's bridge is in use: a link of
		// another kind under its name means the bridge is gone, not an error.
		for _, name := range []string{"nosuchbr", "dum0"} {
			if inUse, err := BridgeInUse(name); inUse || err != nil {
				t.Errorf("BridgeInUse(%q) = %v, %v; want false, nil", name, inUse, err)
			}
		}
		return nil
	})
}

func TestEnableForwarding(t *testing.T) {
	requireRoot(t)
	node := newNetNS(t, "fwd")
	in(t, node, func() error {
		if err := EnableForwarding(true, true); err != nil {
			return err
		}
		for _, k := range []string{"net/ipv4/ip_forward", "net/ipv6/conf/all/forwarding"} {
			if v, err := readSysctl(k); err != nil || v != "1" {
				t.Errorf("%s = %q (%v), want 1", k, v, err)
			}
		}
		// Idempotent.
		return EnableForwarding(true, true)
	})
}

// A bridge the caller has just read (BridgeConfig.Found) is not looked up
// again: a down, non-promiscuous one comes up promiscuous when asked. One
// that went away since, or was replaced, is looked up again (and made again
// when missing), never used by its old index.
func TestEnsureBridgeFound(t *testing.T) {
	requireRoot(t)
	check := func(t *testing.T, br Bridge, name string) {
		t.Helper()
		l, err := netlink.LinkByName(name)
		if err != nil {
			t.Error(err)
			return
		}
		a := l.Attrs()
		if a.Index != br.Index || a.Flags&net.FlagUp == 0 || !br.Up {
			t.Errorf("returned %+v; the link has index %d, flags %v", br, a.Index, a.Flags)
		}
	}
	t.Run("down", func(t *testing.T) {
		in(t, newNetNS(t, "brf"), func() error {
			if err := netlink.LinkAdd(&netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: "brf"}}); err != nil {
				return err
			}
			found, err := BridgeByName("brf")
			if err != nil || found.Up || found.Promisc {
				return fmt.Errorf("BridgeByName = %+v, %v; want a down bridge", found, err)
			}
			br, err := EnsureBridge(BridgeConfig{Name: "brf", PromiscMode: true, Found: &found})
			if err != nil || br.Created || !br.Promisc {
				return fmt.Errorf("EnsureBridge = %+v, %v", br, err)
			}
			check(t, br, "brf")
			if l, _ := netlink.LinkByName("brf"); l.Attrs().RawFlags&unix.IFF_PROMISC == 0 {
				t.Error("bridge not promiscuous")
			}
			return nil
		})
	})
	for _, tc := range []struct {
		name    string
		replace bool
	}{{"gone", false}, {"replaced", true}} {
		t.Run(tc.name, func(t *testing.T) {
			in(t, newNetNS(t, "brf"), func() error {
				found, err := EnsureBridge(BridgeConfig{Name: "brf"})
				if err != nil {
					return err
				}
				if err := netlink.LinkDel(found.device()); err != nil {
					return err
				}
				if tc.replace {
					if err := netlink.LinkAdd(&netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: "brf"}}); err != nil {
						return err
					}
				}
				found.Created = false
				br, err := EnsureBridge(BridgeConfig{Name: "brf", Found: &found})
				if err != nil {
					return fmt.Errorf("EnsureBridge with a stale bridge: %w", err)
				}
				if br.Index == found.Index || br.Created == tc.replace {
					t.Errorf("EnsureBridge = %+v; the stale one was %+v", br, found)
				}
				check(t, br, "brf")
				return nil
			})
		})
	}
}

// Only a container's port keeps a network's rules: a host veth ("veth" and
// eight hex digits) whose peer is in another netns. An uplink, a veth pair
// left in the node (a VLAN's gateway) or a port of another name does not;
// BridgeInUse counts them all.
func TestBridgeHasContainers(t *testing.T) {
	requireRoot(t)
	node := testns.New(t, "hascont")
	cont := testns.New(t, "hascontc")
	node.MustRun(t, "ip", "link", "add", "hbr", "type", "bridge")
	node.MustRun(t, "ip", "link", "add", "uplink0", "type", "veth", "peer", "name", "uplink0p")
	node.MustRun(t, "ip", "link", "set", "uplink0", "master", "hbr")
	node.MustRun(t, "ip", "link", "add", "veth0000aaaa", "type", "veth", "peer", "name", "hbr.5")
	node.MustRun(t, "ip", "link", "set", "veth0000aaaa", "master", "hbr")
	node.MustRun(t, "ip", "link", "add", "other0", "type", "veth", "peer", "name", "eth0", "netns", filepath.Base(cont.Path))
	node.MustRun(t, "ip", "link", "set", "other0", "master", "hbr")
	has := func(want bool) {
		t.Helper()
		in(t, node.Path, func() error {
			if got, err := BridgeHasContainers("hbr"); err != nil || got != want {
				t.Errorf("BridgeHasContainers = %v, %v; want %v", got, err, want)
			}
			if inUse, err := BridgeInUse("hbr"); err != nil || !inUse {
				t.Errorf("BridgeInUse = %v, %v; want true", inUse, err)
			}
			return nil
		})
	}
	has(false)
	node.MustRun(t, "ip", "link", "add", "veth0000bbbb", "type", "veth", "peer", "name", "eth1", "netns", filepath.Base(cont.Path))
	node.MustRun(t, "ip", "link", "set", "veth0000bbbb", "master", "hbr")
	has(true)
}

// A container's port behind hundreds of others is found (the dump's
// answer spans many receive buffers, read until the match), and a bridge
// of hundreds of ports none of which is a container's has none.
func TestBridgeHasContainersManyPorts(t *testing.T) {
	requireRoot(t)
	node := testns.New(t, "manyports")
	cont := testns.New(t, "manyportsc")
	var batch strings.Builder
	batch.WriteString("link add mbr type bridge\n")
	for i := range 300 {
		fmt.Fprintf(&batch, "link add up%d type veth peer name up%dp\nlink set up%d master mbr\n", i, i, i)
	}
	script := filepath.Join(t.TempDir(), "batch")
	if err := os.WriteFile(script, []byte(batch.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	node.MustRun(t, "ip", "-batch", script)
	has := func(want bool) {
		t.Helper()
		in(t, node.Path, func() error {
			if got, err := BridgeHasContainers("mbr"); err != nil || got != want {
				t.Errorf("BridgeHasContainers = %v, %v; want %v", got, err, want)
			}
			return nil
		})
	}
	has(false)
	node.MustRun(t, "ip", "link", "add", "veth0000cccc", "type", "veth", "peer", "name", "eth0", "netns", filepath.Base(cont.Path))
	node.MustRun(t, "ip", "link", "set", "veth0000cccc", "master", "mbr")
	has(true)
}

// UnattachedVeth finds a veth of ours (by alias) on no bridge, made after a
// given link: not one on a bridge, not one of another alias, not one made
// before that link (a port whose bridge was deleted under it).
func TestUnattachedVeth(t *testing.T) {
	requireRoot(t)
	node := testns.New(t, "unatt")
	ours := func(alias string) bool { return strings.HasPrefix(alias, "flatcni:") }
	node.MustRun(t, "ip", "link", "add", "old0", "type", "veth", "peer", "name", "old0p")
	node.MustRun(t, "ip", "link", "set", "old0", "alias", "flatcni:old/eth0")
	node.MustRun(t, "ip", "link", "add", "ubr", "type", "bridge")
	node.MustRun(t, "ip", "link", "add", "att0", "type", "veth", "peer", "name", "att0p")
	node.MustRun(t, "ip", "link", "set", "att0", "alias", "flatcni:att/eth0")
	node.MustRun(t, "ip", "link", "set", "att0", "master", "ubr")
	node.MustRun(t, "ip", "link", "add", "foreign0", "type", "veth", "peer", "name", "foreign0p")
	pending := func(want bool) {
		t.Helper()
		in(t, node.Path, func() error {
			br, err := BridgeByName("ubr")
			if err != nil {
				return err
			}
			if got, err := UnattachedVeth(ours, br.Index); err != nil || got != want {
				t.Errorf("UnattachedVeth = %v, %v; want %v", got, err, want)
			}
			return nil
		})
	}
	pending(false)
	node.MustRun(t, "ip", "link", "add", "new0", "type", "veth", "peer", "name", "new0p")
	node.MustRun(t, "ip", "link", "set", "new0", "alias", "flatcni:new/eth0")
	pending(true)
}

// TestEnsureBridgeDAD: a bridge EnsureBridge makes without DAD has
// accept_dad 0, and its IPv6 link-local address is not tentative once it
// is up (the node forwards IPv6 to containers at once); with DAD it keeps
// the default; a bridge that was there is left as it is.
func TestEnsureBridgeDAD(t *testing.T) {
	requireRoot(t)
	node := newNetNS(t, "brdad")
	in(t, node, func() error {
		acceptDAD := func(name string) string {
			b, err := os.ReadFile("/proc/sys/net/ipv6/conf/" + name + "/accept_dad")
			if err != nil {
				t.Fatal(err)
			}
			return strings.TrimSpace(string(b))
		}
		if _, err := EnsureBridge(BridgeConfig{Name: "br-nodad"}); err != nil {
			return err
		}
		if got := acceptDAD("br-nodad"); got != "0" {
			t.Errorf("accept_dad of a bridge made without DAD: %s, want 0", got)
		}
		l, err := netlink.LinkByName("br-nodad")
		if err != nil {
			return err
		}
		// The kernel clears the flag from a work item, within
		// milliseconds; with DAD, it would take a second or more.
		tentative := func() []string {
			addrs, err := netlink.AddrList(l, netlink.FAMILY_V6)
			if err != nil {
				t.Fatal(err)
			}
			var out []string
			for _, a := range addrs {
				if a.Flags&unix.IFA_F_TENTATIVE != 0 {
					out = append(out, a.IPNet.String())
				}
			}
			return out
		}
		for deadline := time.Now().Add(300 * time.Millisecond); len(tentative()) > 0 && time.Now().Before(deadline); {
			time.Sleep(10 * time.Millisecond)
		}
		if got := tentative(); len(got) > 0 {
			t.Errorf("%v tentative 300 ms after a bridge made without DAD came up", got)
		}
		def := acceptDAD("default")
		if _, err := EnsureBridge(BridgeConfig{Name: "br-dad", DAD: true}); err != nil {
			return err
		}
		if got := acceptDAD("br-dad"); got != def {
			t.Errorf("accept_dad of a bridge made with DAD: %s, want the default %s", got, def)
		}
		if err := netlink.LinkAdd(&netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: "br-there"}}); err != nil {
			return err
		}
		if _, err := EnsureBridge(BridgeConfig{Name: "br-there"}); err != nil {
			return err
		}
		if got := acceptDAD("br-there"); got != def {
			t.Errorf("accept_dad of a bridge that was there: %s, want it left at %s", got, def)
		}
		return nil
	})
}
