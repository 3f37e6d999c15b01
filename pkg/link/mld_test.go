package link

import (
	"net/netip"
	"os"
	"path/filepath"
	"testing"
)

// A container end made with DeferAttach is in MLDv1 mode, with the MLDv2
// repeat interval, from SetupVeth until ConfigureContainer has configured
// it; then both settings are as the kernel made them. Where the container
// runs a mode of its own, or without DeferAttach, nothing is changed.
func TestMLDMutedUntilConfigured(t *testing.T) {
	requireRoot(t)
	tests := []struct {
		name     string
		defaults map[string]string // the container netns's conf/default
		defer_   bool
		muted    bool
	}{
		{name: "deferred", defer_: true, muted: true},
		{name: "deferred, own v2 interval", defaults: map[string]string{"mldv2_unsolicited_report_interval": "2500"}, defer_: true, muted: true},
		{name: "deferred, v1 interval as v2's", defaults: map[string]string{mldV1IvlKey: "1000"}, defer_: true, muted: true},
		{name: "deferred, MLDv2 only", defaults: map[string]string{mldForceKey: "2"}, defer_: true},
		{name: "attached at once", defer_: false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			node, cont := newNetNS(t, "mnode"), newNetNS(t, "mcont")
			settings := func() map[string]string {
				m := map[string]string{}
				for _, k := range []string{mldForceKey, mldV1IvlKey, "mldv2_unsolicited_report_interval"} {
					v, err := readSysctl("net/ipv6/conf/eth0/" + k)
					if err != nil {
						t.Error(err)
					}
					m[k] = v
				}
				return m
			}
			in(t, cont, func() error {
				for k, v := range tc.defaults {
					if err := os.WriteFile(filepath.Join("/proc/sys/net/ipv6/conf/default", k), []byte(v), 0o644); err != nil {
						return err
					}
				}
				return nil
			})
			var ci Interface
			in(t, node, func() error {
				br, err := EnsureBridge(BridgeConfig{Name: "mbr"})
				if err != nil {
					return err
				}
				cfg := VethConfig{ContainerNetNS: cont, IfName: "eth0", Bridge: br, DeferAttach: tc.defer_}
				_, ci, err = SetupVeth(cfg)
				return err
			})
			var kernel, during map[string]string
			in(t, cont, func() error {
				during = settings()
				kernel = map[string]string{}
				for _, k := range []string{mldForceKey, mldV1IvlKey, "mldv2_unsolicited_report_interval"} {
					v, err := readSysctl("net/ipv6/conf/default/" + k)
					if err != nil {
						return err
					}
					kernel[k] = v
				}
				return nil
			})
			want := kernel
			if tc.muted {
				want = map[string]string{mldForceKey: "1", mldV1IvlKey: kernel["mldv2_unsolicited_report_interval"], "mldv2_unsolicited_report_interval": kernel["mldv2_unsolicited_report_interval"]}
			}
			for k, v := range want {
				if during[k] != v {
					t.Errorf("after SetupVeth: %s = %s, want %s (kernel's: %s)", k, during[k], v, kernel[k])
				}
			}
			addrs := []netip.Prefix{netip.MustParsePrefix("10.1.0.5/24"), netip.MustParsePrefix("fd00:1::5/64")}
			in(t, node, func() error { _, err := ConfigureContainer(ci, addrs, nil, false, false); return err })
			in(t, cont, func() error {
				// ConfigureContainer's wait ended with the reports sent.
				if tc.muted && (ci.mld == nil || ci.mld.timedOut) {
					t.Errorf("the reports of eth0's solicited-node groups were not seen within %s", joinWait)
				}
				table, err := os.ReadFile("/proc/thread-self/net/igmp6")
				if err != nil {
					return err
				}
				g := solicitedNode(addrs[1].Addr().AsSlice())
				if tc.muted && !reportedGroups(table, int32(ci.Index))[g] {
					t.Errorf("group %s of eth0 not reported in MLDv1 mode:\n%s", netip.AddrFrom16(g), table)
				}
				after := settings()
				for k, v := range kernel {
					if after[k] != v {
						t.Errorf("after ConfigureContainer: %s = %s, want the kernel's %s", k, after[k], v)
					}
				}
				return nil
			})
		})
	}
}

func TestSolicitedNode(t *testing.T) {
	for addr, want := range map[string]string{
		"fd00:1::1:2:3":             "ff02::1:ff02:3",
		"fe80::4c2a:bdff:fe8f:ccf3": "ff02::1:ff8f:ccf3",
		"2001:db8::ab:cdef":         "ff02::1:ffab:cdef",
	} {
		g := solicitedNode(netip.MustParseAddr(addr).AsSlice())
		if got := netip.AddrFrom16(g).String(); got != want {
			t.Errorf("solicitedNode(%s) = %s, want %s", addr, got, want)
		}
	}
}

func TestReportedGroups(t *testing.T) {
	table := []byte(`1    lo              ff020000000000000000000000000001     1 0000000C 0
1    lo              ff010000000000000000000000000001     1 00000008 0
7    eth0            ff0200000000000000000001ff020003     1 00000007 212
7    eth0            ff0200000000000000000001ff8fccf3     1 00000004 0
7    eth0            ff020000000000000000000000000001     1 0000000C 0
12   eth1            ff0200000000000000000001ff000005     1 00000006 0
`)
	got := reportedGroups(table, 7)
	want := netip.MustParseAddr("ff02::1:ff02:3").As16()
	if len(got) != 1 || !got[want] {
		t.Errorf("reportedGroups(index 7) = %v, want only ff02::1:ff02:3 (reported, flag 0x02)", got)
	}
}
