package link

import (
	"errors"
	"net"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
)

func TestSetupVeth(t *testing.T) {
	requireRoot(t)
	mac, _ := net.ParseMAC("02:42:0a:01:00:05")
	tests := []struct {
		name string
		cfg  VethConfig
	}{
		{name: "defaults", cfg: VethConfig{IfName: "eth0"}},
		{name: "mac mtu hairpin", cfg: VethConfig{IfName: "net1", MTU: 1400, MAC: mac, HairpinMode: true}},
		{name: "container interface disabled", cfg: VethConfig{IfName: "eth0", DisableContainerInterface: true}},
		{name: "attach deferred", cfg: VethConfig{IfName: "eth0", HairpinMode: true, PortIsolation: true, DeferAttach: true}},
		{name: "L2 only", cfg: VethConfig{IfName: "eth0", L2Only: true}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			node, cont := newNetNS(t, "vnode"), newNetNS(t, "vcont")
			cfg := tc.cfg
			cfg.ContainerNetNS = cont
			var host, ci Interface
			in(t, node, func() error {
				br, err := EnsureBridge(BridgeConfig{Name: "vbr"})
				if err != nil {
					return err
				}
				cfg.Bridge = br
				host, ci, err = SetupVeth(cfg)
				if err != nil {
					return err
				}
				if !isHostVethName(host.Name) || host.Sandbox != "" {
					t.Errorf("host interface %+v", host)
				}
				if cfg.DeferAttach {
					// Up, but no port until AttachPort.
					l, err := netlink.LinkByName(host.Name)
					if err != nil {
						return err
					}
					if a := l.Attrs(); a.MasterIndex != 0 || a.Flags&net.FlagUp == 0 {
						t.Errorf("deferred host end: master %d, flags %v; want no master, up", a.MasterIndex, a.Flags)
					}
					if err := AttachPort(host, cfg); err != nil {
						return err
					}
				}
				l, err := netlink.LinkByName(host.Name)
				if err != nil {
					return err
				}
				a := l.Attrs()
				if a.MasterIndex != br.Index {
					t.Errorf("host master %d, want bridge %d", a.MasterIndex, br.Index)
				}
				if a.Flags&net.FlagUp == 0 {
					t.Error("host end is down")
				}
				if a.Index != host.Index || a.HardwareAddr.String() != host.MAC.String() {
					t.Errorf("host returned %+v, link index %d mac %s", host, a.Index, a.HardwareAddr)
				}
				if cfg.MTU != 0 && a.MTU != cfg.MTU {
					t.Errorf("host MTU %d, want %d", a.MTU, cfg.MTU)
				}
				if a.TxQLen != 0 {
					t.Errorf("host end txqlen %d, want 0 as the reference's", a.TxQLen)
				}
				// A bridge port gets no IPv6 address, so it sends nothing
				// the bridge would flood (up: no link-local was made).
				if addrs, err := netlink.AddrList(l, netlink.FAMILY_V6); err != nil || len(addrs) != 0 {
					t.Errorf("host end IPv6 addresses %v, %v; want none", addrs, err)
				}
				pi, err := netlink.LinkGetProtinfo(l)
				if err != nil {
					return err
				}
				if pi.Hairpin != cfg.HairpinMode || pi.Isolated != cfg.PortIsolation {
					t.Errorf("hairpin %v, isolated %v; want %v, %v", pi.Hairpin, pi.Isolated, cfg.HairpinMode, cfg.PortIsolation)
				}
				if err := CheckHostVeth(br, host.Name, host.MAC); err != nil {
					t.Errorf("CheckHostVeth: %v", err)
				}
				peer, err := HostPeer(cont, cfg.IfName)
				if err != nil || peer != host.Name {
					t.Errorf("HostPeer = %q, %v; want %q", peer, err, host.Name)
				}
				return nil
			})
			if ci.Name != cfg.IfName || ci.Sandbox != cont {
				t.Errorf("container interface %+v", ci)
			}
			if cfg.MAC != nil && ci.MAC.String() != cfg.MAC.String() {
				t.Errorf("container MAC %s, want %s", ci.MAC, cfg.MAC)
			}
			in(t, cont, func() error {
				l, err := netlink.LinkByName(cfg.IfName)
				if err != nil {
					return err
				}
				a := l.Attrs()
				if a.Index != ci.Index || a.HardwareAddr.String() != ci.MAC.String() {
					t.Errorf("container returned %+v, link index %d mac %s", ci, a.Index, a.HardwareAddr)
				}
				if up := a.Flags&net.FlagUp != 0; up == cfg.DisableContainerInterface {
					t.Errorf("container end up=%v with DisableContainerInterface=%v", up, cfg.DisableContainerInterface)
				}
				if cfg.MTU != 0 && a.MTU != cfg.MTU {
					t.Errorf("container MTU %d, want %d", a.MTU, cfg.MTU)
				}
				// The reference's sysctls for configured addresses; L2
				// only, the kernel's defaults.
				wantNotify, wantDAD := "1", "0"
				if cfg.L2Only {
					wantNotify, _ = readSysctl("net/ipv4/conf/default/arp_notify")
					wantDAD, _ = readSysctl("net/ipv6/conf/default/accept_dad")
				}
				if v, _ := readSysctl("net/ipv4/conf/" + cfg.IfName + "/arp_notify"); v != wantNotify {
					t.Errorf("arp_notify = %q, want %s", v, wantNotify)
				}
				if v, _ := readSysctl("net/ipv6/conf/" + cfg.IfName + "/accept_dad"); v != wantDAD {
					t.Errorf("accept_dad = %q, want %s", v, wantDAD)
				}
				// Queue lengths as the reference leaves them.
				if a.TxQLen != 1000 {
					t.Errorf("container end txqlen %d, want 1000", a.TxQLen)
				}
				return nil
			})
		})
	}
}

