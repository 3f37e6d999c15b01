// Package delegate runs delegated (IPAM) plugins for the bridge plugin. It is
// an invoke.Exec, so invoke's Delegate* functions keep their environment,
// argument and result handling; what differs from invoke's RawExec is how the
// plugin process is run, for latency:
//
//   - the process is started by spawn.Start (syscall.ForkExec), with
//     GOMAXPROCS=1 added to its environment unless the caller's environment
//     sets GOMAXPROCS (spawn.WithGOMAXPROCS), and a 2 ms timer slack
//     (spawn.ChildTimerSlack);
//   - with Gate set, the process is started at once but gets its stdin (the
//     network configuration) only when the caller allows it: a plugin can do
//     nothing before it has read its configuration, so its start-up (the Go
//     runtime, its package initialisation) overlaps the caller's own checks
//     without the plugin's work happening any earlier; a refused gate kills
//     the process;
//   - with Early set, ExecPlugin returns a successful result as soon as the
//     plugin has closed its stdout, while the process may still be exiting.
//     Settle then waits for every such process and reports a failure exit.
//
// Errors are those of invoke's RawExec: the plugin's JSON error from stdout,
// else its stderr, else its exit status; "text file busy" is retried the same
// way (five times, a second apart).
package delegate

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"sync"
	"syscall"
	"time"

	"github.com/containernetworking/cni/pkg/invoke"
	"github.com/containernetworking/cni/pkg/types"
	"github.com/containernetworking/cni/pkg/version"

	"github.com/flatcni/plugins/pkg/bridge/spawn"
)

// Exec implements invoke.Exec.
type Exec struct {
	// Early lets ExecPlugin return before the plugin has exited (see the
	// package comment). The caller must call Settle before acting on the
	// result for good.
	Early bool
	// Gate, when not nil, holds back the plugin's stdin until a value
	// arrives: true feeds it, false kills the process and ExecPlugin returns
	// ErrRefused.
	Gate <-chan bool
	// Stderr receives what a successful plugin wrote to its stderr, as with
	// invoke's RawExec (os.Stderr when nil).
	Stderr io.Writer

	mu      sync.Mutex
	pending []*run
	pre     *run // from Prestart, not yet used
}

// Prestart starts the plugin now, for the ExecPlugin call that will ask for
// the same path and environment: with Gate set, the process starts up while
// the caller still prepares. A prestarted process that ExecPlugin does not
// claim (another path or environment) is killed by it.
func (e *Exec) Prestart(pluginPath string, environ []string) error {
	p, err := spawn.Start(pluginPath, spawn.WithGOMAXPROCS(environ))
	if err != nil {
		return err
	}
	e.Adopt(p)
	return nil
}

// Adopt is Prestart with a process someone else started (pkg/bridge/early
// starts IPAM before the plugin has initialised). Its environment must be
// the one ExecPlugin will pass, with GOMAXPROCS as spawn.WithGOMAXPROCS sets
// it, for ExecPlugin to claim it.
func (e *Exec) Adopt(p *spawn.Proc) {
	r := adopt(p)
	e.mu.Lock()
	old := e.pre
	e.pre = r
	e.mu.Unlock()
	if old != nil {
		old.kill()
	}
}

// claim returns the prestarted process if it was started for path and
// environ, and kills it otherwise.
func (e *Exec) claim(path string, environ []string) *run {
	e.mu.Lock()
	r := e.pre
	e.pre = nil
	e.mu.Unlock()
	if r == nil {
		return nil
	}
	if r.path == path && sameEnv(r.env, environ) {
		return r
	}
	r.kill()
	return nil
}

var _ invoke.Exec = (*Exec)(nil)

// FindInPath is invoke.FindInPath.
func (e *Exec) FindInPath(plugin string, paths []string) (string, error) {
	return invoke.FindInPath(plugin, paths)
}

// Decode reads a plugin's VERSION answer.
func (e *Exec) Decode(b []byte) (version.PluginInfo, error) {
	return (&version.PluginDecoder{}).Decode(b)
}

// ErrRefused is returned by ExecPlugin when its Gate said false.
var ErrRefused = errors.New("delegated plugin not run: refused by its caller")

// busyRetries and busyWait are invoke's handling of "text file busy" (the
// plugin binary is being written while we exec it).
const busyRetries = 5

var busyWait = time.Second

// ExecPlugin runs the plugin with stdin and environ and returns its stdout.
func (e *Exec) ExecPlugin(ctx context.Context, pluginPath string, stdin []byte, environ []string) ([]byte, error) {
	environ = spawn.WithGOMAXPROCS(environ)
	r := e.claim(pluginPath, environ)
	var err error
	for i := 0; r == nil; i++ {
		r, err = start(pluginPath, environ)
		if err == nil {
			break
		}
		if !errors.Is(err, syscall.ETXTBSY) || i == busyRetries {
			return nil, &types.Error{Msg: fmt.Sprintf("netplugin failed with no error message: fork/exec %s: %v", pluginPath, err)}
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(busyWait):
		}
	}
	if e.Gate != nil && !<-e.Gate {
		r.kill()
		return nil, ErrRefused
	}
	r.feed(stdin)
	stdout, _ := io.ReadAll(r.stdout)
	r.stdout.Close()
	r.out = stdout
	if e.Early && successResult(stdout) && !r.exited() {
		e.mu.Lock()
		e.pending = append(e.pending, r)
		e.mu.Unlock()
		return stdout, nil
	}
	if err := r.wait(); err != nil {
		return nil, err
	}
	e.copyStderr(r)
	return stdout, nil
}

