package link

import (
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"syscall"

	"github.com/containernetworking/plugins/pkg/ns"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/flatcni/plugins/pkg/rtnl"
)

// hostVethAttempts bounds the retries on a random host name collision.
const hostVethAttempts = 10

// VethConfig describes the veth pair SetupVeth wires between the node
// bridge and a container.
type VethConfig struct {
	ContainerNetNS string           // path of the container netns
	IfName         string           // name of the container end
	MTU            int              // both ends; 0 keeps the kernel default
	MAC            net.HardwareAddr // container end; nil lets the kernel pick
	Bridge         Bridge           // the host end is enslaved to it
	// HostName is the preferred name of the host end (e.g. derived from the
	// attachment, so DEL can find it without the container netns); when it is
	// empty or taken, a random "veth" name is drawn.
	HostName string
	// HostAlias is set as the host end's alias (ip link's "alias"): the
	// attachment it belongs to, so that DEL and GC can tell it from others.
	HostAlias     string
	HairpinMode   bool
	PortIsolation bool
	// DisableContainerInterface leaves the container end down.
	DisableContainerInterface bool
	// EnableDAD keeps IPv6 duplicate address detection on for the
	// container end; pass the same value to ConfigureContainer.
	EnableDAD bool
	// DeferAttach brings the host end up without making it a port of
	// Bridge: the caller attaches it later with AttachPort, after
	// ConfigureContainer (which then also ends the container end's MLDv1
	// spell, see mld.go).
	DeferAttach bool
	// L2Only is set for a network without IPAM: the container end keeps
	// the kernel's accept_dad and arp_notify, as with the reference plugin,
	// which sets them only for addresses it configures (whatever the
	// container runs on the interface, SLAAC or DHCP, then does DAD).
	L2Only bool
}

// Interface describes one end of a veth pair.
type Interface struct {
	Name    string
	MAC     net.HardwareAddr
	Index   int
	Sandbox string // netns path for the container end, empty on the node

	mld *mldSettings // container end: what ConfigureContainer puts back
}

// SetupVeth creates a veth pair whose container end is created directly in
// cfg.ContainerNetNS as cfg.IfName, and whose host end, named "veth" plus
// eight random hex digits, is attached to the bridge and brought up. The
// container end is brought up unless DisableContainerInterface is set.
// If IfName already exists in the container netns the call fails naming it;
// on any failure nothing is left behind.
func SetupVeth(cfg VethConfig) (host Interface, cont Interface, err error) {
	err = withNetNSHandle(cfg.ContainerNetNS, func(target ns.NetNS) error {
		host, cont, err = setupVeth(cfg, target)
		return err
	})
	return host, cont, err
}

func setupVeth(cfg VethConfig, target ns.NetNS) (host Interface, cont Interface, err error) {
	// An IfName taken in the container fails the pair's creation, with the
	// same error as CheckIfNameFree's (callers check that first).
	hostName, err := createVethPair(cfg, target)
	if err != nil {
		return Interface{}, Interface{}, err
	}
	defer func() {
		if err != nil {
			// Deleting one end removes the pair.
			if l, lerr := linkByName(hostName); lerr == nil {
				_ = netlink.LinkDel(l)
			}
		}
	}()

	host, err = setupHostEnd(cfg, hostName)
	if err != nil {
		return Interface{}, Interface{}, err
	}
	err = inNetNS(cfg.ContainerNetNS, func(ns.NetNS) error {
		var cerr error
		cont, cerr = setupContainerEnd(cfg)
		return cerr
	})
	if err != nil {
		return Interface{}, Interface{}, err
	}
	return host, cont, nil
}

// CheckIfNameFree fails, naming the interface, when ifName already exists in
// the container netns: callers check it before allocating anything for a new
// attachment, so that a repeated ADD does not disturb the live one.
func CheckIfNameFree(netnsPath, ifName string) error {
	return inNetNS(netnsPath, func(ns.NetNS) error {
		return ifNameFree(VethConfig{ContainerNetNS: netnsPath, IfName: ifName})
	})
}

