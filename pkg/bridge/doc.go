// Package bridge implements the bridge plugin's verbs. ADD runs in this order,
// so that invalid input changes nothing and a failure after IPAM leaks nothing:
//
//  1. validate: configuration (package config), the container netns, the IPAM
//     binary in CNI_PATH, kernel support for requested features;
//  2. the node bridge (created or reused);
//  3. IPAM ADD (exec of ipam.type);
//  4. the veth pair, container addresses and routes, gateway addresses;
//  5. L2 features (MAC spoof check) and the network's firewall rules.
//
// Any failure after step 3 undoes steps 3-5 for this attachment (IPAM DEL,
// veth removed, spoof check removed). The bridge itself, shared by the
// network's containers, stays.
//
// Each step lives in package link (netlink), l2 (VLAN, spoof check,
// isolation) or firewall (masquerade, forwarding); this package only
// orchestrates them.
package bridge
