package link

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/containernetworking/plugins/pkg/ns"

	"github.com/flatcni/plugins/internal/testns"
	"github.com/vishvananda/netlink"
)

func requireRoot(t *testing.T) {
	t.Helper()
	testns.RequireRoot(t)
}

// newNetNS creates a throwaway named netns and returns its path; it is
// deleted when the test ends.
func newNetNS(t *testing.T, purpose string) string {
	t.Helper()
	return testns.New(t, purpose).Path
}

// deleteNetNS removes a netns made by newNetNS; deleting twice is fine.
func deleteNetNS(t *testing.T, path string) {
	t.Helper()
	if _, err := os.Stat(path); os.IsNotExist(err) {
		return
	}
	if out, err := exec.Command("ip", "netns", "del", filepath.Base(path)).CombinedOutput(); err != nil {
		t.Errorf("ip netns del %s: %v: %s", path, err, out)
	}
}

// in runs fn inside the netns at path on a locked OS thread and fails the
// test with fn's error. fn may call t.Error but not t.Fatal.
func in(t *testing.T, path string, fn func() error) {
	t.Helper()
	target, err := ns.GetNS(path)
	if err != nil {
		t.Fatalf("open netns %s: %v", path, err)
	}
	defer target.Close()
	if err := target.Do(func(ns.NetNS) error { return fn() }); err != nil {
		t.Fatal(err)
	}
}

// inErr is in without failing: it returns fn's error. Safe to call from
// goroutines other than the test's.
func inErr(t *testing.T, path string, fn func() error) error {
	t.Helper()
	return testns.Do(path, fn)
}

// bridgedVeth makes sure bridge brName exists in the current netns and wires
// the container netns at cont to it with a veth pair whose container end is
// eth0.
func bridgedVeth(brName, cont string) (br Bridge, host, contEnd Interface, err error) {
	br, err = EnsureBridge(BridgeConfig{Name: brName})
	if err != nil {
		return br, host, contEnd, err
	}
	host, contEnd, err = SetupVeth(VethConfig{ContainerNetNS: cont, IfName: "eth0", Bridge: br})
	return br, host, contEnd, err
}

// linkNames lists the links in the current netns.
func linkNames() ([]string, error) {
	links, err := netlink.LinkList()
	if err != nil {
		return nil, err
	}
	names := make([]string, 0, len(links))
	for _, l := range links {
		names = append(names, l.Attrs().Name)
	}
	return names, nil
}

// addVethPair creates a veth pair with both ends in the current netns (this
// kernel has no dummy driver, so veths stand in for "some other link").
func addVethPair(name, peer string) error {
	attrs := netlink.NewLinkAttrs()
	attrs.Name = name
	return netlink.LinkAdd(&netlink.Veth{LinkAttrs: attrs, PeerName: peer})
}

func wantErrContains(t *testing.T, err error, parts ...string) {
	t.Helper()
	if err == nil {
		t.Fatalf("want error containing %q, got nil", parts)
	}
	for _, p := range parts {
		if !strings.Contains(err.Error(), p) {
			t.Errorf("error %q does not contain %q", err, p)
		}
	}
}
