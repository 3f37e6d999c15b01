package link

import (
	"errors"
	"fmt"
	"runtime"
	"sync"

	"github.com/containernetworking/plugins/pkg/ns"
)

// ErrNetNSGone is matched (with errors.Is) when a container netns path does
// not exist any more.
var ErrNetNSGone = errors.New("network namespace does not exist")

// ErrNotNetNS is matched (with errors.Is) when a netns path exists but cannot
// be opened as a network namespace.
var ErrNotNetNS = errors.New("not a usable network namespace")

// getNS opens the netns at path, telling a missing path from one that is not
// a network namespace.
func getNS(path string) (ns.NetNS, error) {
	target, err := ns.GetNS(path)
	if err != nil {
		var gone ns.NSPathNotExistErr
		if errors.As(err, &gone) {
			return nil, fmt.Errorf("open netns %q: %w", path, ErrNetNSGone)
		}
		return nil, fmt.Errorf("open netns %q: %w: %w", path, ErrNotNetNS, err)
	}
	return target, nil
}

// inNetNS runs fn on a locked OS thread inside the netns at path: the open
// Sandbox's thread for that path if there is one, otherwise a fresh one (ns.Do).
// The node namespace (the caller's) is passed to fn so it can hop back.
func inNetNS(path string, fn func(node ns.NetNS) error) error {
	if s, ok := sandboxes.Load(path); ok {
		return s.(*Sandbox).do(fn)
	}
	target, err := getNS(path)
	if err != nil {
		return err
	}
	defer target.Close()
	return target.Do(fn)
}

// withNetNSHandle calls fn with an open handle on the netns at path (the
// open Sandbox's, or one opened for the call).
func withNetNSHandle(path string, fn func(target ns.NetNS) error) error {
	if s, ok := sandboxes.Load(path); ok {
		return fn(s.(*Sandbox).target)
	}
	target, err := getNS(path)
	if err != nil {
		return err
	}
	defer target.Close()
	return fn(target)
}

// sandboxes holds the open Sandboxes by netns path.
var sandboxes sync.Map

// Sandbox is a container netns entered once for a whole plugin call. Until
// Close, the functions of this package that work in that netns (given its
// path) run their steps on one goroutine locked to an OS thread that stays
// inside it, instead of a new goroutine, two namespace switches and a fresh
// stack per step.
type Sandbox struct {
	path   string
	target ns.NetNS
	node   ns.NetNS
	jobs   chan func()
}

// OpenSandbox opens the netns at path (errors match ErrNetNSGone or
// ErrNotNetNS) and enters it on a thread of its own. Call it from a goroutine
// that is in the node's netns; Close it before the call returns.
func OpenSandbox(path string) (*Sandbox, error) {
	target, err := getNS(path)
	if err != nil {
		return nil, err
	}
	node, err := ns.GetCurrentNS()
	if err != nil {
		target.Close()
		return nil, fmt.Errorf("open node netns: %w", err)
	}
	s := &Sandbox{path: path, target: target, node: node, jobs: make(chan func())}
	ready := make(chan error, 1)
	go s.serve(ready)
	if err := <-ready; err != nil {
		target.Close()
		node.Close()
		return nil, fmt.Errorf("enter netns %q: %w", path, err)
	}
	sandboxes.Store(path, s)
	return s, nil
}

// serve runs the jobs inside the netns. The thread never leaves it: it stays
// locked and ends with the goroutine.
func (s *Sandbox) serve(ready chan<- error) {
	runtime.LockOSThread()
	if err := s.target.Set(); err != nil {
		ready <- err
		return
	}
	ready <- nil
	for job := range s.jobs {
		job()
	}
}

func (s *Sandbox) do(fn func(node ns.NetNS) error) error {
	done := make(chan error, 1)
	s.jobs <- func() { done <- fn(s.node) }
	return <-done
}

// Close ends the sandbox's thread and releases the namespace handles.
func (s *Sandbox) Close() {
	sandboxes.CompareAndDelete(s.path, s)
	close(s.jobs)
	s.target.Close()
	s.node.Close()
}
