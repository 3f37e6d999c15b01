package link

import (
	"bytes"
	"net"
	"net/netip"
	"testing"

	"github.com/flatcni/plugins/internal/testns"
)

func TestNeighbourAdvert(t *testing.T) {
	mac := net.HardwareAddr{0x02, 0x11, 0x22, 0x33, 0x44, 0x55}
	got := neighbourAdvert(netip.MustParseAddr("fd00:1::5"), mac)
	want := []byte{
		136, 0, 0, 0, // type, code, checksum (the kernel's)
		0x20, 0, 0, 0, // override, not router, not solicited
		0xfd, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 5, // target
		2, 1, 0x02, 0x11, 0x22, 0x33, 0x44, 0x55, // target link-layer address
	}
	if !bytes.Equal(got, want) {
		t.Errorf("neighbourAdvert = % x\nwant             % x", got, want)
	}
}

// Nothing to announce, or no Ethernet address: no announcer; a nil one
// announces nothing and closes.
func TestOpenAnnouncerNothing(t *testing.T) {
	mac := net.HardwareAddr{2, 0, 0, 0, 0, 1}
	for name, a := range map[string]*Announcer{
		"link-local only": openAnnouncer(2, mac, []netip.Prefix{netip.MustParsePrefix("fe80::1/64")}),
		"no addresses":    openAnnouncer(2, mac, nil),
		"no MAC":          openAnnouncer(2, nil, []netip.Prefix{netip.MustParsePrefix("10.1.0.5/24")}),
	} {
		if a != nil {
			a.Close()
			t.Errorf("%s: an announcer", name)
		}
	}
	var a *Announcer
	if err := a.Announce(); err != nil {
		t.Errorf("nil Announce: %v", err)
	}
	a.Close()
}

// A container whose port joins the bridge after its interface was
// configured (DeferAttach) tells another container of the bridge its MAC
// for both its addresses when Announce runs, not before: the other's
// entries of the addresses, made for a MAC of old, name the new one.
func TestAnnouncerUpdatesNeighbours(t *testing.T) {
	requireRoot(t)
	node := newNetNS(t, "anode")
	other, cont := testns.New(t, "aother"), newNetNS(t, "acont")
	const v4, v6 = "10.1.0.3", "fd00:1::3"
	const oldMAC = "02:00:00:00:0e:01"

	var host, ci Interface
	var cfg VethConfig
	in(t, node, func() error {
		_, _, oc, err := bridgedVeth("abr", other.Path)
		if err != nil {
			return err
		}
		if _, err := ConfigureContainer(oc, []netip.Prefix{netip.MustParsePrefix("10.1.0.2/24"), netip.MustParsePrefix("fd00:1::2/64")}, nil, false, false); err != nil {
			return err
		}
		br, err := BridgeByName("abr")
		if err != nil {
			return err
		}
		cfg = VethConfig{ContainerNetNS: cont, IfName: "eth0", Bridge: br, DeferAttach: true}
		host, ci, err = SetupVeth(cfg)
		return err
	})
	// What the other container held for the addresses: an old MAC.
	for _, ip := range []string{v4, v6} {
		other.MustRun(t, "ip", "neigh", "replace", ip, "lladdr", oldMAC, "dev", "eth0", "nud", "reachable")
	}
	var ann *Announcer
	in(t, node, func() error {
		var err error
		ann, err = ConfigureContainer(ci, []netip.Prefix{netip.MustParsePrefix(v4 + "/24"), netip.MustParsePrefix(v6 + "/64")}, nil, false, true)
		if err == nil && ann == nil {
			t.Error("no announcer")
		}
		if err == nil {
			err = AttachPort(host, cfg)
		}
		return err
	})
	defer ann.Close()
	for _, ip := range []string{v4, v6} {
		if got := other.NeighLLAddr(t, "eth0", ip); got != oldMAC {
			t.Errorf("before Announce: the other container's entry of %s is %q, want the old %s", ip, got, oldMAC)
		}
	}
	if err := ann.Announce(); err != nil {
		t.Fatalf("Announce: %v", err)
	}
	for _, ip := range []string{v4, v6} {
		if got := other.NeighLLAddr(t, "eth0", ip); got != ci.MAC.String() {
			t.Errorf("after Announce: the other container's entry of %s is %q, want the container's %s", ip, got, ci.MAC)
		}
	}
	if ann.arp != nil || ann.nd >= 0 {
		t.Errorf("Announce left its sockets open: %+v", ann)
	}
}
