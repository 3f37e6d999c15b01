// Package bridge implements the bridge plugin's verbs, as methods of Deps:
// the kernel-facing parts (links, IPAM, firewall, MAC spoof check) are
// interfaces, NodeDeps the real ones, so that the verbs run on fakes in
// unit tests. ADD reads top to bottom:
//
//  1. validate: the configuration (package config), the IPAM plugin in
//     CNI_PATH, the container netns and its free interface name, kernel
//     support for requested features; nothing changes before this passes;
//  2. the bridge (created or reused);
//  3. the veth pair;
//  4. IPAM ADD: host-local in-process when CNI_PATH's host-local is this
//     program, any other plugin executed through package invoke;
//  5. the container's addresses and routes, the gateway's addresses;
//  6. the MAC spoof check and the network's firewall rules;
//  7. the result.
//
// Each step that made something pushes its undo; a failure runs them, last
// first (IPAM DEL, veth removed, spoof check removed, the network's rules
// removed if no other port is left). The bridge itself, shared by the
// network's containers, stays.
//
// DEL removes the host veth (found by the name and alias derived from the
// attachment, or the container end from inside its netns), runs IPAM DEL,
// removes the spoof check and, with the network's last port, its firewall
// rules.
package bridge
