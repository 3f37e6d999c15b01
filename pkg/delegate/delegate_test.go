package delegate

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/containernetworking/cni/pkg/types"
)

// script writes an executable shell script and returns its path.
func script(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "plugin")
	if err := os.WriteFile(p, []byte("#!/bin/sh\n"+body), 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}

func cniErr(t *testing.T, err error) *types.Error {
	t.Helper()
	var te *types.Error
	if !errors.As(err, &te) {
		t.Fatalf("error %v (%T) is not a *types.Error", err, err)
	}
	return te
}

func TestExecPluginPassesStdinAndEnv(t *testing.T) {
	p := script(t, `cat; echo " $CNI_COMMAND $GOMAXPROCS"`)
	out, err := (&Exec{}).ExecPlugin(context.Background(), p, []byte(`{"a":1}`), []string{"CNI_COMMAND=ADD"})
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.TrimSpace(string(out)); got != `{"a":1} ADD 1` {
		t.Errorf("stdout %q", got)
	}
	// A GOMAXPROCS of the caller's is kept.
	out, err = (&Exec{}).ExecPlugin(context.Background(), p, nil, []string{"CNI_COMMAND=DEL", "GOMAXPROCS=4"})
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.TrimSpace(string(out)); got != "DEL 4" {
		t.Errorf("stdout %q", got)
	}
}

func TestExecPluginErrors(t *testing.T) {
	for _, tc := range []struct {
		name, body, want string
		code             uint
	}{
		{"json error", `echo '{"code":11,"msg":"pool empty"}'; exit 1`, "pool empty", 11},
		{"stderr only", `echo oops >&2; exit 3`, `netplugin failed: "oops\n"`, 0},
		{"silent", `exit 2`, "netplugin failed with no error message: exit status 2", 0},
		{"killed", `kill -9 $$`, "netplugin failed with no error message: signal: killed", 0},
		{"garbage", `echo nope; exit 1`, `error parsing its diagnostic message "nope\n"`, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := (&Exec{Early: true}).ExecPlugin(context.Background(), script(t, tc.body), nil, nil)
			te := cniErr(t, err)
			if !strings.Contains(te.Msg, tc.want) || te.Code != tc.code {
				t.Errorf("error %+v, want code %d and %q", te, tc.code, tc.want)
			}
		})
	}
	_, err := (&Exec{}).ExecPlugin(context.Background(), filepath.Join(t.TempDir(), "missing"), nil, nil)
	if te := cniErr(t, err); !strings.Contains(te.Msg, "fork/exec") {
		t.Errorf("missing binary: %+v", te)
	}
}

func TestEarlyResultThenSettle(t *testing.T) {
	dir := t.TempDir()
	// The plugin prints a result, closes stdout, and only then fails.
	p := script(t, `echo '{"cniVersion":"1.0.0"}'; exec 1>&-; sleep 0.3; echo late >&2; touch `+dir+`/done; exit 1`)
	e := &Exec{Early: true}
	t0 := time.Now()
	out, err := e.ExecPlugin(context.Background(), p, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(out, []byte("cniVersion")) {
		t.Errorf("stdout %q", out)
	}
	if _, err := os.Stat(filepath.Join(dir, "done")); err == nil {
		t.Errorf("ExecPlugin waited for the exit (%v)", time.Since(t0))
	}
	err = e.Settle()
	if te := cniErr(t, err); !strings.Contains(te.Msg, "late") {
		t.Errorf("Settle: %+v", te)
	}
	if err := e.Settle(); err != nil {
		t.Errorf("second Settle: %v", err)
	}

	// Without Early the same plugin is waited for.
	if _, err := (&Exec{}).ExecPlugin(context.Background(), p, nil, nil); err == nil {
		t.Error("ExecPlugin without Early: no error for a failed exit")
	}
}

func TestEarlySuccessCopiesStderr(t *testing.T) {
	p := script(t, `echo '{"cniVersion":"1.0.0"}'; exec 1>&-; echo note >&2`)
	var stderr bytes.Buffer
	e := &Exec{Early: true, Stderr: &stderr}
	if _, err := e.ExecPlugin(context.Background(), p, nil, nil); err != nil {
		t.Fatal(err)
	}
	if err := e.Settle(); err != nil {
		t.Fatal(err)
	}
	if stderr.String() != "note\n" {
		t.Errorf("stderr %q", stderr.String())
	}
}

func TestGate(t *testing.T) {
	dir := t.TempDir()
	// The plugin acts only on what it reads: a marker file named by stdin.
	p := script(t, `read name; touch `+dir+`/"$name"; echo '{}'`)

	refused := make(chan bool, 1)
	done := make(chan error, 1)
	go func() {
		_, err := (&Exec{Gate: refused}).ExecPlugin(context.Background(), p, []byte("refused\n"), nil)
		done <- err
	}()
	time.Sleep(100 * time.Millisecond) // the process is up and waiting for stdin
	refused <- false
	if err := <-done; !errors.Is(err, ErrRefused) {
		t.Errorf("refused gate: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "refused")); err == nil {
		t.Error("the plugin acted although its gate refused")
	}

	open := make(chan bool, 1)
	open <- true
	if _, err := (&Exec{Gate: open}).ExecPlugin(context.Background(), p, []byte("fed\n"), nil); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "fed")); err != nil {
		t.Errorf("open gate: %v", err)
	}
}

