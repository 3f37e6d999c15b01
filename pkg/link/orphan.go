package link

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"syscall"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netlink/nl"
	"golang.org/x/sys/unix"
)

// OrphanVeths lists the host veths enslaved to the bridge whose container
// end is gone, for garbage collection.
//
// The kernel deletes both ends of a veth together, including when the
// container netns is destroyed, so a veth normally never outlives its peer.
// What GC can still meet is:
//   - a veth whose peer netns is being torn down: the kernel no longer
//     resolves the peer's netns id (or the peer index in it), and the host
//     end is about to vanish;
//   - a pair with both ends in the node netns. Neither this plugin nor the
//     reference makes one for a container (the container end is created in
//     its netns, with the pair), so it is someone else's (an uplink made
//     by hand, say), or a VLAN's gateway pair ("<bridge>.<vlan>", which
//     both keep on the node by design): only one carrying our host veths'
//     alias (ownAlias) is ours to collect.
//
// The rule: a port of the bridge is an orphan when it is a veth named like
// the ones SetupVeth creates ("veth" plus eight hex digits) and either its
// peer cannot be resolved, or its peer lives in the node netns itself, it
// carries our alias and the peer is not a VLAN's gateway. Veths with a
// live peer in another netns are never reported, whatever their carrier or
// up/down state.
func OrphanVeths(br Bridge, ownAlias func(string) bool) ([]string, error) {
	links, err := linkList()
	if err != nil {
		return nil, fmt.Errorf("list links for orphan veths of bridge %q: %w", br.Name, err)
	}
	byIndex := make(map[int]*netlink.LinkAttrs, len(links))
	for _, l := range links {
		byIndex[l.Attrs().Index] = l.Attrs()
	}
	var orphans []string
	for _, l := range links {
		a := l.Attrs()
		if a.MasterIndex != br.Index || !isHostVethName(a.Name) {
			continue
		}
		if _, ok := l.(*netlink.Veth); !ok {
			continue
		}
		if a.NetNsID < 0 {
			// The peer in the node netns, or in one going away (no id).
			peer := byIndex[a.ParentIndex]
			onNode := peer != nil && peer.NetNsID < 0 && peer.ParentIndex == a.Index
			if !onNode || ownAlias(a.Alias) && !isVlanGatewayName(br.Name, peer.Name) {
				orphans = append(orphans, a.Name)
			}
			continue
		}
		alive, err := linkInNetNSID(a.NetNsID, a.ParentIndex)
		if err != nil {
			return nil, fmt.Errorf("resolve peer of %q: %w", a.Name, err)
		}
		if !alive {
			orphans = append(orphans, a.Name)
		}
	}
	return orphans, nil
}

// isHostVethName reports whether name has the form SetupVeth gives host
// ends: "veth" followed by exactly eight lowercase hex digits.
func isHostVethName(name string) bool {
	const prefix = "veth"
	if len(name) != len(prefix)+8 || name[:len(prefix)] != prefix {
		return false
	}
	for _, c := range name[len(prefix):] {
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// VlanGatewayName is the name of the node end of the veth pair that carries
// a VLAN's gateway addresses, "<bridge>.<vlan>" (as the reference names it).
func VlanGatewayName(bridge string, vlan int) string {
	return bridge + "." + strconv.Itoa(vlan)
}

// isVlanGatewayName reports whether name is VlanGatewayName(bridge, v) for
// a vlan v in 1-4094.
func isVlanGatewayName(bridge, name string) bool {
	vid, ok := strings.CutPrefix(name, bridge+".")
	if !ok {
		return false
	}
	v, err := strconv.Atoi(vid)
	return err == nil && v >= 1 && v <= 4094 && VlanGatewayName(bridge, v) == name
}

// linkInNetNSID asks the kernel whether a link with index idx exists in the
// netns known locally as nsid, without entering it (IFLA_TARGET_NETNSID).
// An unknown nsid or index reports false.
func linkInNetNSID(nsid, idx int) (bool, error) {
	if idx <= 0 {
		return false, nil
	}
	req := nl.NewNetlinkRequest(unix.RTM_GETLINK, unix.NLM_F_ACK)
	msg := nl.NewIfInfomsg(unix.AF_UNSPEC)
	msg.Index = int32(idx)
	req.AddData(msg)
	req.AddData(nl.NewRtAttr(unix.IFLA_TARGET_NETNSID, nl.Uint32Attr(uint32(nsid))))
	_, err := req.Execute(unix.NETLINK_ROUTE, 0)
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, syscall.ENODEV), errors.Is(err, syscall.EINVAL):
		return false, nil
	default:
		return false, err
	}
}
