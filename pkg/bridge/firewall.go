package bridge

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"

	"github.com/flatcni/plugins/pkg/config"
	"github.com/flatcni/plugins/pkg/firewall"
	"github.com/flatcni/plugins/pkg/link"
)

// lockDir holds one lock file per network, serialising "make sure the rules
// exist" (ADD) with "remove them if the network is now empty" (DEL).
const lockDir = firewall.DefaultLockDir

// firewallNetwork describes the network's rules. Subnets come from the IPAM
// configuration's ranges when it has them (the same for every ADD, so the
// rules are not rewritten), else from the addresses IPAM handed out.
func firewallNetwork(c *config.Bridge, stdin []byte, p plan) firewall.Network {
	n := firewall.Network{
		Name:          c.Name,
		Bridge:        c.BrName,
		Subnets:       configuredSubnets(stdin),
		NonMasquerade: c.NonMasq,
		Masquerade:    true,
		Forward:       true,
	}
	if len(n.Subnets) == 0 {
		n.Subnets = subnets(p.addrs)
	}
	return n
}

// configuredSubnets reads ipam.subnet and ipam.ranges[*][*].subnet, whatever
// the IPAM plugin; nil when there are none.
func configuredSubnets(stdin []byte) []netip.Prefix {
	var conf struct {
		IPAM struct {
			Subnet string `json:"subnet"`
			Ranges [][]struct {
				Subnet string `json:"subnet"`
			} `json:"ranges"`
		} `json:"ipam"`
	}
	if json.Unmarshal(stdin, &conf) != nil {
		return nil
	}
	var out []netip.Prefix
	add := func(s string) {
		if p, err := netip.ParsePrefix(s); err == nil {
			out = append(out, p.Masked())
		}
	}
	add(conf.IPAM.Subnet)
	for _, set := range conf.IPAM.Ranges {
		for _, r := range set {
			add(r.Subnet)
		}
	}
	return out
}

func ensureFirewall(c *config.Bridge, stdin []byte, p plan) error {
	fw, err := firewall.New(c.MasqBackend())
	if err != nil {
		return config.Invalid("ipMasqBackend", "%v", err)
	}
	unlock, err := lockNetwork(c.Name)
	if err != nil {
		return err
	}
	defer unlock()
	if err := fw.Ensure(firewallNetwork(c, stdin, p)); err != nil {
		return fmt.Errorf("ipMasq (%s): %w", fw.Name(), err)
	}
	return nil
}

// removeFirewallIfEmpty removes the network's rules when its bridge has no
// attached port with carrier left (the bridge itself then has no carrier).
// ADD ensures the rules only after its veth is up, under the same lock, so an
// ADD racing with this DEL always ends with the rules in place. Since no
// container is then attached, the reference plugin's per-container rules of
// the network (left on a node switched over in place) are removed as well.
func removeFirewallIfEmpty(c *config.Bridge) error {
	fw, err := firewall.New(c.MasqBackend())
	if err != nil {
		return config.Invalid("ipMasqBackend", "%v", err)
	}
	unlock, err := lockNetwork(c.Name)
	if err != nil {
		return err
	}
	defer unlock()
	inUse, err := link.BridgeInUse(c.BrName)
	if err != nil || inUse {
		return err
	}
	if err := fw.Remove(c.Name); err != nil {
		return fmt.Errorf("ipMasq (%s): %w", fw.Name(), err)
	}
	return errors.Join(removeReferenceRules(c, nil)...)
}

// removeReferenceRules deletes the reference plugin's per-container
// masquerade rules of the network whose container is not in keep, with
// whichever backends this node has. The reference may have used either
// backend; only the configured one's failures are reported (the other may
// not exist on this node).
func removeReferenceRules(c *config.Bridge, keep map[string]bool) []error {
	var errs []error
	for _, name := range []string{firewall.IPTablesName, firewall.NFTablesName} {
		fw, err := firewall.New(name)
		if err != nil {
			continue
		}
		if err := fw.RemoveLegacy(c.Name, keep); err != nil && (c.MasqBackend() == "" || c.MasqBackend() == name) {
			errs = append(errs, fmt.Errorf("remove reference plugin's rules (%s): %w", name, err))
		}
	}
	return errs
}

// lockNetwork takes the network's lock file under lockDir.
func lockNetwork(network string) (func(), error) {
	if err := os.MkdirAll(lockDir, 0o700); err != nil {
		return nil, fmt.Errorf("lock directory: %w", err)
	}
	path := filepath.Join(lockDir, "net-"+network+".lock")
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return nil, fmt.Errorf("network lock: %w", err)
	}
	for {
		err = unix.Flock(int(f.Fd()), unix.LOCK_EX)
		if err != unix.EINTR {
			break
		}
	}
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("network lock %s: %w", path, err)
	}
	return func() { f.Close() }, nil
}
