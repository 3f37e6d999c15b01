package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"sync"
	"time"

	"github.com/containernetworking/plugins/pkg/ns"
)

// netnsDir is where `ip netns add` pins named namespaces.
const netnsDir = "/var/run/netns"

// nsPath returns the path a runtime would pass as CNI_NETNS for a named namespace.
func nsPath(name string) string { return netnsDir + "/" + name }

// namespaces creates and removes the named network namespaces of one bench
// run. Every name starts with the run's prefix, so sweep can find leftovers.
type namespaces struct {
	prefix string
}

// name builds a namespace name unique to this run.
func (m namespaces) name(parts ...string) string {
	return m.prefix + "-" + strings.Join(parts, "-")
}

// add creates the named namespaces with one `ip -batch` process.
func (m namespaces) add(ctx context.Context, names []string) error {
	if err := ipBatch(ctx, "add", names); err != nil {
		return fmt.Errorf("create %d network namespaces: %w", len(names), err)
	}
	return nil
}

// del removes the named namespaces, ignoring ones already gone.
func (m namespaces) del(ctx context.Context, names []string) error {
	var present []string
	for _, n := range names {
		if _, err := os.Lstat(nsPath(n)); err == nil {
			present = append(present, n)
		}
	}
	if err := ipBatch(ctx, "del", present); err != nil {
		return fmt.Errorf("delete %d network namespaces: %w", len(present), err)
	}
	return nil
}

// sweep removes every namespace of this run that still exists.
func (m namespaces) sweep(ctx context.Context) error {
	entries, err := os.ReadDir(netnsDir)
	if err != nil {
		if os.IsNotExist(err) {
			return nil
		}
		return fmt.Errorf("list %s: %w", netnsDir, err)
	}
	var left []string
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), m.prefix+"-") {
			left = append(left, e.Name())
		}
	}
	if len(left) == 0 {
		return nil
	}
	return m.del(ctx, left)
}

// ipBatch runs "ip netns <verb> <name>" for every name in one ip process.
func ipBatch(ctx context.Context, verb string, names []string) error {
	if len(names) == 0 {
		return nil
	}
	var script strings.Builder
	for _, n := range names {
		fmt.Fprintf(&script, "netns %s %s\n", verb, n)
	}
	cmd := exec.CommandContext(ctx, "ip", "-force", "-batch", "-")
	cmd.Stdin = strings.NewReader(script.String())
	var out bytes.Buffer
	cmd.Stdout = &out
	cmd.Stderr = &out
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("ip netns %s: %w: %s", verb, err, oneLine(out.String()))
	}
	return nil
}

// node runs work inside a "node" network namespace: a few goroutines, each
// locked to an OS thread that has joined the namespace. Processes started
// from such a thread inherit its namespace, exactly as plugins started by a
// runtime on a node inherit the node's, and no `ip netns exec` process is
// put in between.
type node struct {
	name string
	jobs chan func()
	wg   sync.WaitGroup
}

// enterNode starts workers threads inside the namespace pinned at path.
func enterNode(name, path string, workers int) (*node, error) {
	n := &node{name: name, jobs: make(chan func())}
	ready := make(chan error, workers)
	for range workers {
		n.wg.Add(1)
		go n.worker(path, ready)
	}
	var first error
	for range workers {
		if err := <-ready; err != nil && first == nil {
			first = err
		}
	}
	if first != nil {
		n.close()
		return nil, first
	}
	return n, nil
}

func (n *node) worker(path string, ready chan<- error) {
	defer n.wg.Done()
	// Never unlocked: once the thread has left the host namespace the Go
	// runtime must discard it when this goroutine returns, not reuse it.
	runtime.LockOSThread()
	target, err := ns.GetNS(path)
	if err != nil {
		ready <- fmt.Errorf("open node namespace %s: %w", path, err)
		return
	}
	defer target.Close()
	if err := target.Set(); err != nil {
		ready <- fmt.Errorf("join node namespace %s: %w", path, err)
		return
	}
	ready <- nil
	for job := range n.jobs {
		job()
	}
}

// do runs fn on one of the node's threads and waits for it.
func (n *node) do(fn func()) {
	done := make(chan struct{})
	n.jobs <- func() {
		defer close(done)
		fn()
	}
	<-done
}

// run executes a plugin invocation from inside the node namespace.
func (n *node) run(ctx context.Context, inv invocation) (took time.Duration, err error) {
	n.do(func() { took, err = inv.run(ctx) })
	return took, err
}

// output runs a command inside the node namespace and returns its stdout.
func (n *node) output(ctx context.Context, name string, args ...string) (string, error) {
	var out []byte
	var err error
	n.do(func() {
		cmd := exec.CommandContext(ctx, name, args...)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err = cmd.Output()
		if err != nil {
			err = fmt.Errorf("%s in node %s: %w: %s", name, n.name, err, oneLine(stderr.String()))
		}
	})
	return string(out), err
}

// close stops the node's threads; they exit with the namespace they joined.
func (n *node) close() {
	close(n.jobs)
	n.wg.Wait()
}
