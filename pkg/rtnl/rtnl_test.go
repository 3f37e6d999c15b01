package rtnl

import (
	"encoding/binary"
	"errors"
	"strings"
	"testing"

	"github.com/flatcni/plugins/internal/testns"
)

func TestDelLinkWithAlias(t *testing.T) {
	n := testns.New(t, "rtnl")
	n.MustRun(t, "ip", "link", "add", "ours0", "type", "veth", "peer", "name", "ours0p")
	n.MustRun(t, "ip", "link", "set", "ours0", "alias", "flatcni:c1/eth0")
	n.MustRun(t, "ip", "link", "add", "theirs0", "type", "veth", "peer", "name", "theirs0p")
	n.MustRun(t, "ip", "link", "set", "theirs0", "alias", "someone else")
	n.MustRun(t, "ip", "link", "add", "noalias0", "type", "veth", "peer", "name", "noalias0p")

	err := n.Do(func() error {
		l, err := LinkByName("ours0")
		if err != nil {
			return err
		}
		if l.Alias != "flatcni:c1/eth0" || l.Index <= 1 {
			t.Errorf("LinkByName(ours0) = %+v", l)
		}
		if _, err := LinkByName("missing0"); !errors.Is(err, ErrNotFound) {
			t.Errorf("LinkByName(missing0): %v, want ErrNotFound", err)
		}
		for _, tc := range []struct {
			name, alias string
			deleted     bool
		}{
			{"theirs0", "flatcni:c1/eth0", false},  // another alias: not ours
			{"noalias0", "flatcni:c1/eth0", false}, // no alias at all
			{"missing0", "flatcni:c1/eth0", false},
			{"ours0", "flatcni:c1/eth0", true},
			{"ours0", "flatcni:c1/eth0", false}, // already gone
		} {
			deleted, err := DelLinkWithAlias(tc.name, tc.alias)
			if err != nil || deleted != tc.deleted {
				t.Errorf("DelLinkWithAlias(%s) = %v, %v; want %v", tc.name, deleted, err, tc.deleted)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	links := n.MustRun(t, "ip", "-o", "link", "show")
	if strings.Contains(links, "ours0") || strings.Contains(links, "ours0p") || !strings.Contains(links, "theirs0") || !strings.Contains(links, "noalias0") {
		t.Errorf("links left:\n%s", links)
	}
}

func TestDelPortWithAlias(t *testing.T) {
	n := testns.New(t, "rtnlport")
	n.MustRun(t, "ip", "link", "add", "br0", "type", "bridge")
	n.MustRun(t, "ip", "link", "add", "br1", "type", "bridge")
	for _, l := range []struct{ name, master string }{{"p0", "br0"}, {"p1", "br1"}, {"p2", ""}} {
		n.MustRun(t, "ip", "link", "add", l.name, "type", "veth", "peer", "name", l.name+"p")
		n.MustRun(t, "ip", "link", "set", l.name, "alias", "flatcni:c1/"+l.name)
		if l.master != "" {
			n.MustRun(t, "ip", "link", "set", l.name, "master", l.master)
		}
	}
	err := n.Do(func() error {
		br0, err := LinkByName("br0")
		if err != nil {
			return err
		}
		if p0, err := LinkByName("p0"); err != nil || p0.Master != br0.Index {
			t.Errorf("LinkByName(p0) = %+v, %v; want master %d", p0, err, br0.Index)
		}
		for _, tc := range []struct {
			name    string
			deleted bool
		}{
			{"p1", false}, // a port of another bridge
			{"p2", false}, // no bridge's port
			{"p0", true},
		} {
			deleted, err := DelPortWithAlias(tc.name, "flatcni:c1/"+tc.name, br0.Index)
			if err != nil || deleted != tc.deleted {
				t.Errorf("DelPortWithAlias(%s) = %v, %v; want %v", tc.name, deleted, err, tc.deleted)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	links := n.MustRun(t, "ip", "-o", "link", "show")
	if strings.Contains(links, "p0") || !strings.Contains(links, "p1") || !strings.Contains(links, "p2") {
		t.Errorf("links left:\n%s", links)
	}
}

func TestIsOwnNetNS(t *testing.T) {
	n := testns.New(t, "rtnlown")
	if own, err := IsOwnNetNS("/proc/self/ns/net"); err != nil || !own {
		t.Errorf("own netns: %v, %v", own, err)
	}
	if own, err := IsOwnNetNS(n.Path); err != nil || own {
		t.Errorf("another netns: %v, %v", own, err)
	}
	err := n.Do(func() error {
		own, err := IsOwnNetNS(n.Path)
		if err != nil || !own {
			t.Errorf("from inside: %v, %v", own, err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := IsOwnNetNS("/nonexistent"); err == nil {
		t.Error("missing path: no error")
	}
}

// The byte-order helpers agree with encoding/binary.NativeEndian.
func TestNativeEndian(t *testing.T) {
	b := []byte{1, 2, 3, 4}
	if getU16(b) != binary.NativeEndian.Uint16(b) || getU32(b) != binary.NativeEndian.Uint32(b) {
		t.Errorf("read %#x %#x", getU16(b), getU32(b))
	}
	w := make([]byte, 4)
	putU32(w, 0x01020304)
	if binary.NativeEndian.Uint32(w) != 0x01020304 {
		t.Errorf("putU32 wrote %v", w)
	}
	putU16(w, 0x0506)
	if binary.NativeEndian.Uint16(w) != 0x0506 {
		t.Errorf("putU16 wrote %v", w)
	}
}
