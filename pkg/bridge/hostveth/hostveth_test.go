package hostveth

import "testing"

func TestName(t *testing.T) {
	a, b := Name("c1", "eth0"), Name("c1", "eth1")
	if a == b || len(a) != 12 || a[:4] != "veth" || a != Name("c1", "eth0") {
		t.Errorf("Name: %q %q", a, b)
	}
	// Fixed forever: DEL finds host ends made by earlier versions by name.
	if a != "vethec43057c" {
		t.Errorf("Name(c1, eth0) = %q, changed from vethec43057c", a)
	}
	if got := Alias("c1", "eth0"); got != "flatcni:c1/eth0" {
		t.Errorf("Alias = %q", got)
	}
}
