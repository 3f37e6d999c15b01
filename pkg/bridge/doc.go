// Package bridge implements the bridge plugin's verbs. ADD runs in this order,
// so that invalid input changes nothing and a failure after IPAM leaks nothing:
//
//  1. validate: configuration (package config), the IPAM binary in CNI_PATH,
//     the container netns and its free interface name, kernel support for
//     requested features. The IPAM process is already running (package early
//     started it) but gets its configuration only when these pass;
//  2. IPAM ADD, beside the node bridge (created or reused) and the veth pair;
//  3. container addresses and routes, gateway addresses;
//  4. L2 features (MAC spoof check) and the network's firewall rules.
//
// Any failure after step 1 undoes what was made for this attachment (IPAM
// DEL, veth removed, spoof check removed). The bridge itself, shared by the
// network's containers, stays.
//
// DEL removes the host veth (started by package early) beside IPAM DEL, then
// the spoof check and, with the network's last port, its firewall rules.
//
// Each step lives in package link (netlink), l2 (VLAN, spoof check,
// isolation) or firewall (masquerade, forwarding); this package only
// orchestrates them.
package bridge
