package integration

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/flatcni/plugins/internal/leasetest"
)

// interopPlugins are the two host-local binaries under test.
type interopPlugins struct{ ours, ref string }

// interopFindHostLocals builds our host-local and finds the reference one: in
// $FLATCNI_REF_BIN (set by the Makefile), .bench/ref-v1.9.1 or /tmp/refprobe.
func interopFindHostLocals(t *testing.T) interopPlugins {
	t.Helper()
	var ref string
	_, self, _, _ := runtime.Caller(0)
	root := filepath.Dir(filepath.Dir(self))
	for _, dir := range []string{os.Getenv("FLATCNI_REF_BIN"), filepath.Join(root, ".bench", "ref-v1.9.1"), "/tmp/refprobe"} {
		if dir == "" {
			continue
		}
		if fi, err := os.Stat(filepath.Join(dir, "host-local")); err == nil && fi.Mode().IsRegular() {
			ref = filepath.Join(dir, "host-local")
			break
		}
	}
	if ref == "" {
		t.Skip("reference host-local not found (set FLATCNI_REF_BIN or run `make reference`)")
	}
	ours := filepath.Join(t.TempDir(), "host-local")
	build := exec.Command("go", "build", "-o", ours, "./plugins/flatcni")
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build host-local: %v\n%s", err, out)
	}
	return interopPlugins{ours: ours, ref: ref}
}

type interopResult struct {
	exit   int
	stdout []byte
	addrs  []string
}

