// Package link is the kernel-facing half of the flatcni bridge plugin.
//
// It owns every netlink and sysctl operation the plugin performs: creating
// and inspecting the node bridge, wiring veth pairs between the node and a
// container network namespace, configuring addresses and routes inside the
// container, and the read-only checks used by CHECK and GC. The plugin
// orchestrates these calls and never talks to netlink itself.
//
// Functions that act "on the node" operate in the network namespace of the
// calling OS thread; functions taking a netns path enter that namespace
// themselves for the duration of the call.
package link
