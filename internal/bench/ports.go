package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"path/filepath"
	"sync"
	"time"

	"github.com/containernetworking/cni/libcni"
)

// The port-publishing scenarios time ADD and DEL of a container with two
// published TCP ports (80 and 443), through libcni as a runtime calls the
// plugins. (A UDP mapping adds, on both sides, the flush of its stale
// conntrack entries: a walk of the kernel's whole conntrack hash table,
// about 10 ms at 262,144 buckets, whatever the number of containers.)
// Ours is our bridge alone with the portMappings capability, the
// reference is the reference bridge chained with the reference portmap. Both
// use the same firewall backend (ipMasqBackend for ours, portmap's
// "backend"). They reuse the bridge scenario's rigs, attach and sampling
// (bridge.go); only how a container is added and deleted differs.

// portsCases are the two port-publishing scenarios, one per backend.
func portsCases() []bridgeCase {
	return []bridgeCase{
		{key: scenPortsIPT, title: "ports iptables", ports: "iptables", subnet: "10.133.0.0/16", maxAdd: 0.10, maxDel: 0.10, maxGrowth: 1.15, judgeDel: true},
		{key: scenPortsNFT, title: "ports nftables", ports: "nftables", subnet: "10.134.0.0/16", maxAdd: 0.10, maxDel: 0.10, maxGrowth: 1.15, judgeDel: true},
	}
}

// portsFirstHostPort is where the host ports handed out to containers start;
// each container gets the next two.
const portsFirstHostPort = 10000

// portsConflist returns the network configuration list of one side.
func portsConflist(ours bool, bridge, backend string, ipam ipamConfig) ([]byte, error) {
	br := map[string]any{"type": "bridge", "bridge": bridge, "isGateway": true, "ipam": ipam}
	plugins := []any{br}
	if ours {
		br["capabilities"] = map[string]bool{"portMappings": true}
		br["ipMasqBackend"] = backend
	} else {
		plugins = append(plugins, map[string]any{"type": "portmap", "capabilities": map[string]bool{"portMappings": true}, "backend": backend})
	}
	return json.Marshal(map[string]any{"cniVersion": "1.0.0", "name": benchNetwork, "plugins": plugins})
}

// portsRunner makes the rig call its side's conflist through libcni, each
// container publishing two host ports of its own.
func (b *bench) portsRunner(r *bridgeRig, c bridgeCase, s *side, subnet netip.Prefix) error {
	ours := s.impl.name == "ours"
	if !ours {
		if why := s.impl.missing("portmap"); why != "" {
			return fmt.Errorf("reference portmap: %s in %s (scripts/reference.sh builds it)", why, s.impl.dir)
		}
	}
	conflist, err := portsConflist(ours, "fcb-"+r.short, c.ports, hostLocalIPAM(subnet, filepath.Join(b.tmp, c.key+"-"+r.short)))
	if err != nil {
		return fmt.Errorf("encode conflist: %w", err)
	}
	list, err := libcni.ConfListFromBytes(conflist)
	if err != nil {
		return fmt.Errorf("load conflist: %w", err)
	}
	cni := libcni.NewCNIConfigWithCacheDir([]string{s.impl.dir}, filepath.Join(b.tmp, c.key+"-"+r.short+"-cache"), nil)
	var mu sync.Mutex
	ports := map[string]int{} // container ID -> its first host port
	next := portsFirstHostPort
	r.call = func(ctx context.Context, command, id, netnsName string) (took time.Duration, err error) {
		mu.Lock()
		hp, ok := ports[id]
		if !ok {
			hp, next = next, next+2
			ports[id] = hp
		}
		mu.Unlock()
		rt := &libcni.RuntimeConf{
			ContainerID: id,
			NetNS:       nsPath(netnsName),
			IfName:      "eth0",
			CapabilityArgs: map[string]any{"portMappings": []map[string]any{
				{"hostPort": hp, "containerPort": 80, "protocol": "tcp"},
				{"hostPort": hp + 1, "containerPort": 443, "protocol": "tcp"},
			}},
		}
		r.node.do(func() {
			start := time.Now()
			if command == "ADD" {
				_, err = cni.AddNetworkList(ctx, list, rt)
			} else {
				err = cni.DelNetworkList(ctx, list, rt)
			}
			took = time.Since(start)
		})
		if err != nil {
			return took, fmt.Errorf("libcni %s %s: %w", command, id, err)
		}
		return took, nil
	}
	return nil
}