// errIfNameTaken is the error of an IfName that exists in the container.
func errIfNameTaken(cfg VethConfig) error {
	return IfNameTaken(cfg.ContainerNetNS, cfg.IfName)
}

// ifNameFree fails when cfg.IfName already exists in the current netns.
func ifNameFree(cfg VethConfig) error {
	_, err := linkByName(cfg.IfName)
	switch {
	case err == nil:
		return errIfNameTaken(cfg)
	case isNotFound(err):
		return nil
	default:
		return fmt.Errorf("look up %q in netns %q: %w", cfg.IfName, cfg.ContainerNetNS, err)
	}
}

// createVethPair creates the pair from the node side with the peer placed
// straight into the container netns, retrying on host name collisions.
func createVethPair(cfg VethConfig, target ns.NetNS) (string, error) {
	for attempt := range hostVethAttempts {
		name, err := cfg.HostName, error(nil)
		if attempt > 0 || name == "" {
			if name, err = randomVethName(); err != nil {
				return "", err
			}
		}
		attrs := netlink.NewLinkAttrs()
		attrs.Name = name
		attrs.MTU = cfg.MTU
		// Transmit queue lengths as the reference plugin leaves them: the
		// container end the kernel's default, 1000 (DEFAULT_TX_QUEUE_LEN),
		// the host end 0 (the reference makes the pair from the container
		// side, with the netlink library's zero peer queue length). A qdisc
		// added in the container later (pfifo, say) takes its limit from
		// it. With PeerTxQLen -1 the library would give the peer
		// attrs.TxQLen.
		attrs.TxQLen = 0
		v := &netlink.Veth{
			LinkAttrs:        attrs,
			PeerName:         cfg.IfName,
			PeerHardwareAddr: cfg.MAC,
			PeerNamespace:    netlink.NsFd(int(target.Fd())),
			PeerTxQLen:       1000,
		}
		err = netlink.LinkAdd(v)
		if err == nil {
			return name, nil
		}
		if !errors.Is(err, syscall.EEXIST) {
			return "", fmt.Errorf("create veth pair %s/%s for netns %q: %w", name, cfg.IfName, cfg.ContainerNetNS, err)
		}
		if _, lerr := linkByName(name); lerr == nil {
			continue // host name taken: draw another
		}
		// The host name is free: the container's is taken.
		return "", errIfNameTaken(cfg)
	}
	return "", fmt.Errorf("create veth pair for netns %q: no free host veth name after %d attempts", cfg.ContainerNetNS, hostVethAttempts)
}

func randomVethName() (string, error) {
	name, err := RandomName("veth", 4)
	if err != nil {
		return "", fmt.Errorf("generate host veth name: %w", err)
	}
	return name, nil
}

// RandomName is prefix followed by n random bytes in hex, for links that need
// a unique name. It reads the kernel's random source directly (crypto/rand
// would link math/big and a DRBG into the plugins, and run their
// initialisation at every start).
func RandomName(prefix string, n int) (string, error) {
	b := make([]byte, n)
	for read := 0; read < n; {
		m, err := unix.Getrandom(b[read:], 0)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return "", os.NewSyscallError("getrandom", err)
		}
		read += m
	}
	return prefix + hex.EncodeToString(b), nil
}

// in6AddrGenModeNone is IN6_ADDR_GEN_MODE_NONE (linux/if_link.h): no IPv6
// link-local address is made for the interface.
const in6AddrGenModeNone = 1

// setupHostEnd enslaves the host end to the bridge (unless DeferAttach),
// applies port options and brings it up.
func setupHostEnd(cfg VethConfig, name string) (Interface, error) {
	l, err := linkByName(name)
	if err != nil {
		return Interface{}, fmt.Errorf("look up host veth %q: %w", name, err)
	}
	if !cfg.DeferAttach {
		if err := attachPort(l, cfg); err != nil {
			return Interface{}, err
		}
	}
	if cfg.HostAlias != "" {
		if err := netlink.LinkSetAlias(l, cfg.HostAlias); err != nil {
			return Interface{}, fmt.Errorf("set alias of %q: %w", name, err)
		}
	}
	// A bridge port needs no address of its own: with no IPv6 address
	// generation it gets no link-local address, so bringing it up starts no
	// DAD, MLD or router solicitation work and adds no per-port address to
	// the node's IPv6 tables. Set through netlink, not /proc/sys (see
	// pkg/rtnl). Best effort: IPv6 may be off on the node.
	_ = netlink.LinkSetIP6AddrGenMode(l, in6AddrGenModeNone)
	if err := netlink.LinkSetUp(l); err != nil {
		return Interface{}, fmt.Errorf("set %q up: %w", name, err)
	}
	a := l.Attrs()
	return Interface{Name: a.Name, MAC: a.HardwareAddr, Index: a.Index}, nil
}

