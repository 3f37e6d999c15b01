// Package firewall keeps the NAT (masquerade) and forwarding rules of a
// bridge network, one small rule set per CNI network rather than one per
// container.
//
// The reference bridge plugin installs a chain of rules for every container
// it attaches, so the NAT table and the ADD latency grow with the node. Here a
// Backend keeps exactly one rule set per network: Ensure makes sure it exists
// and matches the Network description (cheap when it already does, safe under
// many concurrent ADDs from separate processes), Remove deletes it when the
// network's last attachment goes, Networks lists the networks that have rule
// sets so GC can drop those without attachments, and RemoveLegacy deletes the
// per-container CNI-… rules left by the reference plugin so that a node can be
// switched over in place. Nothing in the API takes a container, so the number
// of rules never depends on the number of containers.
//
// # Masquerade
//
// Traffic whose source lies in one of the network's subnets and whose
// destination is outside all of the network's subnets, outside multicast
// (224.0.0.0/4, ff00::/8) and outside Network.NonMasquerade is masqueraded.
// IPv4 and IPv6 are handled alike.
//
// # Forwarding
//
// With Network.Forward set, traffic forwarded in from the bridge is accepted,
// and so is traffic forwarded out to the bridge that belongs to an
// established or related connection. This is what containers need when the
// filter FORWARD policy is DROP (Docker sets it). Connections initiated from
// outside towards containers (for example port-forwarded ones) are not
// accepted by these rules.
//
// A netfilter verdict is cast by every base chain hooked at a point
// separately: an accept in one table ends the evaluation of that table's
// chain only, and a drop in any other base chain still drops the packet. An
// accept therefore has to be placed in the very chain that holds the DROP
// policy, which is iptables' filter FORWARD chain:
//
//   - The iptables backend puts the accept rules in a per-network chain jumped
//     to from the first position of filter FORWARD (iptables and ip6tables).
//     "First" is below the reference firewall plugin's jumps, when they are
//     there (refchains.go), here and for the nftables backend's rules.
//   - The nftables backend has no forward chain of its own (an accept there
//     would decide nothing). When iptables-nft's FORWARD chain exists (tables
//     "ip filter" and "ip6 filter" seen through netlink, whatever its policy at
//     the time, so that a later switch to DROP is covered), it inserts the two
//     accept rules at the top of that chain through netlink, written with the
//     expressions iptables-nft understands (xt "conntrack" match, comment in
//     the rule's user data) so that iptables-nft can still list and edit the
//     chain; iptables -S shows them as
//     "-i <br> -m comment --comment ... -j ACCEPT" and
//     "-o <br> -m conntrack --ctstate RELATED,ESTABLISHED ... -j ACCEPT".
//     If that chain only appears after Ensure (e.g. Docker starts later), the
//     next Ensure of the network adds the rules. The rules carry the comment "flatcni net=<name> cfg=<hash>"
//     and are found and removed by it. The legacy (non-nft) iptables
//     backend of the kernel is invisible to netlink; on a node whose FORWARD
//     DROP policy lives in iptables-legacy, use the iptables backend. A DROP
//     cast by some other nftables table (firewalld, for instance) cannot be
//     overridden by anyone else's table and is left to its owner.
//
// # iptables backend
//
// Each network gets a chain named FLATCNI-<20 hex digits of the SHA-256 of
// the network name> in the nat table (masquerade) and in the filter table
// (forwarding), per family (iptables and ip6tables). Every rule in these
// chains carries the comment "flatcni net=<name>". The chains are reached
// from one jump rule each (appended to nat POSTROUTING, inserted first in
// filter FORWARD) whose comment is "flatcni net=<name> cfg=<hash>", where the
// hash is a fingerprint of the whole Network description. Ensure's hot path
// is therefore one "iptables -C" per used table and family (plus the version
// probe go-iptables runs once per family): if the jump with
// the current fingerprint exists, the chain behind it was filled completely
// for this very configuration (the jump is written last). Otherwise Ensure
// takes an exclusive file lock (LockDir, by default /run/flatcni), checks
// again, and rewrites the network's chains (flush and refill: during that
// short rewrite, done only on creation or configuration change, the chain is
// briefly incomplete); this serialises the
// check-then-add sequences of concurrent plugin processes, while iptables'
// own lock (-w) serialises the individual commands.
//
// Ensure of a network netlink shows nothing of (its first ADD; iptables-nft,
// or no iptables-legacy table in the namespace) writes each family's chains,
// jumps and isolation member with one iptables-restore --noflush, in one
// transaction (iptables_fresh.go); a rule set to change or repair is left
// to the commands.
//
// Remove and RemoveLegacy read the tables through netlink first: on
// iptables-nft (a chain of ours, the shared isolation chain or a reference
// rule of the network seen there) they delete everything in one nftables
// transaction and start no process; when netlink shows nothing and the
// kernel has no iptables-legacy table in the namespace there is nothing to
// delete; otherwise (iptables-legacy, a transaction the kernel refuses) the
// commands do it as described above (iptables_nft_remove.go).
//
// # nftables backend
//
// Each network gets its own table "inet flatcni-<name>" holding a nat
// postrouting chain with the masquerade rules. Ensure writes the whole table
// in a single netlink transaction (create if missing, flush the chain, add the
// rules), which the kernel applies atomically, so concurrent Ensures can
// neither duplicate rules nor expose a half-written chain. Remove deletes the
// table. The backend talks netlink only and never starts a process.
//
// # Isolation
//
// Network.Isolation ("isolated", "strict"), Internal and NoICC add drop
// rules to the forward path, per network (isolation.go, docs/isolation.md):
// in nftables a forward chain "isolation" in the network's table and, for
// isolated networks, one rule and one set element in the shared table
// "inet flatcni_isolation"; in iptables a FLATCNI- chain in table mangle
// (whose FORWARD runs before filter's, so no ACCEPT overtakes the drops)
// and, for isolated networks, one rule in the shared chain
// FLATCNI-ISOLATED. Connections with destination NAT (published ports)
// are exempt, except from Internal.
//
// # Migration from the reference plugin
//
// RemoveLegacy deletes the reference plugin's per-container masquerade rules
// of one network whose container ID is not in a keep set: for iptables, the
// nat POSTROUTING jumps and the CNI-<24 hex> chains carrying the comment
// name: "<net>" id: "<containerID>"; for nftables, the rules of chain
// masq_checks in table "inet cni_plugins_masquerade" whose comment names the
// network and the container. RemoveLegacyOf deletes those of one container
// (the bridge's DEL of an attachment the reference made). The reference's
// shared table itself is left in place, since reference plugins may still be
// using it.
package firewall
