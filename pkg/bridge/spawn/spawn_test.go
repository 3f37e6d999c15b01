package spawn

import (
	"io"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
)

func TestStart(t *testing.T) {
	p := filepath.Join(t.TempDir(), "plugin")
	if err := os.WriteFile(p, []byte("#!/bin/sh\ncat\necho \" $X\"\necho oops >&2\nexit 3\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	pr, err := Start(p, []string{"X=1"})
	if err != nil {
		t.Fatal(err)
	}
	if pr.Path != p || !slices.Equal(pr.Env, []string{"X=1"}) {
		t.Errorf("path %q env %q", pr.Path, pr.Env)
	}
	out, errOut, ws := feed(t, pr, "in")
	if strings.TrimSpace(string(out)) != "in 1" || strings.TrimSpace(string(errOut)) != "oops" || ws.ExitStatus() != 3 {
		t.Errorf("stdout %q stderr %q status %d", out, errOut, ws.ExitStatus())
	}

	if _, err := Start(filepath.Join(t.TempDir(), "missing"), nil); err == nil {
		t.Error("started a missing binary")
	}
}

// feed writes input to a started process's stdin, closes it, reads stdout
// and stderr to their ends and waits for the process.
func feed(t *testing.T, pr *Proc, input string) (stdout, stderr []byte, ws syscall.WaitStatus) {
	t.Helper()
	in, out, errOut := Files(pr)
	_, _ = in.Write([]byte(input))
	in.Close()
	stdout, _ = io.ReadAll(out)
	stderr, _ = io.ReadAll(errOut)
	out.Close()
	errOut.Close()
	if _, err := syscall.Wait4(pr.Pid, &ws, 0, nil); err != nil {
		t.Fatal(err)
	}
	return stdout, stderr, ws
}

// Files wraps a Proc's pipe ends, for tests.
func Files(p *Proc) (stdin, stdout, stderr *os.File) {
	return os.NewFile(uintptr(p.Stdin), "stdin"), os.NewFile(uintptr(p.Stdout), "stdout"), os.NewFile(uintptr(p.Stderr), "stderr")
}

func TestWithGOMAXPROCS(t *testing.T) {
	env := []string{"A=1"}
	got := WithGOMAXPROCS(env)
	if !slices.Equal(got, []string{"A=1", "GOMAXPROCS=1"}) || len(env) != 1 {
		t.Errorf("got %q (input now %q)", got, env)
	}
	keep := []string{"GOMAXPROCS=4", "A=1"}
	if got := WithGOMAXPROCS(keep); !slices.Equal(got, keep) {
		t.Errorf("got %q", got)
	}
}

// The started process runs with ChildTimerSlack (inherited across fork and
// execve); the starting thread gets its own slack back, also when the start
// fails. StartLocked is called as from a package initialiser: locked.
func TestStartTimerSlack(t *testing.T) {
	for _, tc := range []struct {
		name  string
		start func(string, []string) (*Proc, error)
	}{{"Start", Start}, {"StartLocked", StartLocked}} {
		t.Run(tc.name, func(t *testing.T) { testStartTimerSlack(t, tc.start) })
	}
}

func testStartTimerSlack(t *testing.T, start func(string, []string) (*Proc, error)) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	if _, err := os.Stat("/proc/self/timerslack_ns"); err != nil {
		t.Skipf("no per-process timer slack file: %v", err)
	}
	before := threadTimerSlack(t)
	if before == 0 || before == ChildTimerSlack {
		// A real-time thread has no slack (the kernel ignores a new one), and
		// a thread already at ChildTimerSlack could not tell the difference.
		t.Skipf("starting thread's timer slack is %d", before)
	}
	pr, err := start("/bin/sh", []string{"PATH=/usr/bin:/bin"})
	if err != nil {
		t.Fatal(err)
	}
	out, _, _ := feed(t, pr, "cat /proc/self/timerslack_ns\n")
	if got := strings.TrimSpace(string(out)); got != strconv.Itoa(ChildTimerSlack) {
		t.Errorf("child timer slack %q, want %d", got, ChildTimerSlack)
	}
	if after := threadTimerSlack(t); after != before {
		t.Errorf("starting thread's timer slack %d, was %d", after, before)
	}

	if _, err := start(filepath.Join(t.TempDir(), "missing"), nil); err == nil {
		t.Fatal("started a missing binary")
	}
	if after := threadTimerSlack(t); after != before {
		t.Errorf("after a failed start, the thread's timer slack is %d, was %d", after, before)
	}
}

func threadTimerSlack(t *testing.T) int {
	t.Helper()
	n, _, errno := syscall.RawSyscall(syscall.SYS_PRCTL, prGetTimerSlack, 0, 0)
	if errno != 0 {
		t.Skipf("PR_GET_TIMERSLACK: %v", errno)
	}
	return int(n)
}
