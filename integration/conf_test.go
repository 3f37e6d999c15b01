package integration

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	current "github.com/containernetworking/cni/pkg/types/100"
)

// exampleConf is a conf/ example made safe to run on a test node: its bridge
// renamed to a unique name and its host-local dataDir moved to the node's.
type exampleConf struct {
	name, cniVersion string
	raw              []byte
	hasBridge        bool
}

// loadExample reads file (a .conflist, or a single-plugin .conf) and rewrites
// it for node n.
func loadExample(t *testing.T, file string, n *Node) exampleConf {
	t.Helper()
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	var top map[string]any
	if err := json.Unmarshal(data, &top); err != nil {
		t.Fatalf("%s: %v", file, err)
	}
	plugins := []any{top}
	if list, ok := top["plugins"].([]any); ok {
		plugins = list
	}
	ex := exampleConf{}
	ex.name, _ = top["name"].(string)
	ex.cniVersion, _ = top["cniVersion"].(string)
	for _, p := range plugins {
		plugin, ok := p.(map[string]any)
		if !ok {
			t.Fatalf("%s: plugin %v is not an object", file, p)
		}
		if plugin["type"] == "bridge" {
			ex.hasBridge = true
			plugin["bridge"] = "fc" + uniq()
		}
		if ipam, ok := plugin["ipam"].(map[string]any); ok && ipam["type"] == "host-local" {
			ipam["dataDir"] = n.LeaseDir()
		}
	}
	if ex.raw, err = json.Marshal(top); err != nil {
		t.Fatal(err)
	}
	return ex
}

// Every example in conf/ goes through ADD, CHECK and DEL with cnitool in a
// throwaway node, with the built plugins and, when built, the reference ones
// (the examples are meant for both).
//
// Examples without a bridge plugin (conf/host-local-*: host-local run on its
// own, which changes no namespace) are left to plugins/flatcni's
// TestExampleConfs, which runs them directly.
func TestExampleConfs(t *testing.T) {
	requireRoot(t)
	var files []string
	for _, pattern := range []string{"../conf/*.conflist", "../conf/*.conf"} {
		m, err := filepath.Glob(pattern)
		if err != nil {
			t.Fatal(err)
		}
		files = append(files, m...)
	}
	if len(files) == 0 {
		t.Fatal("no examples in conf/")
	}
	impls := []struct{ name, bin string }{{"flatcni", binDir(t)}}
	if dir := os.Getenv("FLATCNI_REF_BIN"); dir != "" {
		impls = append(impls, struct{ name, bin string }{"reference", dir})
	} else if _, err := os.Stat("../.bench/ref-v1.9.1/bridge"); err == nil {
		dir, _ := filepath.Abs("../.bench/ref-v1.9.1")
		impls = append(impls, struct{ name, bin string }{"reference", dir})
	}
	for _, file := range files {
		for _, impl := range impls {
			t.Run(filepath.Base(file)+"/"+impl.name, func(t *testing.T) {
				n := NewNode(t)
				n.Bin = impl.bin
				runExample(t, n, file, impl.name == "reference")
			})
		}
	}
}

func runExample(t *testing.T, n *Node, file string, reference bool) {
	ex := loadExample(t, file, n)
	if !ex.hasBridge {
		t.Skip("no bridge plugin: host-local examples are run by plugins/flatcni TestExampleConfs")
	}
	if err := os.WriteFile(filepath.Join(n.ConfDir, filepath.Base(file)), ex.raw, 0o644); err != nil {
		t.Fatal(err)
	}
	// A first attachment makes what stays after the last DEL, like the
	// reference: the bridge with its gateway addresses, empty nat tables.
	warm := NewNetns(t, "warm")
	for _, verb := range []string{"add", "del"} {
		if out, err := n.CNITool(t, verb, ex.name, warm.Path); err != nil {
			t.Fatalf("warm-up cnitool %s: %v\n%s", verb, err, out)
		}
	}
	before := settled(n.Snapshot(t))

	c := NewNetns(t, "c")
	t.Cleanup(func() { _, _ = n.CNITool(t, "del", ex.name, c.Path) })
	out, err := n.CNITool(t, "add", ex.name, c.Path)
	if err != nil {
		t.Fatalf("cnitool add: %v\n%s", err, out)
	}
	var res current.Result
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatalf("cnitool add: result %q: %v", out, err)
	}
	for _, ip := range res.IPs {
		// The reference may return before its IPv6 gateway finished DAD.
		if ip.Gateway != nil && !reference {
			ping(t, c, ip.Gateway.String())
		}
	}
	// The reference's CHECK fails without IPAM ("no plugin name provided").
	if !reference || len(res.IPs) > 0 {
		if out, err := n.CNITool(t, "check", ex.name, c.Path); err != nil {
			t.Errorf("cnitool check: %v\n%s", err, out)
		}
	}
	if !strings.HasPrefix(ex.cniVersion, "0.") && ex.cniVersion != "1.0.0" {
		if out, err := n.CNITool(t, "status", ex.name, c.Path); err != nil {
			t.Errorf("cnitool status: %v\n%s", err, out)
		}
	}
	for i := range 2 {
		if out, err := n.CNITool(t, "del", ex.name, c.Path); err != nil {
			t.Fatalf("cnitool del #%d: %v\n%s", i+1, err, out)
		}
	}
	if v := hostVeths(t, n); len(v) != 0 {
		t.Errorf("host veths left after DEL: %v", v)
	}
	if out, err := c.Run("ip", "link", "show", "eth0"); err == nil {
		t.Errorf("eth0 left in the container after DEL:\n%s", out)
	}
	after := settled(n.Snapshot(t))
	if reference {
		// The reference adds the bridge's IPv6 gateway with DAD: its flags
		// and local routes change on the kernel's schedule. Only its leases
		// and firewall rules are compared.
		after.Links, after.Addrs, after.Routes = before.Links, before.Addrs, before.Routes
	}
	RequireSame(t, before, after)
}
