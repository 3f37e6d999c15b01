package hostlocal

import (
	"errors"
	"net/netip"
	"strings"
	"testing"

	"github.com/flatcni/plugins/pkg/ipam"
)

// failingRelease is a MemStore whose Release fails for one attachment (a
// lease file that cannot be removed: EPERM on an immutable file, EIO).
type failingRelease struct {
	*ipam.MemStore
	bad ipam.Attachment
}

func (f failingRelease) Release(a ipam.Attachment) ([]netip.Addr, error) {
	if a == f.bad {
		return nil, errors.New("release 10.0.0.2: remove /x/10.0.0.2: operation not permitted")
	}
	return f.MemStore.Release(a)
}

// One lease that cannot be released must not keep GC from releasing the
// others (it must still fail, naming that lease).
func TestCollectGoesOnAfterAFailure(t *testing.T) {
	s := failingRelease{MemStore: ipam.NewMemStore(), bad: ipam.Attachment{ContainerID: "a", IfName: "eth0"}}
	for addr, id := range map[string]string{"10.0.0.2": "a", "10.0.0.3": "b", "10.0.0.4": "c"} {
		if ok, err := s.Reserve(ipam.Attachment{ContainerID: id, IfName: "eth0"}, netip.MustParseAddr(addr), 0); !ok || err != nil {
			t.Fatal(ok, err)
		}
	}
	err := Collect(s, nil)
	if err == nil || !strings.Contains(err.Error(), "10.0.0.2") {
		t.Errorf("Collect: %v, want the failure naming 10.0.0.2", err)
	}
	all, _ := s.All()
	if len(all) != 1 {
		t.Errorf("after GC, leases left: %v, want only 10.0.0.2", all)
	}
}