func TestTextFileBusyIsRetried(t *testing.T) {
	defer func(d time.Duration) { busyWait = d }(busyWait)
	busyWait = 50 * time.Millisecond
	p := filepath.Join(t.TempDir(), "plugin")
	f, err := os.OpenFile(p, os.O_CREATE|os.O_WRONLY, 0o755)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteString("#!/bin/sh\necho '{}'\n"); err != nil {
		t.Fatal(err)
	}
	// Still open for writing: exec fails with ETXTBSY until it is closed.
	go func() {
		time.Sleep(120 * time.Millisecond)
		f.Close()
	}()
	out, err := (&Exec{}).ExecPlugin(context.Background(), p, nil, nil)
	if err != nil {
		t.Fatalf("ExecPlugin: %v", err)
	}
	if strings.TrimSpace(string(out)) != "{}" {
		t.Errorf("stdout %q", out)
	}
}

func TestPrestart(t *testing.T) {
	dir := t.TempDir()
	// The plugin records its pid: the process that answers must be the
	// prestarted one when path and environment match (in any order).
	p := script(t, `read x; echo $$ >> `+dir+`/pids; echo "{\"x\":\"$x\"}"`)
	gate := make(chan bool, 1)
	e := &Exec{Gate: gate}
	if err := e.Prestart(p, []string{"A=1", "B=2"}); err != nil {
		t.Fatal(err)
	}
	pre := e.pre.pid
	gate <- true
	out, err := e.ExecPlugin(context.Background(), p, []byte("fed\n"), []string{"B=2", "A=1"})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(out), "fed") {
		t.Errorf("stdout %q", out)
	}
	pids, _ := os.ReadFile(filepath.Join(dir, "pids"))
	if strings.TrimSpace(string(pids)) != fmt.Sprint(pre) {
		t.Errorf("answered by %q, want the prestarted pid %d", pids, pre)
	}

	// A different environment: the prestarted process is killed unfed, and
	// a new one runs.
	os.Remove(filepath.Join(dir, "pids"))
	e = &Exec{}
	if err := e.Prestart(p, []string{"A=1"}); err != nil {
		t.Fatal(err)
	}
	pre = e.pre.pid
	if _, err := e.ExecPlugin(context.Background(), p, []byte("x\n"), []string{"A=2"}); err != nil {
		t.Fatal(err)
	}
	pids, _ = os.ReadFile(filepath.Join(dir, "pids"))
	if got := strings.Fields(string(pids)); len(got) != 1 || got[0] == fmt.Sprint(pre) {
		t.Errorf("pids %q (prestarted %d)", got, pre)
	}
	if err := syscall.Kill(pre, 0); err == nil {
		t.Errorf("prestarted process %d still exists", pre)
	}

}
