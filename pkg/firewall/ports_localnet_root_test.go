package firewall

import (
	"fmt"
	"os"
	"os/exec"
	"testing"

	"github.com/containernetworking/plugins/pkg/ns"
)

// TestPortsLocalnetGuarded: with each real backend, the network's 127.0.0.0/8
// drop is reported while it publishes an IPv4 mapping, and not once its
// rule set is gone.
func TestPortsLocalnetGuarded(t *testing.T) {
	requireRoot(t)
	name := fmt.Sprintf("fch-fwrev-lng-%d", os.Getpid())
	if out, err := exec.Command("ip", "netns", "add", name).CombinedOutput(); err != nil {
		t.Fatalf("ip netns add %s: %v: %s", name, err, out)
	}
	t.Cleanup(func() { _ = exec.Command("ip", "netns", "del", name).Run() })
	netns, err := ns.GetNS("/var/run/netns/" + name)
	if err != nil {
		t.Fatal(err)
	}
	defer netns.Close()
	owner := Attachment{ContainerID: "c1", IfName: "eth0"}
	n := PortNetwork{Name: "lng", Bridge: "brl", Subnets: pfx("10.43.0.0/24")}
	for _, backend := range []string{IPTablesName, NFTablesName} {
		t.Run(backend, func(t *testing.T) {
			b, err := NewPorts(backend, WithLockDir(t.TempDir()))
			if err != nil {
				t.Fatal(err)
			}
			err = netns.Do(func(ns.NetNS) error {
				if ok, err := b.LocalnetGuarded(n.Name); err != nil || ok {
					return fmt.Errorf("before Publish: %t, %v", ok, err)
				}
				if err := b.Publish(n, owner, []Mapping{mp("tcp", "", 8080, "10.43.0.2", 80)}); err != nil {
					return err
				}
				if ok, err := b.LocalnetGuarded(n.Name); err != nil || !ok {
					return fmt.Errorf("after Publish: %t, %v", ok, err)
				}
				if err := b.Unpublish(n.Name, owner); err != nil {
					return err
				}
				if ok, err := b.LocalnetGuarded(n.Name); err != nil || ok {
					return fmt.Errorf("after the last Unpublish: %t, %v", ok, err)
				}
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
		})
	}
}
