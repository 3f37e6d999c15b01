package link

import (
	"fmt"
	"time"

	"github.com/vishvananda/netlink"
)

// portPoll is the interval between operational state checks.
const portPoll = 20 * time.Millisecond

// WaitPortUp waits up to timeout for the host veth name to become
// operationally up (both ends up, carrier on), as the reference plugin does
// before reporting success, and returns its fresh state: the kernel may have
// changed its MAC meanwhile. The error names the state it was left in.
func WaitPortUp(name string, timeout time.Duration) (Interface, error) {
	deadline := time.Now().Add(timeout)
	for {
		l, err := linkByName(name)
		if err != nil {
			return Interface{}, fmt.Errorf("look up bridge port %q: %w", name, err)
		}
		a := l.Attrs()
		if a.OperState == netlink.OperUp {
			return Interface{Name: a.Name, MAC: a.HardwareAddr, Index: a.Index}, nil
		}
		if !time.Now().Before(deadline) {
			return Interface{}, fmt.Errorf("bridge port %q in state %s, not up", name, a.OperState)
		}
		time.Sleep(portPoll)
	}
}
