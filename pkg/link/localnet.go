package link

import (
	"errors"
	"io/fs"
)

// EnableRouteLocalnet lets the node route packets from its 127.0.0.0/8 out
// of dev (net.ipv4.conf.<dev>.route_localnet=1): a port published on the
// node's 127.0.0.1 and DNAT'd to a container behind the bridge dev. The port
// rules drop packets to 127.0.0.0/8 that arrive on any interface but lo,
// which the setting would otherwise accept from dev.
func EnableRouteLocalnet(dev string) error {
	return setSysctl(routeLocalnetKey(dev), "1")
}

func routeLocalnetKey(dev string) string { return "net/ipv4/conf/" + dev + "/route_localnet" }

// DisableRouteLocalnet turns route_localnet off on dev again, once the rule
// dropping packets to 127.0.0.0/8 from it is gone; a dev that is gone is no
// error.
func DisableRouteLocalnet(dev string) error {
	err := setSysctl(routeLocalnetKey(dev), "0")
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	return err
}
