package firewall

import (
	"fmt"
	"net"
	"os"
	"strings"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// flushUDP deletes the conntrack entries of the UDP mappings' host ports
// (original direction, to the host address when one is given), through
// netlink. Without it a UDP flow that kept sending to the host port stays
// bound to the old destination (another container, or none) for as long as
// it keeps sending.
//
// Finding the entries walks the whole conntrack hash table, which all
// network namespaces share (~10 ms at 262,144 buckets), so the walk is
// skipped when the namespace tracks no connection at all.
func flushUDP(maps []Mapping) error {
	maps = udpMappings(maps)
	if len(maps) == 0 {
		return nil
	}
	if n, err := os.ReadFile("/proc/sys/net/netfilter/nf_conntrack_count"); err == nil && strings.TrimSpace(string(n)) == "0" {
		return nil
	}
	byFamily := map[family][]netlink.CustomConntrackFilter{}
	for _, m := range maps {
		f := &netlink.ConntrackFilter{}
		if err := f.AddProtocol(unix.IPPROTO_UDP); err != nil {
			return err
		}
		if err := f.AddPort(netlink.ConntrackOrigDstPort, m.HostPort); err != nil {
			return err
		}
		if m.HostIP.IsValid() {
			if err := f.AddIP(netlink.ConntrackOrigDstIP, net.IP(m.HostIP.AsSlice())); err != nil {
				return err
			}
		}
		byFamily[m.family()] = append(byFamily[m.family()], f)
	}
	for fam, filters := range byFamily {
		inet := netlink.InetFamily(unix.AF_INET)
		if fam == ipv6 {
			inet = unix.AF_INET6
		}
		if _, err := netlink.ConntrackDeleteFilters(netlink.ConntrackTable, inet, filters...); err != nil {
			return fmt.Errorf("flush %s UDP conntrack entries of published ports: %w", fam, err)
		}
	}
	return nil
}
