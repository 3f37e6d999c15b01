package rtnl

import (
	"errors"
	"maps"
	"slices"
	"syscall"
	"testing"

	"github.com/flatcni/plugins/internal/testns"
)

// Bridges lists the bridges only, whatever else the namespace holds; AnyPort
// looks at the ports of the bridge asked for only, and stops at the first
// match.
func TestBridgesAndAnyPort(t *testing.T) {
	n := testns.New(t, "rtnlbr")
	n.MustRun(t, "ip", "link", "add", "bra", "type", "bridge")
	n.MustRun(t, "ip", "link", "add", "brb", "type", "bridge")
	n.MustRun(t, "ip", "link", "add", "pb0", "type", "veth", "peer", "name", "pb0x")
	for _, p := range []string{"pa0", "pa1", "pa2"} {
		n.MustRun(t, "ip", "link", "add", p, "type", "veth", "peer", "name", p+"x")
		n.MustRun(t, "ip", "link", "set", p, "master", "bra")
	}
	n.MustRun(t, "ip", "link", "set", "pb0", "master", "brb")
	err := n.Do(func() error {
		brs, err := Bridges()
		if err != nil {
			return err
		}
		if names := slices.Sorted(maps.Values(brs)); !slices.Equal(names, []string{"bra", "brb"}) {
			t.Errorf("Bridges() = %v; want bra and brb", brs)
		}
		var bra int32
		for idx, name := range brs {
			if name == "bra" {
				bra = idx
			}
		}
		var seen []string
		found, err := AnyPort(bra, func(link []byte) bool {
			var name string
			eachAttr(link[ifinfomsgLen:], func(typ uint16, v []byte) {
				if typ == syscall.IFLA_IFNAME {
					name = cString(v)
				}
			})
			seen = append(seen, name)
			return name == "pa1"
		})
		if err != nil || !found || !slices.Equal(seen, []string{"pa0", "pa1"}) {
			t.Errorf("AnyPort(bra) = %v, %v after %v; want true after pa0, pa1", found, err, seen)
		}
		seen = nil
		found, err = AnyPort(bra, func(link []byte) bool { seen = append(seen, "x"); return false })
		if err != nil || found || len(seen) != 3 {
			t.Errorf("AnyPort(bra, never) = %v, %v after %d ports; want false after 3", found, err, len(seen))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// A dump that failed on the way ends with an NLMSG_DONE holding the errno:
// an error, not a complete answer.
func TestDumpError(t *testing.T) {
	done := func(data []byte) syscall.NetlinkMessage {
		return syscall.NetlinkMessage{Header: syscall.NlMsghdr{Type: syscall.NLMSG_DONE}, Data: data}
	}
	errno := make([]byte, 4)
	n := -int32(syscall.EMSGSIZE)
	putU32(errno, uint32(n))
	if err := dumpError(done(errno)); !errors.Is(err, syscall.EMSGSIZE) {
		t.Errorf("DONE with -EMSGSIZE: %v", err)
	}
	if err := dumpError(done(make([]byte, 4))); err != nil {
		t.Errorf("DONE with 0: %v", err)
	}
	if err := dumpError(done(nil)); err != nil {
		t.Errorf("DONE without payload: %v", err)
	}
}
