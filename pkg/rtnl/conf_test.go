package rtnl

import (
	"errors"
	"slices"
	"strings"
	"syscall"
	"testing"

	"github.com/flatcni/plugins/internal/testns"
)

// Each request must agree with what /proc/sys shows for the same setting.
func TestForwarding(t *testing.T) {
	n := testns.New(t, "rtnlfwd")
	for _, tc := range []struct {
		family int
		key    string
	}{
		{syscall.AF_INET, "net.ipv4.ip_forward"},
		{syscall.AF_INET6, "net.ipv6.conf.all.forwarding"},
	} {
		for _, v := range []string{"1", "0"} {
			n.MustRun(t, "sysctl", "-qw", tc.key+"="+v)
			err := n.Do(func() error {
				on, err := Forwarding(tc.family)
				if err != nil {
					return err
				}
				if on != (v == "1") {
					t.Errorf("Forwarding(%d) = %v with %s=%s", tc.family, on, tc.key, v)
				}
				return nil
			})
			if err != nil {
				t.Fatalf("Forwarding(%d): %v", tc.family, err)
			}
		}
	}
}

func TestIPv6Conf(t *testing.T) {
	n := testns.New(t, "rtnlv6")
	n.MustRun(t, "ip", "link", "add", "conf0", "type", "veth", "peer", "name", "conf0p")
	for _, v := range []string{"2", "0", "1"} {
		n.MustRun(t, "sysctl", "-qw", "net.ipv6.conf.conf0.accept_ra="+v)
		err := n.Do(func() error {
			l, err := LinkByName("conf0")
			if err != nil {
				return err
			}
			got, err := IPv6Conf(l.Index, IPv6AcceptRA)
			if err != nil {
				return err
			}
			if want := int32(v[0] - '0'); got != want {
				t.Errorf("accept_ra = %d, /proc/sys says %s", got, v)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	err := n.Do(func() error {
		if _, err := IPv6Conf(1<<30, IPv6AcceptRA); !errors.Is(err, syscall.ENODEV) {
			t.Errorf("missing link: %v, want ENODEV", err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestSetIPv4Conf(t *testing.T) {
	n := testns.New(t, "rtnlv4")
	n.MustRun(t, "ip", "link", "add", "conf0", "type", "veth", "peer", "name", "conf0p")
	for _, v := range []uint32{1, 0} {
		err := n.Do(func() error {
			l, err := LinkByName("conf0")
			if err != nil {
				return err
			}
			return SetIPv4Conf(l.Index, IPv4ArpNotify, v)
		})
		if err != nil {
			t.Fatal(err)
		}
		got := strings.TrimSpace(n.MustRun(t, "sysctl", "-n", "net.ipv4.conf.conf0.arp_notify"))
		if got != string(rune('0'+v)) {
			t.Errorf("after SetIPv4Conf(arp_notify, %d): /proc/sys says %s", v, got)
		}
	}
}

// Several fields in one request, each as /proc/sys shows it (the MLD
// intervals in milliseconds there too).
func TestIPv6Confs(t *testing.T) {
	n := testns.New(t, "rtnlv6s")
	n.MustRun(t, "ip", "link", "add", "conf0", "type", "veth", "peer", "name", "conf0p")
	n.MustRun(t, "sysctl", "-qw", "net.ipv6.conf.conf0.force_mld_version=2")
	n.MustRun(t, "sysctl", "-qw", "net.ipv6.conf.conf0.mldv1_unsolicited_report_interval=7000")
	n.MustRun(t, "sysctl", "-qw", "net.ipv6.conf.conf0.mldv2_unsolicited_report_interval=1500")
	err := n.Do(func() error {
		l, err := LinkByName("conf0")
		if err != nil {
			return err
		}
		got, err := IPv6Confs(l.Index, IPv6MLDv2Interval, IPv6ForceMLDVersion, IPv6MLDv1Interval)
		if err != nil {
			return err
		}
		if want := []int32{1500, 2, 7000}; !slices.Equal(got, want) {
			t.Errorf("IPv6Confs = %v, want %v", got, want)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
