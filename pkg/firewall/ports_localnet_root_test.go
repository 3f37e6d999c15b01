package firewall

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/containernetworking/plugins/pkg/ns"
	"github.com/google/nftables"
)

// localnetDropThere reports whether the network's drop of packets to
// 127.0.0.0/8 is in the node's rules (run in the node's namespace).
func localnetDropThere(backend, network string) (bool, error) {
	if backend == NFTablesName {
		c, err := nftables.New()
		if err != nil {
			return false, err
		}
		rules, _, _ := chainRules(c, nftPortsTable(network), nftPortsRaw) // no table: no drop
		return len(rules) > 0, nil
	}
	out, err := exec.Command("iptables", "-w", "-t", rawTable, "-S", preroutingChain).CombinedOutput()
	if err != nil {
		return false, fmt.Errorf("iptables -t raw -S PREROUTING: %v: %s", err, out)
	}
	return strings.Contains(string(out), portsCommentPrefix+network+" cfg="), nil
}

// TestPortsUnguardBeforeTheDropGoes: with each real backend, the
// WithUnguard function (which turns the bridge's route_localnet off) is
// called once, when the network's last mapping goes, while the 127.0.0.0/8
// drop is still there: route_localnet is never on without the drop. Its
// error keeps the drop. A removal that leaves a mapping calls nothing.
// Holds sees the rule set while it exists, Guarding its drop and bridge.
func TestPortsUnguardBeforeTheDropGoes(t *testing.T) {
	requireRoot(t)
	name := fmt.Sprintf("fch-fw-ung-%d", os.Getpid())
	if out, err := exec.Command("ip", "netns", "add", name).CombinedOutput(); err != nil {
		t.Fatalf("ip netns add %s: %v: %s", name, err, out)
	}
	t.Cleanup(func() { _ = exec.Command("ip", "netns", "del", name).Run() })
	netns, err := ns.GetNS("/var/run/netns/" + name)
	if err != nil {
		t.Fatal(err)
	}
	defer netns.Close()
	c1 := Attachment{ContainerID: "c1", IfName: "eth0"}
	c2 := Attachment{ContainerID: "c2", IfName: "eth0"}
	n := PortNetwork{Name: "ung", Bridge: "brl", Subnets: pfx("10.43.0.0/24")}
	for _, backend := range []string{IPTablesName, NFTablesName} {
		t.Run(backend, func(t *testing.T) {
			var calls []bool // whether the drop was there at each call
			var fail error
			b, err := NewPorts(backend, WithLockDir(t.TempDir()), WithUnguard(func(self string) error {
				there, err := localnetDropThere(backend, n.Name)
				calls = append(calls, there && err == nil && self == backend)
				return fail
			}))
			if err != nil {
				t.Fatal(err)
			}
			err = netns.Do(func(ns.NetNS) error {
				if b.Holds(n.Name) {
					return fmt.Errorf("Holds before any Publish")
				}
				if err := b.Publish(n, c1, []Mapping{mp("tcp", "", 8080, "10.43.0.2", 80)}); err != nil {
					return err
				}
				if !b.Holds(n.Name) || b.Holds("other") {
					return fmt.Errorf("Holds after Publish: %t, of another network: %t", b.Holds(n.Name), b.Holds("other"))
				}
				if g := b.Guarding(); len(g) != 1 || g[n.Name] != n.Bridge {
					return fmt.Errorf("Guarding after Publish: %v, want %s on %s only", g, n.Name, n.Bridge)
				}
				if err := b.Publish(n, c2, []Mapping{mp("tcp", "", 8081, "10.43.0.3", 80)}); err != nil {
					return err
				}
				if err := b.Unpublish(n.Name, c1); err != nil {
					return err
				}
				if len(calls) != 0 {
					return fmt.Errorf("a mapping of the network stays, and the unguard function was called")
				}
				fail = errors.New("cannot write the sysctl")
				if err := b.Unpublish(n.Name, c2); err == nil || !strings.Contains(err.Error(), "cannot write the sysctl") {
					return fmt.Errorf("last Unpublish with a failing unguard function: %v, want its error", err)
				}
				if there, err := localnetDropThere(backend, n.Name); err != nil || !there {
					return fmt.Errorf("the unguard function failed, and the drop is gone (%t, %v)", there, err)
				}
				fail = nil
				if err := b.Retain(n.Name, nil); err != nil {
					return err
				}
				if there, err := localnetDropThere(backend, n.Name); err != nil || there {
					return fmt.Errorf("after the network's rule set went: drop there %t (%v)", there, err)
				}
				if b.Holds(n.Name) || len(b.Guarding()) != 0 {
					return fmt.Errorf("Holds (%t) or Guarding (%v) after the network's rule set went", b.Holds(n.Name), b.Guarding())
				}
				if len(calls) != 2 || !calls[0] || !calls[1] {
					return fmt.Errorf("unguard calls %v, want two, each while the drop was there, naming the backend", calls)
				}
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
		})
	}
}

// TestPortsLeaveIPv6Loopback: a mapping without hostIP leaves the node's
// [::1]:<port> alone (each backend): a service of the node listening there
// still answers. ::1 cannot be published (the kernel drops what is
// redirected from it to another host), and redirecting it blackholed the
// service. 127.0.0.1 is published (route_localnet): not looked at here.
func TestPortsLeaveIPv6Loopback(t *testing.T) {
	requireRoot(t)
	n := PortNetwork{Name: "lo6", Bridge: "brl6", Subnets: pfx("fd43::/64", "10.44.0.0/24")}
	for _, backend := range []string{IPTablesName, NFTablesName} {
		t.Run(backend, func(t *testing.T) {
			ns := newTestNS(t, "lo6")
			ns.exec(t, "ip", "link", "set", "lo", "up")
			b, err := NewPorts(backend, WithLockDir(t.TempDir()))
			if err != nil {
				t.Fatal(err)
			}
			defer func() { _ = ns.do(t, func() error { return b.Retain(n.Name, nil) }) }()
			var ln net.Listener
			if err := ns.do(t, func() (err error) { ln, err = net.Listen("tcp6", "[::1]:0"); return err }); err != nil {
				t.Fatal(err)
			}
			defer ln.Close()
			go func() {
				for {
					c, err := ln.Accept()
					if err != nil {
						return
					}
					_, _ = c.Write([]byte("node"))
					c.Close()
				}
			}()
			port := uint16(ln.Addr().(*net.TCPAddr).Port)
			owner := Attachment{ContainerID: "c1", IfName: "eth0"}
			if err := ns.do(t, func() error { return b.Publish(n, owner, []Mapping{mp("tcp", "", port, "fd43::2", 80)}) }); err != nil {
				t.Fatal(err)
			}
			var got []byte
			err = ns.do(t, func() error {
				c, err := net.DialTimeout("tcp6", ln.Addr().String(), 2*time.Second)
				if err != nil {
					return err
				}
				defer c.Close()
				_ = c.SetDeadline(time.Now().Add(2 * time.Second))
				got, err = io.ReadAll(c)
				return err
			})
			if err != nil || string(got) != "node" {
				t.Errorf("the node's [::1]:%d with a wildcard mapping of that port: %q, %v; want the node's service", port, got, err)
			}
		})
	}
}

// TestPortsUnguardRuleSetGoneWithoutUs: a rule set removed without us (a
// firewall reload, nft flush ruleset) took its 127.0.0.0/8 drop along,
// while the bridge's route_localnet stayed on. With each real backend, the
// network's last DEL (Unpublish) and GC (Retain) call the WithUnguard
// function all the same, as the index still records the network, and so
// does Refresh (an ADD that publishes nothing) while other attachments'
// records remain, once (it makes the index forget them). A network the index never recorded
// (the reference portmap's, which sets route_localnet itself) calls
// nothing.
func TestPortsUnguardRuleSetGoneWithoutUs(t *testing.T) {
	requireRoot(t)
	c1 := Attachment{ContainerID: "c1", IfName: "eth0"}
	c2 := Attachment{ContainerID: "c2", IfName: "eth0"}
	n := PortNetwork{Name: "ungone", Bridge: "brl", Subnets: pfx("10.43.0.0/24")}
	for _, backend := range []string{IPTablesName, NFTablesName} {
		for _, verb := range []string{"Unpublish", "Retain", "Refresh"} {
			t.Run(backend+"/"+verb, func(t *testing.T) {
				node := newTestNS(t, "ungone")
				unguards := 0
				b, err := NewPorts(backend, WithLockDir(t.TempDir()), WithUnguard(func(string) error { unguards++; return nil }))
				if err != nil {
					t.Fatal(err)
				}
				if err := node.do(t, func() error { return b.Retain("never", nil) }); err != nil || unguards != 0 {
					t.Fatalf("Retain of a network never published: %v, %d unguard calls", err, unguards)
				}
				if err := node.do(t, func() error {
					if err := b.Publish(n, c1, []Mapping{mp("tcp", "", 8080, "10.43.0.2", 80)}); err != nil {
						return err
					}
					return b.Publish(n, c2, []Mapping{mp("tcp", "", 8081, "10.43.0.3", 80)})
				}); err != nil {
					t.Fatal(err)
				}
				node.exec(t, "nft", "flush", "ruleset")
				err = node.do(t, func() error {
					switch verb {
					case "Unpublish":
						if err := b.Unpublish(n.Name, c1); err != nil {
							return err
						}
						return b.Unpublish(n.Name, c2)
					case "Retain":
						return b.Retain(n.Name, nil)
					default:
						// Once: the index forgets the rule set.
						if err := b.Refresh(n); err != nil {
							return err
						}
						return b.Refresh(n)
					}
				})
				if err != nil {
					t.Fatalf("%s: %v", verb, err)
				}
				if unguards != 1 {
					t.Errorf("%s after the rule set went without us: %d unguard calls, want 1 (route_localnet would stay on without the drop)", verb, unguards)
				}
			})
		}
	}
}