// AttachPort makes host, the host end of a pair made with DeferAttach, a
// port of cfg.Bridge with the port options of cfg. It addresses the link by
// the index SetupVeth returned: no lookup on ADD's critical path.
func AttachPort(host Interface, cfg VethConfig) error {
	return attachPort(device(host.Index, host.Name, host.MAC), cfg)
}

func attachPort(l netlink.Link, cfg VethConfig) error {
	name := l.Attrs().Name
	if err := netlink.LinkSetMasterByIndex(l, cfg.Bridge.Index); err != nil {
		return fmt.Errorf("attach %q to bridge %q: %w", name, cfg.Bridge.Name, err)
	}
	if cfg.HairpinMode {
		if err := netlink.LinkSetHairpin(l, true); err != nil {
			return fmt.Errorf("set hairpin mode on %q: %w", name, err)
		}
	}
	if cfg.PortIsolation {
		if err := netlink.LinkSetIsolated(l, true); err != nil {
			return fmt.Errorf("set port isolation on %q: %w", name, err)
		}
	}
	return nil
}

// setupContainerEnd runs inside the container netns.
func setupContainerEnd(cfg VethConfig) (Interface, error) {
	l, err := linkByName(cfg.IfName)
	if err != nil {
		return Interface{}, fmt.Errorf("look up %q in netns %q: %w", cfg.IfName, cfg.ContainerNetNS, err)
	}
	if !cfg.L2Only {
		setContainerSysctls(l, cfg.EnableDAD)
	}
	var mld *mldSettings
	if !cfg.DisableContainerInterface {
		if cfg.DeferAttach {
			mld = muteMLD(l.Attrs().Index, cfg.IfName)
		}
		if err := netlink.LinkSetUp(l); err != nil {
			return Interface{}, fmt.Errorf("set %q up in netns %q: %w", cfg.IfName, cfg.ContainerNetNS, err)
		}
	}
	a := l.Attrs()
	return Interface{Name: a.Name, MAC: a.HardwareAddr, Index: a.Index, Sandbox: cfg.ContainerNetNS, mld: mld}, nil
}

// setContainerSysctls applies the per-interface settings the reference
// plugin uses in the container: gratuitous ARP on address changes, and DAD
// on or off. Best effort: IPv6 may be disabled in the container. The
// interface is fresh: written without reading first, and the IPv4 setting
// through netlink (see pkg/rtnl).
func setContainerSysctls(l netlink.Link, dad bool) {
	ifName := l.Attrs().Name
	if dad {
		_ = writeSysctl("net/ipv6/conf/"+ifName+"/enhanced_dad", "1")
		_ = writeSysctl("net/ipv6/conf/"+ifName+"/accept_dad", "1")
	} else {
		_ = writeSysctl("net/ipv6/conf/"+ifName+"/accept_dad", "0")
	}
	_ = rtnl.SetIPv4Conf(int32(l.Attrs().Index), rtnl.IPv4ArpNotify, 1)
}

