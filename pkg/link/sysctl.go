package link

import (
	"fmt"
	"os"
	"strings"
	"syscall"

	"github.com/flatcni/plugins/pkg/rtnl"
)

// setSysctl writes value to /proc/sys/<key> unless it already holds it. key
// uses slashes ("net/ipv6/conf/eth0/accept_dad") so interface names with dots
// need no escaping. The value is read and written in the network namespace
// of the calling OS thread (a goroutine locked to it, as in inNetNS).
func setSysctl(key, value string) error {
	if cur, err := readSysctl(key); err == nil && cur == value {
		return nil
	}
	return writeSysctl(key, value)
}

// readSysctl returns the value of /proc/sys/<key>, without surrounding space.
func readSysctl(key string) (string, error) {
	b, err := os.ReadFile(sysctlPath(key))
	return strings.TrimSpace(string(b)), err
}

func sysctlPath(key string) string { return "/proc/sys/" + key }

// writeSysctl writes value to /proc/sys/<key> without reading it first: for
// settings of an interface this plugin has just made, which still hold the
// defaults.
func writeSysctl(key, value string) error {
	if err := os.WriteFile(sysctlPath(key), []byte(value), 0o644); err != nil {
		return fmt.Errorf("set sysctl %s=%s: %w", key, value, err)
	}
	return nil
}

// EnableForwarding turns on IPv4 and/or IPv6 forwarding in the current
// network namespace (net.ipv4.ip_forward, net.ipv6.conf.all.forwarding).
// The current values are read through netlink (see pkg/rtnl): /proc/sys is
// opened only to turn forwarding on.
func EnableForwarding(v4, v6 bool) error {
	for _, f := range []struct {
		want   bool
		family int
		key    string
		name   string
	}{
		{v4, syscall.AF_INET, "net/ipv4/ip_forward", "IPv4"},
		{v6, syscall.AF_INET6, "net/ipv6/conf/all/forwarding", "IPv6"},
	} {
		if !f.want {
			continue
		}
		if on, err := rtnl.Forwarding(f.family); err == nil && on {
			continue
		}
		if err := writeSysctl(f.key, "1"); err != nil {
			return fmt.Errorf("enable %s forwarding: %w", f.name, err)
		}
	}
	return nil
}
