package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/flatcni/plugins/internal/leasetest"
)

// pluginConfs returns the plugin configurations of a .conf or .conflist file
// as the runtime would pass them: a conflist's name and cniVersion are copied
// into each plugin's configuration.
func pluginConfs(t *testing.T, path string) []map[string]any {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var top map[string]any
	if err := json.Unmarshal(b, &top); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	plugins, ok := top["plugins"].([]any)
	if !ok {
		return []map[string]any{top}
	}
	var out []map[string]any
	for _, p := range plugins {
		m := p.(map[string]any)
		m["name"], m["cniVersion"] = top["name"], top["cniVersion"]
		out = append(out, m)
	}
	return out
}

// TestExampleConfs runs every conf/host-local-* example through ADD, CHECK
// (with the ADD result as prevResult) and DEL, with its lease directory moved
// to a temporary one.
func TestExampleConfs(t *testing.T) {
	files, err := filepath.Glob("../../conf/host-local-*")
	if err != nil {
		t.Fatal(err)
	}
	if len(files) == 0 {
		t.Fatal("no conf/host-local-* examples")
	}
	for _, file := range files {
		t.Run(filepath.Base(file), func(t *testing.T) {
			for _, conf := range pluginConfs(t, file) {
				if conf["type"] != "host-local" {
					if ipamConf, ok := conf["ipam"].(map[string]any); !ok || ipamConf["type"] != "host-local" {
						continue
					}
				}
				dir := t.TempDir()
				ipamConf := conf["ipam"].(map[string]any)
				ipamConf["dataDir"] = dir
				stdin, _ := json.Marshal(conf)
				add := mustOK(t, call{cmd: "ADD", id: "example", stdin: string(stdin)})
				if len(addrs(add)) == 0 {
					t.Fatalf("ADD gave no address: %s", add.stdout)
				}
				var prev any
				if err := json.Unmarshal(add.stdout, &prev); err != nil {
					t.Fatal(err)
				}
				conf["prevResult"] = prev
				withPrev, _ := json.Marshal(conf)
				mustOK(t, call{cmd: "CHECK", id: "example", stdin: string(withPrev)})
				mustOK(t, call{cmd: "DEL", id: "example", stdin: string(stdin)})
				if files := leasetest.Holders(t, filepath.Join(dir, conf["name"].(string))); len(files) != 0 {
					t.Fatalf("leases left after DEL: %v", files)
				}
				if o := run(t, call{cmd: "CHECK", id: "example", stdin: string(withPrev)}); o.code == 0 {
					t.Fatal("CHECK after DEL succeeded")
				}
			}
		})
	}
}
