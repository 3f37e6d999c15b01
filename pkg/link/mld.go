package link

import (
	"encoding/hex"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/flatcni/plugins/pkg/rtnl"
)

// Why the container end's first multicast listener reports are sent early.
//
// Each IPv6 address of an interface makes it join the address's
// solicited-node group, and an MLDv2 host announces a join with a
// state-change report two scheduler ticks later (8 ms at HZ=250), then
// repeats it within mldv2_unsolicited_report_interval. A Linux bridge with no
// multicast querier floods such a report to every port, and each other
// container takes its copy up its IPv6 stack: some 2-3 ms of CPU at 500
// ports. With the port joining the bridge only once the container end is
// configured (DeferAttach), the first report of the link-local address came
// about 7 ms after ADD had returned, landing on whatever the node did next
// (the next DEL, in `make bench`).
//
// An interface in MLDv1 mode (force_mld_version=1) sends its report when
// the group is joined, and repeats it once within
// mldv1_unsolicited_report_interval. So SetupVeth puts a deferred container
// end in MLDv1 mode, with the MLDv2 repeat interval, before bringing it up;
// the joins made while its port is off the bridge (link-local, and the
// addresses ConfigureContainer adds) report at once, to the host end only.
// ConfigureContainer then waits until those joins are reported (the kernel
// makes them in a worker) and puts both settings back, before the port joins. The
// repeats come later, as MLDv2 reports, within the interval they would have.
// Only the first report of each group never reaches the bridge, as with the
// container's other first IPv6 packets (pkg/bridge.vethConfig).

const (
	mldForceKey = "force_mld_version"
	mldV1IvlKey = "mldv1_unsolicited_report_interval"
)

// joinWait bounds ConfigureContainer's wait for the solicited-node joins
// and their reports (the kernel's worker makes them well within a
// millisecond unless the node is overloaded; a join made later is reported
// as MLDv2 would).
const (
	joinWait = 10 * time.Millisecond
	joinPoll = 100 * time.Microsecond
)

// mldSettings are the container end's own MLD settings, put back by
// restore.
type mldSettings struct {
	ifName   string
	index    int32
	v1Ivl    int32 // -1 when muteMLD left it as it was
	timedOut bool  // restore stopped waiting at joinWait
}

// muteMLD switches the interface (index, ifName) of the current network
// namespace to MLDv1 with its MLDv2 repeat interval. It returns nil, and
// changes nothing, where the interface is not in the kernel's default mode
// (force_mld_version 0) or has no IPv6 settings that can be read and
// written (IPv6 off in the kernel, a read-only /proc/sys). Where the
// container's conf/all/force_mld_version is 1 or 2, the kernel goes by that
// and the writes change nothing.
func muteMLD(index int, ifName string) *mldSettings {
	v, err := rtnl.IPv6Confs(int32(index), rtnl.IPv6ForceMLDVersion, rtnl.IPv6MLDv1Interval, rtnl.IPv6MLDv2Interval)
	if err != nil || v[0] != 0 {
		return nil
	}
	dir := "net/ipv6/conf/" + ifName + "/"
	s := &mldSettings{ifName: ifName, index: int32(index), v1Ivl: -1}
	if v[1] != v[2] {
		if writeSysctl(dir+mldV1IvlKey, strconv.Itoa(int(v[2]))) != nil {
			return nil
		}
		s.v1Ivl = v[1]
	}
	if writeSysctl(dir+mldForceKey, "1") != nil {
		_ = s.restore()
		return nil
	}
	return s
}

// restore waits until the interface has reported its membership of the
// solicited-node group of each of its IPv6 addresses (at most joinWait),
// then puts back the settings muteMLD changed, in the current network
// namespace; nil-safe.
func (s *mldSettings) restore() error {
	if s == nil {
		return nil
	}
	for deadline := time.Now().Add(joinWait); !s.reported(); {
		if time.Now().After(deadline) {
			s.timedOut = true
			break
		}
		// Not time.Sleep: with nothing else to run, the Go runtime rounds
		// a short sleep up to a millisecond. The thread is locked (it is
		// in the container's netns) and can block on its own.
		_ = unix.Nanosleep(&unix.Timespec{Nsec: int64(joinPoll)}, nil)
	}
	dir := "net/ipv6/conf/" + s.ifName + "/"
	if err := writeSysctl(dir+mldForceKey, "0"); err != nil {
		return err
	}
	if s.v1Ivl >= 0 {
		return writeSysctl(dir+mldV1IvlKey, strconv.Itoa(int(s.v1Ivl)))
	}
	return nil
}

// mafLastReporter is MAF_LAST_REPORTER (include/net/if_inet6.h), the flag
// of a group in /proc/net/igmp6 that the interface reported itself: in
// MLDv1 mode it is set right after the report of a join has been sent.
const mafLastReporter = 0x02

// reported tells whether the interface has sent its report for the
// solicited-node group of each of its IPv6 addresses (true too when these
// cannot be read: there is then nothing to wait for). A group is on the
// interface's list a moment before its report is sent: the kernel's
// multicast dump would say joined too early, /proc/net/igmp6's flags do not.
func (s *mldSettings) reported() bool {
	addrs, err := rtnl.Addrs(s.index, syscall.AF_INET6)
	if err != nil || len(addrs) == 0 {
		return true
	}
	// The thread's own netns; /proc/net is the process's.
	table, err := os.ReadFile("/proc/thread-self/net/igmp6")
	if err != nil {
		return true
	}
	done := reportedGroups(table, s.index)
	for _, a := range addrs {
		if !done[solicitedNode(a.IP)] {
			return false
		}
	}
	return true
}

// reportedGroups parses /proc/net/igmp6 ("ifindex name group users flags
// timer" per line, the group and flags in hex) into the groups of the
// interface with index that carry mafLastReporter.
func reportedGroups(table []byte, index int32) map[[16]byte]bool {
	out := map[[16]byte]bool{}
	for _, line := range strings.Split(string(table), "\n") {
		f := strings.Fields(line)
		if len(f) < 5 || f[0] != strconv.Itoa(int(index)) {
			continue
		}
		g, err := hex.DecodeString(f[2])
		flags, ferr := strconv.ParseUint(f[4], 16, 32)
		if err != nil || ferr != nil || len(g) != 16 || flags&mafLastReporter == 0 {
			continue
		}
		out[[16]byte(g)] = true
	}
	return out
}

// solicitedNode is the solicited-node multicast group of IPv6 address ip
// (RFC 4291 2.7.1): ff02::1:ff00:0/104 and its last 24 bits.
func solicitedNode(ip []byte) [16]byte {
	g := [16]byte{0: 0xff, 1: 0x02, 11: 0x01, 12: 0xff}
	copy(g[13:], ip[13:16])
	return g
}
