package link

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
)

// setSysctl writes value to /proc/sys/<key> unless it already holds it. key
// uses slashes ("net/ipv6/conf/eth0/accept_dad") so interface names with dots
// need no escaping. The value is read and written in the network namespace
// of the calling OS thread.
func setSysctl(key, value string) error {
	if cur, err := os.ReadFile(filepath.Join("/proc/sys", key)); err == nil && string(bytes.TrimSpace(cur)) == value {
		return nil
	}
	return writeSysctl(key, value)
}

// writeSysctl writes value to /proc/sys/<key> without reading it first: for
// settings of an interface this plugin has just made, which still hold the
// defaults. (Each /proc/sys open costs 50-200 us: a path walk through
// per-netns sysctl tables.)
func writeSysctl(key, value string) error {
	if err := os.WriteFile(filepath.Join("/proc/sys", key), []byte(value), 0o644); err != nil {
		return fmt.Errorf("set sysctl %s=%s: %w", key, value, err)
	}
	return nil
}

// EnableForwarding turns on IPv4 and/or IPv6 forwarding in the current
// network namespace (net.ipv4.ip_forward, net.ipv6.conf.all.forwarding).
func EnableForwarding(v4, v6 bool) error {
	if v4 {
		if err := setSysctl("net/ipv4/ip_forward", "1"); err != nil {
			return fmt.Errorf("enable IPv4 forwarding: %w", err)
		}
	}
	if v6 {
		if err := setSysctl("net/ipv6/conf/all/forwarding", "1"); err != nil {
			return fmt.Errorf("enable IPv6 forwarding: %w", err)
		}
	}
	return nil
}
