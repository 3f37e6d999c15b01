// Package l2 implements the layer-2 features of the flatcni bridge plugin
// that go beyond plugging a veth into a Linux bridge. Each feature maps to a
// key of the reference bridge plugin's network configuration:
//
//   - vlan, vlanTrunk, preserveDefaultVlan: VlanIDs validates the keys and
//     expands trunk ranges; EnableVlanFiltering turns on VLAN filtering on the
//     bridge and SetPortVlans programs the host-side veth (the bridge port):
//     vlan becomes the port's untagged native VLAN (PVID) and the trunk ids
//     are allowed tagged. Unless preserveDefaultVlan is set, the VLANs the
//     port had before (normally the bridge's default VLAN 1) are removed
//     first. These need a kernel built with CONFIG_BRIDGE_VLAN_FILTERING;
//     VlanFilteringSupported probes for it so that an ADD can fail with
//     ErrNoVlanFiltering before it changes anything.
//
//   - macspoofchk: SetupMacSpoofCheck installs an nftables rule in the
//     bridge family (table "bridge flatcni-macspoof", base chain
//     "prerouting" at priority -300) that drops every frame entering the
//     bridge from the container's host-side veth whose Ethernet source
//     address is not the container interface's MAC. Each rule carries a
//     comment naming the network, container ID and interface name, so that
//     TeardownMacSpoofCheck and MacSpoofChecks (for garbage collection) can
//     find it. The rules are programmed over netlink (google/nftables); no
//     nft or ebtables process is started. The teardown that removes the
//     last rule removes the base chain and the table too, unless they hold
//     anything else by then (the kernel checks, see removeEmptySpoofTable);
//     the reference keeps its own table. Needs nf_tables with bridge family
//     support (CONFIG_NF_TABLES_BRIDGE).
//
//     The reference plugin keeps its checks elsewhere (table "bridge nat":
//     per attachment a jump in PREROUTING and two chains named after the
//     container ID and interface, see refspoof.go). For a node switched in
//     place, TeardownMacSpoofCheckWithReference (DEL) removes the
//     reference's check of the attachment along with ours, and
//     RemoveDeadReferenceSpoofChecks (GC) those whose host veth is gone:
//     their names carry no network to match GC's valid attachments against.
//
//   - portIsolation: SetIsolated sets the bridge port's isolated flag
//     (IFLA_BRPORT_ISOLATED, kernel 4.18 or later). Isolated ports cannot
//     exchange frames with each other, only with non-isolated ports such as
//     the bridge itself, so containers still reach the gateway address on
//     the bridge but not each other.
//
// Every function acts in the network namespace of the calling OS thread; the
// caller locks the thread and enters the node's namespace if needed.
package l2