// Settle waits for the plugins whose results ExecPlugin returned early and
// returns the first failure among them, as ExecPlugin would have.
func (e *Exec) Settle() error {
	e.mu.Lock()
	pending := e.pending
	e.pending = nil
	e.mu.Unlock()
	var first error
	for _, r := range pending {
		if err := r.wait(); err != nil {
			if first == nil {
				first = err
			}
			continue
		}
		e.copyStderr(r)
	}
	return first
}

func (e *Exec) copyStderr(r *run) {
	if r.stderr.Len() == 0 {
		return
	}
	w := e.Stderr
	if w == nil {
		w = os.Stderr
	}
	_, _ = w.Write(r.stderr.Bytes())
}

// sameEnv tells whether two environments hold the same entries, in any
// order (invoke builds its environment from a map).
func sameEnv(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	a, b = slices.Clone(a), slices.Clone(b)
	slices.Sort(a)
	slices.Sort(b)
	return slices.Equal(a, b)
}

// successResult tells whether stdout holds a JSON object that is not a CNI
// error (no "code").
func successResult(stdout []byte) bool {
	var probe struct {
		Code json.RawMessage `json:"code"`
	}
	if err := json.Unmarshal(stdout, &probe); err != nil {
		return false
	}
	return probe.Code == nil && bytes.HasPrefix(bytes.TrimSpace(stdout), []byte("{"))
}

// run is one started plugin process.
type run struct {
	pid       int
	path      string
	env       []string // as passed to the process
	stdin     *os.File
	stdout    *os.File
	out       []byte
	stderr    bytes.Buffer
	stderrEOF chan struct{}

	once    sync.Once
	waitErr error
	status  syscall.WaitStatus
}

func start(path string, environ []string) (*run, error) {
	p, err := spawn.Start(path, environ)
	if err != nil {
		return nil, err
	}
	return adopt(p), nil
}

// adopt takes over a started process: its stderr is collected from now on.
func adopt(p *spawn.Proc) *run {
	stderr := pollable(p.Stderr, "stderr of "+p.Path)
	r := &run{pid: p.Pid, path: p.Path, env: p.Env,
		stdin:     pollable(p.Stdin, "stdin of "+p.Path),
		stdout:    pollable(p.Stdout, "stdout of "+p.Path),
		stderrEOF: make(chan struct{})}
	go func() {
		_, _ = io.Copy(&r.stderr, stderr)
		stderr.Close()
		close(r.stderrEOF)
	}()
	return r
}

// pollable wraps a pipe end in an os.File that waits in the runtime's
// poller: a goroutine waiting for the plugin then parks instead of holding a
// thread and, with GOMAXPROCS=1, the only P, which the runtime takes back
// only when its monitor next wakes (up to 10 ms later).
func pollable(fd int, name string) *os.File {
	_ = syscall.SetNonblock(fd, true) // if it fails, reads block: slower, still right
	return os.NewFile(uintptr(fd), name)
}

// feed writes the plugin's stdin in the background and closes it (a plugin
// may exit without reading it all).
func (r *run) feed(stdin []byte) {
	go func() {
		_, _ = r.stdin.Write(stdin)
		r.stdin.Close()
	}()
}

// kill ends a plugin that was never fed, and reaps it.
func (r *run) kill() {
	_ = syscall.Kill(r.pid, syscall.SIGKILL)
	r.stdin.Close()
	r.stdout.Close()
	_ = r.wait()
}

// exited reaps the process if it has already exited.
func (r *run) exited() bool {
	var ws syscall.WaitStatus
	pid, err := syscall.Wait4(r.pid, &ws, syscall.WNOHANG, nil)
	if err != nil || pid != r.pid {
		return false
	}
	r.once.Do(func() { r.status = ws })
	return true
}

// wait reaps the process (once) and returns invoke's error for a failure.
func (r *run) wait() error {
	r.once.Do(func() {
		for {
			_, err := syscall.Wait4(r.pid, &r.status, 0, nil)
			if err != syscall.EINTR {
				r.waitErr = err
				return
			}
		}
	})
	<-r.stderrEOF
	if r.waitErr != nil {
		return pluginErr(r.waitErr, r.out, r.stderr.Bytes())
	}
	if r.status.Exited() && r.status.ExitStatus() == 0 {
		return nil
	}
	return pluginErr(errors.New(statusString(r.status)), r.out, r.stderr.Bytes())
}

// statusString describes a failed exit as os.ProcessState does.
func statusString(ws syscall.WaitStatus) string {
	switch {
	case ws.Exited():
		return fmt.Sprintf("exit status %d", ws.ExitStatus())
	case ws.Signaled():
		s := "signal: " + ws.Signal().String()
		if ws.CoreDump() {
			s += " (core dumped)"
		}
		return s
	}
	return fmt.Sprintf("wait status %#x", uint32(ws))
}

// pluginErr is invoke's RawExec error for a failed plugin, except that a
// stdout holding no CNI error (a result, then a failed exit) is described by
// stderr or the exit status rather than by an empty error.
func pluginErr(err error, stdout, stderr []byte) error {
	e := types.Error{}
	if successResult(stdout) {
		stdout = nil
	}
	switch {
	case len(stdout) == 0 && len(stderr) == 0:
		e.Msg = fmt.Sprintf("netplugin failed with no error message: %v", err)
	case len(stdout) == 0:
		e.Msg = fmt.Sprintf("netplugin failed: %q", string(stderr))
	default:
		if perr := json.Unmarshal(stdout, &e); perr != nil {
			e.Msg = fmt.Sprintf("netplugin failed but error parsing its diagnostic message %q: %v", string(stdout), perr)
		}
	}
	return &e
}
