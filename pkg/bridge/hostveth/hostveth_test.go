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

// Container IDs have no length limit; the kernel keeps aliases of up to 255
// bytes. A long ID's alias fits, is stable, and differs per attachment.
func TestAliasOfLongIDs(t *testing.T) {
	long := make([]byte, 4096)
	for i := range long {
		long[i] = 'a' + byte(i%26)
	}
	id := string(long)
	a, b := Alias(id, "eth0"), Alias(id, "eth1")
	if len(a) > 255 || a != Alias(id, "eth0") || a == b || a[:15] != "flatcni:sha256:" {
		t.Errorf("Alias(long, eth0) = %q, Alias(long, eth1) = %q", a, b)
	}
	// The longest plain alias is kept as it is.
	id = string(long[:255-len("flatcni:/eth0")])
	if got := Alias(id, "eth0"); got != "flatcni:"+id+"/eth0" {
		t.Errorf("Alias of a 255-byte alias = %q", got)
	}
}
