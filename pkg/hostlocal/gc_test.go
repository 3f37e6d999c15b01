package hostlocal

import (
	"fmt"
	"net/netip"
	"testing"

	"github.com/flatcni/plugins/pkg/ipam"
)

func TestCollect(t *testing.T) {
	type lease struct{ addr, id, ifname string }
	held := []lease{
		{"10.0.0.2", "a", "eth0"}, {"fd00::2", "a", "eth0"},
		{"10.0.0.3", "a", "eth1"},
		{"10.0.0.4", "b", "eth0"},
		{"10.0.0.5", "old", ""}, // container ID only: old reference releases
	}
	tests := []struct {
		name  string
		valid []ipam.Attachment
		want  string
	}{
		{name: "nothing valid", want: "[]"},
		{name: "one interface valid", valid: []ipam.Attachment{{ContainerID: "a", IfName: "eth0"}},
			want: "[10.0.0.2 a/eth0 fd00::2 a/eth0]"},
		{name: "old lease kept by any valid attachment of its container", valid: []ipam.Attachment{{ContainerID: "old", IfName: "eth3"}, {ContainerID: "b", IfName: "eth0"}},
			want: "[10.0.0.4 b/eth0 10.0.0.5 old/]"},
		{name: "everything valid", valid: []ipam.Attachment{{ContainerID: "a", IfName: "eth0"}, {ContainerID: "a", IfName: "eth1"}, {ContainerID: "b", IfName: "eth0"}, {ContainerID: "old"}},
			want: "[10.0.0.2 a/eth0 10.0.0.3 a/eth1 10.0.0.4 b/eth0 10.0.0.5 old/ fd00::2 a/eth0]"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := ipam.NewMemStore()
			for _, l := range held {
				if ok, err := s.Reserve(ipam.Attachment{ContainerID: l.id, IfName: l.ifname}, netip.MustParseAddr(l.addr), 0); !ok || err != nil {
					t.Fatal(ok, err)
				}
			}
			valid := map[ipam.Attachment]bool{}
			for _, a := range tt.valid {
				valid[a] = true
			}
			if err := Collect(s, valid); err != nil {
				t.Fatal(err)
			}
			all, _ := s.All()
			var got []string
			for _, l := range all {
				got = append(got, l.Addr.String()+" "+l.Attachment.String())
			}
			if g := fmt.Sprint(got); g != tt.want {
				t.Fatalf("got  %s\nwant %s", g, tt.want)
			}
		})
	}
}

func TestValidAttachments(t *testing.T) {
	got, err := ValidAttachments([]byte(`{"cni.dev/valid-attachments":[{"containerID":"a","ifname":"eth0"},{"containerID":"b","ifname":"net1"}]}`))
	if err != nil || len(got) != 2 || !got[ipam.Attachment{ContainerID: "b", IfName: "net1"}] {
		t.Fatalf("ValidAttachments = %v, %v", got, err)
	}
	got, err = ValidAttachments([]byte(`{"cni.dev/attachments":[{"containerID":"c","ifname":"eth0"}]}`))
	if err != nil || len(got) != 1 || !got[ipam.Attachment{ContainerID: "c", IfName: "eth0"}] {
		t.Fatalf("ValidAttachments of cni.dev/attachments (CNI 1.1.0's name) = %v, %v", got, err)
	}
	if _, err := ValidAttachments([]byte(`{"cni.dev/valid-attachments":5}`)); err == nil {
		t.Fatal("bad valid-attachments: no error")
	}
}
