package disk

import (
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/flatcni/plugins/pkg/ipam"
)

// A file whose name parses as an address but is not the address's own
// spelling (upper-case IPv6, an IPv4-mapped IPv6 address) is not a lease
// file of either plugin (both write addr.String()). Listed as a lease of
// the canonical address, its release removes a name that does not exist:
// GC reports success and the file stays, listed again by the next GC.
func TestNonCanonicalLeaseNames(t *testing.T) {
	for _, name := range []string{"FD00::5", "::ffff:10.0.0.9"} {
		t.Run(name, func(t *testing.T) {
			s := open(t)
			reserve(t, s, attA, "10.0.0.2", 0)
			if err := os.WriteFile(filepath.Join(s.Dir(), name), []byte("ctr-z\r\neth0"), 0o600); err != nil {
				t.Fatal(err)
			}
			z := ipam.Attachment{ContainerID: "ctr-z", IfName: "eth0"}
			var all []ipam.Lease
			locked(t, s, func() {
				var err error
				if all, err = s.All(); err != nil {
					t.Fatal(err)
				}
				for _, l := range all {
					if l.Attachment == z {
						if _, err := s.Release(z); err != nil {
							t.Fatalf("Release: %v", err)
						}
					}
				}
			})
			var again []netip.Addr
			locked(t, s, func() {
				var err error
				if again, err = s.Leases(z); err != nil {
					t.Fatal(err)
				}
			})
			if len(again) > 0 {
				t.Errorf("after its release, %s still holds %v (the file %s stays): a GC that succeeds and releases nothing", z, again, name)
			}
			// A's lease is untouched either way.
			if got := leases(t, s, attA); got != "[10.0.0.2]" {
				t.Errorf("A holds %s", got)
			}
		})
	}
}

// A foreign file named by an IPv4-mapped spelling of an address that B
// holds: GC of the file's (invalid) holder must not release B's lease.
func TestMappedNameDoesNotReleaseOthersLease(t *testing.T) {
	s := open(t)
	reserve(t, s, attB, "10.0.0.9", 0)
	if err := os.WriteFile(filepath.Join(s.Dir(), "::ffff:10.0.0.9"), []byte("ctr-z\r\neth0"), 0o600); err != nil {
		t.Fatal(err)
	}
	z := ipam.Attachment{ContainerID: "ctr-z", IfName: "eth0"}
	locked(t, s, func() {
		if _, err := s.Release(z); err != nil {
			t.Fatalf("Release: %v", err)
		}
	})
	if got := leases(t, s, attB); got != "[10.0.0.9]" {
		t.Errorf("releasing %s took B's lease: B holds %s", z, got)
	}
}

// TestLeasedIn: the prefixes holding a lease file's name, read from names
// alone; a link, a directory or another spelling of an address is no
// lease, and neither is a link at the directory's name (never followed).
func TestLeasedIn(t *testing.T) {
	pp := netip.MustParsePrefix
	dir := filepath.Join(t.TempDir(), "net1")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"fd22::5", "10.1.0.9", "lock", "last_reserved_ip.0"} {
		if err := os.WriteFile(filepath.Join(dir, f), []byte("c1\r\neth0"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink("fd22::5", filepath.Join(dir, "fd23::5")); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(dir, "fd24::5"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "FD25::5"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	all := []netip.Prefix{pp("fd22::/64"), pp("fd23::/64"), pp("fd24::/64"), pp("fd25::/64"), pp("10.1.0.0/24"), pp("10.2.0.0/24")}
	got, err := LeasedIn(dir, all)
	if err != nil {
		t.Fatal(err)
	}
	slices.SortFunc(got, func(a, b netip.Prefix) int { return a.Addr().Compare(b.Addr()) })
	if want := []netip.Prefix{pp("10.1.0.0/24"), pp("fd22::/64")}; !slices.Equal(got, want) {
		t.Errorf("LeasedIn = %v, want %v", got, want)
	}
	if got, err := LeasedIn(filepath.Join(t.TempDir(), "missing"), all); err != nil || got != nil {
		t.Errorf("LeasedIn of a missing directory = %v, %v; want none", got, err)
	}
	link := filepath.Join(t.TempDir(), "net2")
	if err := os.Symlink(dir, link); err != nil {
		t.Fatal(err)
	}
	if got, err := LeasedIn(link, all); err == nil {
		t.Errorf("LeasedIn through a symbolic link = %v, want an error", got)
	}
}