// DelVeth deletes ifName in the container netns, which removes the whole
// pair. A missing netns or interface is not an error. It returns the host
// peer's name when it could be learned (empty otherwise) and the global
// unicast addresses the interface carried (for IP masquerade teardown).
func DelVeth(netnsPath, ifName string) (hostVeth string, addrs []netip.Prefix, err error) {
	err = inNetNS(netnsPath, func(node ns.NetNS) error {
		l, err := linkByName(ifName)
		if err != nil {
			if isNotFound(err) {
				return nil
			}
			return fmt.Errorf("look up %q in netns %q: %w", ifName, netnsPath, err)
		}
		list, err := addrList(l, netlink.FAMILY_ALL)
		if err != nil {
			return fmt.Errorf("list addresses of %q in netns %q: %w", ifName, netnsPath, err)
		}
		for _, a := range list {
			if p, ok := prefixOf(a.IPNet); ok && p.Addr().IsGlobalUnicast() {
				addrs = append(addrs, p)
			}
		}
		if _, isVeth := l.(*netlink.Veth); isVeth {
			_ = node.Do(func(ns.NetNS) error {
				hostVeth, _ = peerIn(l.Attrs().ParentIndex, l.Attrs().Index)
				return nil
			})
		}
		if err := netlink.LinkDel(l); err != nil && !errors.Is(err, syscall.ENODEV) {
			return fmt.Errorf("delete %q in netns %q: %w", ifName, netnsPath, err)
		}
		return nil
	})
	if errors.Is(err, ErrNetNSGone) {
		return "", nil, nil
	}
	return hostVeth, addrs, err
}

// DelLink deletes the named link in the current netns; a missing link is
// not an error.
func DelLink(name string) error {
	l, err := linkByName(name)
	if err != nil {
		if isNotFound(err) {
			return nil
		}
		return fmt.Errorf("look up %q: %w", name, err)
	}
	if err := netlink.LinkDel(l); err != nil && !errors.Is(err, syscall.ENODEV) {
		return fmt.Errorf("delete %q: %w", name, err)
	}
	return nil
}

// InterfaceByName looks up a link of the current network namespace.
func InterfaceByName(name string) (Interface, error) {
	l, err := linkByName(name)
	if err != nil {
		if isNotFound(err) {
			return Interface{}, fmt.Errorf("link %q: %w", name, ErrNotFound)
		}
		return Interface{}, fmt.Errorf("look up %q: %w", name, err)
	}
	a := l.Attrs()
	return Interface{Name: a.Name, MAC: a.HardwareAddr, Index: a.Index}, nil
}

// HostPeer returns the name of the node-side (current netns) peer of the
// veth ifName in the container netns.
func HostPeer(netnsPath, ifName string) (string, error) {
	var peerIdx, contIdx int
	err := inNetNS(netnsPath, func(ns.NetNS) error {
		l, err := linkByName(ifName)
		if err != nil {
			if isNotFound(err) {
				return fmt.Errorf("%s in %s: %w", ifName, netnsPath, ErrNotFound)
			}
			return fmt.Errorf("look up %s in %s: %w", ifName, netnsPath, err)
		}
		if _, ok := l.(*netlink.Veth); !ok {
			return fmt.Errorf("%s in %s is not a veth (type %s)", ifName, netnsPath, l.Type())
		}
		peerIdx, contIdx = l.Attrs().ParentIndex, l.Attrs().Index
		return nil
	})
	if err != nil {
		return "", err
	}
	name, err := peerIn(peerIdx, contIdx)
	if err != nil {
		return "", fmt.Errorf("host peer of %s in %s: %w", ifName, netnsPath, err)
	}
	return name, nil
}

// peerIn finds, in the current netns, the veth with index peerIdx and
// checks that it points back at contIdx.
func peerIn(peerIdx, contIdx int) (string, error) {
	if peerIdx <= 0 {
		return "", fmt.Errorf("peer index unknown: %w", ErrNotFound)
	}
	l, err := netlink.LinkByIndex(peerIdx)
	if err != nil {
		if isNotFound(err) {
			return "", fmt.Errorf("no link with index %d: %w", peerIdx, ErrNotFound)
		}
		return "", fmt.Errorf("look up link index %d: %w", peerIdx, err)
	}
	if _, ok := l.(*netlink.Veth); !ok || l.Attrs().ParentIndex != contIdx {
		return "", fmt.Errorf("link %q (index %d) is not the peer: %w", l.Attrs().Name, peerIdx, ErrNotFound)
	}
	return l.Attrs().Name, nil
}
