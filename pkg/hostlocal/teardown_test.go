package hostlocal

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/containernetworking/cni/pkg/skel"
)

// DEL and GC release leases under a configuration ADD rejects (its ranges
// edited into something invalid, say): they need only the network's name
// and dataDir, and a DEL failing on the rest would be retried for ever.
func TestTeardownOfRejectedConfig(t *testing.T) {
	for _, tc := range []struct {
		name, ipam string
	}{
		{"subnet not a CIDR", `,"ranges":[[{"subnet":"nope"}]]`},
		{"rangeStart outside the subnet", `,"ranges":[[{"subnet":"10.9.0.0/24","rangeStart":"10.8.0.1"}]]`},
		{"no ranges", ``},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			conf := func(ipam string) []byte {
				return []byte(fmt.Sprintf(`{"cniVersion":"1.1.0","name":"n1","ipam":{"type":"host-local","dataDir":%q%s}}`, dir, ipam))
			}
			good, bad := conf(`,"ranges":[[{"subnet":"10.9.0.0/24"}]]`), conf(tc.ipam)
			lease := filepath.Join(dir, "n1", "10.9.0.2")
			args := &skel.CmdArgs{ContainerID: "c1", IfName: "eth0", StdinData: good}
			if _, err := AddResult(args); err != nil {
				t.Fatalf("ADD: %v", err)
			}
			if _, err := os.Lstat(lease); err != nil {
				t.Fatalf("lease after ADD: %v", err)
			}
			if _, err := AddResult(&skel.CmdArgs{ContainerID: "c2", IfName: "eth0", StdinData: bad}); err == nil {
				t.Fatal("ADD of the bad configuration succeeded")
			}
			// CNI_ARGS ADD would refuse are not looked at either.
			if err := Del(&skel.CmdArgs{ContainerID: "c1", IfName: "eth0", StdinData: bad, Args: "IP=nope"}); err != nil {
				t.Fatalf("DEL: %v", err)
			}
			if _, err := os.Lstat(lease); !os.IsNotExist(err) {
				t.Fatalf("lease after DEL: %v", err)
			}
			if _, err := AddResult(args); err != nil {
				t.Fatalf("ADD: %v", err)
			}
			gc := []byte(fmt.Sprintf(`{"cniVersion":"1.1.0","name":"n1","cni.dev/valid-attachments":[],"ipam":{"type":"host-local","dataDir":%q%s}}`, dir, tc.ipam))
			if err := GC(&skel.CmdArgs{StdinData: gc}); err != nil {
				t.Fatalf("GC: %v", err)
			}
			if _, err := os.Lstat(lease); !os.IsNotExist(err) {
				t.Fatalf("lease after GC: %v", err)
			}
		})
	}
}

// DEL and GC of a configuration under which no lease can ever have been
// made (its dataDir a file or a path no system call takes, its name longer
// than a file name may be)
// succeed: ADD fails on it, and the runtime's DEL after that failed ADD
// would otherwise fail for ever.
func TestTeardownWhereNoLeaseCanBe(t *testing.T) {
	file := filepath.Join(t.TempDir(), "not-a-dir")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	long := make([]byte, 300)
	for i := range long {
		long[i] = 'n'
	}
	for _, tc := range []struct{ what, dataDir, name string }{
		{"dataDir a file", file, "n1"},
		{"name too long", t.TempDir(), string(long)},
		{"dataDir with a NUL byte", t.TempDir() + "/a\x00b", "n1"},
	} {
		t.Run(tc.what, func(t *testing.T) {
			q := func(s string) string { b, _ := json.Marshal(s); return string(b) }
			conf := []byte(fmt.Sprintf(`{"cniVersion":"1.1.0","name":%s,"ipam":{"type":"host-local","dataDir":%s,"ranges":[[{"subnet":"10.9.0.0/24"}]]}}`, q(tc.name), q(tc.dataDir)))
			if _, err := AddResult(&skel.CmdArgs{ContainerID: "c1", IfName: "eth0", StdinData: conf}); err == nil {
				t.Fatal("ADD succeeded")
			}
			if err := Del(&skel.CmdArgs{ContainerID: "c1", IfName: "eth0", StdinData: conf}); err != nil {
				t.Errorf("DEL: %v", err)
			}
			gc := []byte(fmt.Sprintf(`{"cniVersion":"1.1.0","name":%s,"cni.dev/valid-attachments":[],"ipam":{"type":"host-local","dataDir":%s}}`, q(tc.name), q(tc.dataDir)))
			if err := GC(&skel.CmdArgs{StdinData: gc}); err != nil {
				t.Errorf("GC: %v", err)
			}
		})
	}
}

// HoldsLeases tells the bridge's last DEL whether the network holds an
// address: not when its lease directory is missing (no ADD of this
// configuration made it: a dataDir edited since cannot tell that the
// network has no container left).
func TestHoldsLeases(t *testing.T) {
	dir := t.TempDir()
	conf := []byte(fmt.Sprintf(`{"cniVersion":"1.1.0","name":"n1","ipam":{"type":"host-local","dataDir":%q,"ranges":[[{"subnet":"10.9.0.0/24"}]]}}`, dir))
	args := &skel.CmdArgs{ContainerID: "c1", IfName: "eth0", StdinData: conf}
	if _, err := HoldsLeases(args); err == nil {
		t.Error("HoldsLeases answered for a missing lease directory")
	}
	if _, err := AddResult(args); err != nil {
		t.Fatal(err)
	}
	if held, err := HoldsLeases(args); err != nil || !held {
		t.Errorf("HoldsLeases after ADD = %v, %v", held, err)
	}
	if err := Del(args); err != nil {
		t.Fatal(err)
	}
	if held, err := HoldsLeases(args); err != nil || held {
		t.Errorf("HoldsLeases after DEL = %v, %v", held, err)
	}
}

// A lease directory of another user (made beforehand in a dataDir others
// can write in) is refused by ADD; DEL and GC find no lease of ours there
// (no ADD could make one), succeed, and change nothing in it.
func TestTeardownForeignLeaseDirectory(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root (chown)")
	}
	data := t.TempDir()
	dir := filepath.Join(data, "n1")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	lease := filepath.Join(dir, "10.9.0.7")
	if err := os.WriteFile(lease, []byte("c1\r\neth0"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{dir, lease} {
		if err := os.Chown(p, 65534, 65534); err != nil {
			t.Fatal(err)
		}
	}
	conf := []byte(fmt.Sprintf(`{"cniVersion":"1.1.0","name":"n1","ipam":{"type":"host-local","dataDir":%q,"ranges":[[{"subnet":"10.9.0.0/24"}]]}}`, data))
	args := &skel.CmdArgs{ContainerID: "c1", IfName: "eth0", StdinData: conf}
	if _, err := AddResult(args); err == nil || !strings.Contains(err.Error(), dir) {
		t.Errorf("ADD into a lease directory of another user: %v, want a refusal naming it", err)
	}
	if err := Del(args); err != nil {
		t.Errorf("DEL: %v", err)
	}
	gc := []byte(fmt.Sprintf(`{"cniVersion":"1.1.0","name":"n1","cni.dev/valid-attachments":[],"ipam":{"type":"host-local","dataDir":%q}}`, data))
	if err := GC(&skel.CmdArgs{StdinData: gc}); err != nil {
		t.Errorf("GC: %v", err)
	}
	if entries, err := os.ReadDir(dir); err != nil || len(entries) != 1 {
		t.Errorf("the directory changed: %v, %v", entries, err)
	}
}
