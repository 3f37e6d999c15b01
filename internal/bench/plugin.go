package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// impl is one set of plugin binaries under test: the reference or ours.
type impl struct {
	name string // "reference" or "ours"
	dir  string // directory holding the binaries; also used as CNI_PATH
}

// bin returns the path of one plugin binary of the set.
func (i impl) bin(plugin string) string { return filepath.Join(i.dir, plugin) }

// missing returns a non-empty reason when any of the named plugins is not an
// executable file in the set's directory.
func (i impl) missing(plugins ...string) string {
	for _, p := range plugins {
		st, err := os.Stat(i.bin(p))
		if err != nil || st.IsDir() || st.Mode()&0o111 == 0 {
			return "not built"
		}
	}
	return ""
}

// invocation is one plugin call, made the way a container runtime makes it.
type invocation struct {
	bin         string
	command     string // CNI_COMMAND
	containerID string
	netns       string
	ifname      string
	cniPath     string
	config      []byte
}

// cniEnv returns the process environment with every inherited CNI_ variable
// replaced by the ones of this invocation; the rest (PATH above all, which
// the reference needs to find iptables and nft) is passed through.
func (inv invocation) cniEnv(base []string) []string {
	env := make([]string, 0, len(base)+6)
	for _, kv := range base {
		if !strings.HasPrefix(kv, "CNI_") {
			env = append(env, kv)
		}
	}
	add := func(k, v string) {
		if v != "" {
			env = append(env, k+"="+v)
		}
	}
	add("CNI_COMMAND", inv.command)
	add("CNI_CONTAINERID", inv.containerID)
	add("CNI_NETNS", inv.netns)
	add("CNI_IFNAME", inv.ifname)
	add("CNI_PATH", inv.cniPath)
	return env
}

// run executes the plugin, feeding the config on stdin, and returns the wall
// time from fork to exit. A non-zero exit becomes an error quoting the
// plugin's output, which carries the CNI error object.
func (inv invocation) run(ctx context.Context) (time.Duration, error) {
	cmd := exec.CommandContext(ctx, inv.bin)
	cmd.Env = inv.cniEnv(os.Environ())
	cmd.Stdin = bytes.NewReader(inv.config)
	var stdout, stderr bytes.Buffer
	cmd.Stdout = &stdout
	cmd.Stderr = &stderr
	start := time.Now()
	err := cmd.Run()
	took := time.Since(start)
	if err != nil {
		return took, fmt.Errorf("%s %s (container %s): %w: %s", filepath.Base(inv.bin), inv.command, inv.containerID, err, oneLine(stdout.String()+" "+stderr.String()))
	}
	return took, nil
}

// oneLine squeezes plugin output into a short single line for error messages.
func oneLine(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	const limit = 300
	if len(s) > limit {
		s = s[:limit] + "..."
	}
	return s
}