// interopRun invokes a host-local binary.
func interopRun(t *testing.T, bin, cmd, id, ifname, stdin string) interopResult {
	t.Helper()
	c := exec.Command(bin)
	c.Env = []string{"CNI_COMMAND=" + cmd, "CNI_CONTAINERID=" + id, "CNI_NETNS=/var/run/netns/flatcni-unused",
		"CNI_IFNAME=" + ifname, "CNI_PATH=/nonexistent"}
	c.Stdin = strings.NewReader(stdin)
	var out bytes.Buffer
	c.Stdout = &out
	err := c.Run()
	r := interopResult{stdout: out.Bytes()}
	if ee, ok := err.(*exec.ExitError); ok {
		r.exit = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	var res struct {
		IPs []struct {
			Address string `json:"address"`
		} `json:"ips"`
	}
	if r.exit == 0 && len(r.stdout) > 0 {
		if err := json.Unmarshal(r.stdout, &res); err != nil {
			t.Fatalf("%s %s: %v: %s", filepath.Base(bin), cmd, err, r.stdout)
		}
	}
	for _, ip := range res.IPs {
		r.addrs = append(r.addrs, ip.Address)
	}
	return r
}

func interopMust(t *testing.T, bin, cmd, id, stdin string) interopResult {
	t.Helper()
	r := interopRun(t, bin, cmd, id, "eth0", stdin)
	if r.exit != 0 {
		t.Fatalf("%s %s %s: exit %d: %s", bin, cmd, id, r.exit, r.stdout)
	}
	return r
}

func interopConf(ver, dataDir string) string {
	return fmt.Sprintf(`{"cniVersion":%q,"name":"interop","type":"bridge","ipam":{"type":"host-local","dataDir":%q,`+
		`"ranges":[[{"subnet":"10.20.0.0/24","rangeEnd":"10.20.0.20"}],[{"subnet":"fd20::/64"}]],"routes":[{"dst":"0.0.0.0/0"}]}}`, ver, dataDir)
}

func TestHostLocalInterop(t *testing.T) {
	p := interopFindHostLocals(t)

	t.Run("same results", func(t *testing.T) {
		for _, ver := range []string{"0.2.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"} {
			a := interopMust(t, p.ref, "ADD", "ctr1", interopConf(ver, t.TempDir()))
			b := interopMust(t, p.ours, "ADD", "ctr1", interopConf(ver, t.TempDir()))
			var ra, rb any
			json.Unmarshal(a.stdout, &ra)
			json.Unmarshal(b.stdout, &rb)
			if fmt.Sprint(ra) != fmt.Sprint(rb) {
				t.Errorf("%s: reference %s\nours %s", ver, a.stdout, b.stdout)
			}
		}
	})

	t.Run("reference ADDs, ours DELs", func(t *testing.T) {
		dir := t.TempDir()
		conf := interopConf("1.0.0", dir)
		netDir := filepath.Join(dir, "interop")
		held := map[string][]string{}
		for _, id := range []string{"r1", "r2", "r3"} {
			held[id] = interopMust(t, p.ref, "ADD", id, conf).addrs
		}
		// Ours sees the reference's leases: CHECK passes, a repeated ADD
		// returns the lease, a new ADD does not collide.
		interopMust(t, p.ours, "CHECK", "r2", conf)
		if again := interopMust(t, p.ours, "ADD", "r2", conf).addrs; fmt.Sprint(again) != fmt.Sprint(held["r2"]) {
			t.Fatalf("ours ADD r2 again: %v, reference gave %v", again, held["r2"])
		}
		mine := interopMust(t, p.ours, "ADD", "o1", conf).addrs
		if fmt.Sprint(mine) != "[10.20.0.5/24 fd20::5/64]" {
			t.Fatalf("ours after three reference ADDs: %v (want the next round-robin addresses)", mine)
		}
		leasetest.CheckStore(t, netDir)
		for _, id := range []string{"r1", "r3"} {
			interopMust(t, p.ours, "DEL", id, conf)
		}
		if got := fmt.Sprint(leasetest.Holders(t, netDir)); got != "map[10.20.0.3:r2/eth0 10.20.0.5:o1/eth0 fd20::3:r2/eth0 fd20::5:o1/eth0]" {
			t.Fatalf("after ours DEL r1 r3: %s", got)
		}
		leasetest.CheckStore(t, netDir)
	})

	t.Run("ours ADDs, reference DELs, ours ADDs again", func(t *testing.T) {
		dir := t.TempDir()
		conf := interopConf("1.0.0", dir)
		netDir := filepath.Join(dir, "interop")
		o1 := interopMust(t, p.ours, "ADD", "o1", conf).addrs
		o2 := interopMust(t, p.ours, "ADD", "o2", conf).addrs
		interopMust(t, p.ref, "CHECK", "o1", conf)
		interopMust(t, p.ref, "DEL", "o1", conf)
		if got := fmt.Sprint(leasetest.Holders(t, netDir)); got != "map[10.20.0.3:o2/eth0 fd20::3:o2/eth0]" {
			t.Fatalf("after reference DEL o1 (o1 had %v): %s", o1, got)
		}
		// Ours must not trust its index for o1 any more, and must keep o2.
		if r := interopRun(t, p.ours, "CHECK", "o1", "eth0", conf); r.exit == 0 {
			t.Fatal("ours CHECK o1 succeeded after the reference released it")
		}
		if again := interopMust(t, p.ours, "ADD", "o2", conf).addrs; fmt.Sprint(again) != fmt.Sprint(o2) {
			t.Fatalf("ours ADD o2 again: %v, want %v", again, o2)
		}
		o3 := interopMust(t, p.ours, "ADD", "o3", conf).addrs
		if fmt.Sprint(o3) != "[10.20.0.4/24 fd20::4/64]" {
			t.Fatalf("ours ADD o3: %v", o3)
		}
		// The reference continues round-robin from our last reservation.
		r1 := interopMust(t, p.ref, "ADD", "r1", conf).addrs
		if fmt.Sprint(r1) != "[10.20.0.5/24 fd20::5/64]" {
			t.Fatalf("reference ADD after ours: %v", r1)
		}
		interopMust(t, p.ref, "DEL", "o3", conf)
		o4 := interopMust(t, p.ours, "ADD", "o4", conf).addrs
		if fmt.Sprint(o4) != "[10.20.0.6/24 fd20::6/64]" {
			t.Fatalf("ours ADD o4: %v", o4)
		}
		interopMust(t, p.ours, "DEL", "r1", conf)
		if got := fmt.Sprint(leasetest.Holders(t, netDir)); got != "map[10.20.0.3:o2/eth0 10.20.0.6:o4/eth0 fd20::3:o2/eth0 fd20::6:o4/eth0]" {
			t.Fatalf("final leases: %s", got)
		}
		leasetest.CheckStore(t, netDir)
		// The reference walks the whole directory, our index included: it must
		// still release everything.
		interopMust(t, p.ref, "DEL", "o2", conf)
		interopMust(t, p.ref, "DEL", "o4", conf)
		if got := leasetest.Holders(t, netDir); len(got) != 0 {
			t.Fatalf("leases left after reference DELs: %v", got)
		}
		interopMust(t, p.ours, "ADD", "o5", conf)
		leasetest.CheckStore(t, netDir)
	})

	t.Run("ours GC releases reference leases", func(t *testing.T) {
		dir := t.TempDir()
		conf := interopConf("1.1.0", dir)
		netDir := filepath.Join(dir, "interop")
		interopMust(t, p.ref, "ADD", "keep", conf)
		interopMust(t, p.ref, "ADD", "drop", conf)
		gc := strings.TrimSuffix(conf, "}") + `,"cni.dev/valid-attachments":[{"containerID":"keep","ifname":"eth0"}]}`
		interopMust(t, p.ours, "GC", "", gc)
		if got := fmt.Sprint(leasetest.Holders(t, netDir)); got != "map[10.20.0.2:keep/eth0 fd20::2:keep/eth0]" {
			t.Fatalf("after GC: %s", got)
		}
		leasetest.CheckStore(t, netDir)
	})

	t.Run("exhaustion agrees", func(t *testing.T) {
		dir := t.TempDir()
		conf := interopConf("1.0.0", dir) // 10.20.0.2 - 10.20.0.20: 19 addresses
		for i := 0; i < 19; i++ {
			bin := p.ours
			if i%2 == 1 {
				bin = p.ref
			}
			interopMust(t, bin, "ADD", fmt.Sprintf("c%d", i), conf)
		}
		for _, bin := range []string{p.ours, p.ref} {
			if r := interopRun(t, bin, "ADD", "extra", "eth0", conf); r.exit == 0 {
				t.Fatalf("%s: ADD on a full range succeeded: %s", bin, r.stdout)
			}
		}
		if n := len(leasetest.Holders(t, filepath.Join(dir, "interop"))); n != 38 {
			t.Fatalf("%d lease files, want 38", n)
		}
		leasetest.CheckStore(t, filepath.Join(dir, "interop"))
	})
}