func TestSetupVethNameTaken(t *testing.T) {
	requireRoot(t)
	node, cont := newNetNS(t, "tnode"), newNetNS(t, "tcont")
	in(t, cont, func() error { return addVethPair("eth0", "other0") })
	in(t, node, func() error {
		br, err := EnsureBridge(BridgeConfig{Name: "tbr"})
		if err != nil {
			return err
		}
		before, err := linkNames()
		if err != nil {
			return err
		}
		_, _, err = SetupVeth(VethConfig{ContainerNetNS: cont, IfName: "eth0", Bridge: br})
		if err == nil {
			t.Error("SetupVeth succeeded although eth0 exists in the container")
		} else if !strings.Contains(err.Error(), `"eth0"`) || !strings.Contains(err.Error(), cont) {
			t.Errorf("error %q does not name eth0 and the netns", err)
		}
		after, err := linkNames()
		if err != nil {
			return err
		}
		if !slices.Equal(before, after) {
			t.Errorf("node links changed: %v -> %v", before, after)
		}
		return nil
	})
	in(t, cont, func() error {
		names, err := linkNames()
		if err != nil {
			return err
		}
		slices.Sort(names)
		if want := []string{"eth0", "lo", "other0"}; !slices.Equal(names, want) {
			t.Errorf("container links %v, want %v", names, want)
		}
		return nil
	})
}

func TestDelVeth(t *testing.T) {
	requireRoot(t)
	node, cont := newNetNS(t, "dnode"), newNetNS(t, "dcont")
	in(t, node, func() error {
		_, host, _, err := bridgedVeth("dbr", cont)
		if err != nil {
			return err
		}
		got, _, err := DelVeth(cont, "eth0")
		if err != nil || got != host.Name {
			t.Errorf("first DelVeth = %q, %v; want %q", got, err, host.Name)
		}
		if _, err := netlink.LinkByName(host.Name); err == nil {
			t.Errorf("host veth %s survived", host.Name)
		}
		if got, _, err := DelVeth(cont, "eth0"); err != nil || got != "" {
			t.Errorf("second DelVeth = %q, %v; want no-op", got, err)
		}
		if err := DelLink(host.Name); err != nil {
			t.Errorf("DelLink of a missing link: %v", err)
		}
		if _, err := HostPeer(cont, "eth0"); !errors.Is(err, ErrNotFound) {
			t.Errorf("HostPeer after delete: %v, want ErrNotFound", err)
		}
		return nil
	})
	deleteNetNS(t, cont)
	in(t, node, func() error {
		if got, _, err := DelVeth(cont, "eth0"); err != nil || got != "" {
			t.Errorf("DelVeth with netns gone = %q, %v; want no-op", got, err)
		}
		return nil
	})
}

func TestWaitPortUp(t *testing.T) {
	requireRoot(t)
	tests := []struct {
		name    string
		disable bool
		wantErr bool
	}{
		{name: "container end up"},
		{name: "container end down", disable: true, wantErr: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			node, cont := newNetNS(t, "pnode"), newNetNS(t, "pcont")
			in(t, node, func() error {
				br, err := EnsureBridge(BridgeConfig{Name: "pbr"})
				if err != nil {
					return err
				}
				host, _, err := SetupVeth(VethConfig{ContainerNetNS: cont, IfName: "eth0", Bridge: br, DisableContainerInterface: tc.disable})
				if err != nil {
					return err
				}
				// A down peer never comes up, so a zero timeout is enough
				// to see the error; an up port gets a generous bound.
				timeout := 10 * time.Second
				if tc.wantErr {
					timeout = 0
				}
				got, err := WaitPortUp(host.Name, timeout)
				if tc.wantErr {
					wantErrContains(t, err, host.Name, "not up")
					return nil
				}
				if err != nil {
					return err
				}
				if got.Name != host.Name || got.Index != host.Index {
					t.Errorf("WaitPortUp = %+v, want %+v", got, host)
				}
				return nil
			})
		})
	}
}

func TestEnsureBridgeConcurrent(t *testing.T) {
	requireRoot(t)
	node := newNetNS(t, "brrace")
	const workers = 4
	errs := make(chan error, workers)
	idx := make(chan int, workers)
	var created atomic.Int32
	for range workers {
		go func() {
			errs <- inErr(t, node, func() error {
				br, err := EnsureBridge(BridgeConfig{Name: "racebr"})
				idx <- br.Index
				if br.Created {
					created.Add(1)
				}
				return err
			})
		}()
	}
	first := 0
	for range workers {
		if err := <-errs; err != nil {
			t.Errorf("concurrent EnsureBridge: %v", err)
		}
		i := <-idx
		if first == 0 {
			first = i
		} else if i != first {
			t.Errorf("bridge index %d, another caller got %d", i, first)
		}
	}
	if n := created.Load(); n != 1 {
		t.Errorf("%d callers say they created the bridge, want 1", n)
	}
}
