package rtnl

import (
	"strings"
	"testing"

	"github.com/flatcni/plugins/internal/testns"
)

// A Conn opened in a namespace acts there from a thread that is not in it
// any more; setting a link's broadcast address to what it is succeeds and
// leaves it so. Close is nil-safe and can be called twice.
func TestConnSetBroadcast(t *testing.T) {
	n := testns.New(t, "rtnlconn")
	n.MustRun(t, "ip", "link", "add", "b0", "type", "veth", "peer", "name", "b0p")
	var c *Conn
	var index int32
	if err := n.Do(func() error {
		l, err := LinkByName("b0")
		if err != nil {
			return err
		}
		index = l.Index
		c, err = Dial()
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	// Here, outside the namespace (b0 is not a link of this one).
	if err := c.SetBroadcast(index, []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}); err != nil {
		t.Fatalf("SetBroadcast: %v", err)
	}
	if out := n.MustRun(t, "ip", "link", "show", "b0"); !strings.Contains(out, "brd ff:ff:ff:ff:ff:ff") {
		t.Errorf("b0 after SetBroadcast:\n%s", out)
	}
	c.Close()
	c.Close()
	var none *Conn
	none.Close()
}
