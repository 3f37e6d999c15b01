package early

import (
	"io"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
)

// plugin writes an executable shell script named name in dir.
func plugin(t *testing.T, dir, name, body string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte("#!/bin/sh\n"+body), 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestFindInPath(t *testing.T) {
	a, b := t.TempDir(), t.TempDir()
	// A directory of that name is not a plugin; the first regular file wins.
	if err := os.Mkdir(filepath.Join(a, "ipam"), 0o755); err != nil {
		t.Fatal(err)
	}
	want := plugin(t, b, "ipam", "")
	plugin(t, t.TempDir(), "ipam", "")
	if got, _ := findInPath("ipam", []string{a, b}); got != want {
		t.Errorf("found %q, want %q", got, want)
	}
	for _, name := range []string{"", "../ipam", "missing"} {
		if got, _ := findInPath(name, []string{a, b}); got != "" {
			t.Errorf("findInPath(%q) = %q, want none", name, got)
		}
	}
}

func TestStartIPAM(t *testing.T) {
	// As in a package initialiser, where early starts it: locked.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	dir := t.TempDir()
	// The plugin echoes its configuration and the environment it got.
	want := plugin(t, dir, "ipam", `cat; echo " $CNI_COMMAND $GOMAXPROCS $0"`)
	conf := []byte(`{"cniVersion":"1.1.0","ipam":{"type":"ipam"}}`)
	p := startIPAM(conf, "/nonexistent:"+dir, []string{"CNI_COMMAND=ADD", "PATH=/usr/bin:/bin"})
	if p == nil {
		t.Fatal("not started")
	}
	if p.Path != want || !slices.Contains(p.Env, "GOMAXPROCS=1") || !slices.Contains(p.Env, "CNI_COMMAND=ADD") {
		t.Errorf("path %q env %q", p.Path, p.Env)
	}
	// It has done nothing yet: it waits for its stdin.
	stdin, stdout, stderr := os.NewFile(uintptr(p.Stdin), "stdin"), os.NewFile(uintptr(p.Stdout), "stdout"), os.NewFile(uintptr(p.Stderr), "stderr")
	if _, err := stdin.Write([]byte("fed")); err != nil {
		t.Fatal(err)
	}
	stdin.Close()
	out, _ := io.ReadAll(stdout)
	stdout.Close()
	stderr.Close()
	var ws syscall.WaitStatus
	if _, err := syscall.Wait4(p.Pid, &ws, 0, nil); err != nil || ws.ExitStatus() != 0 {
		t.Fatalf("wait: %v, status %v", err, ws)
	}
	if got := strings.TrimSpace(string(out)); got != "fed ADD 1 "+want {
		t.Errorf("plugin printed %q", got)
	}

	// Nothing to start: no IPAM (L2-only), not found, not JSON.
	for _, c := range []string{`{"ipam":{}}`, `{"ipam":{"type":"other"}}`, `{"ipam":`, `{"ipam":{"type":"a/ipam"}}`} {
		if p := startIPAM([]byte(c), dir, nil); p != nil {
			t.Errorf("%s: started %q", c, p.Path)
		}
	}
}

// restoreStdin puts the test binary's fd 0 back when the test ends.
func restoreStdin(t *testing.T) {
	t.Helper()
	saved, err := syscall.Dup(0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = syscall.Dup3(saved, 0, 0)
		syscall.Close(saved)
	})
}

// withStdin runs fn with file descriptor 0 reading conf, and returns what
// fd 0 yields after fn (what skel reads); fd 0 is restored afterwards.
func withStdin(t *testing.T, conf string, fn func()) string {
	t.Helper()
	restoreStdin(t)
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		_, _ = w.Write([]byte(conf))
		w.Close()
	}()
	if err := syscall.Dup3(int(r.Fd()), 0, 0); err != nil {
		t.Fatal(err)
	}
	r.Close()
	fn()
	// Read fd 0 directly: an os.File for it would close it when collected.
	var again []byte
	buf := make([]byte, 64<<10)
	for {
		n, err := syscall.Read(0, buf)
		if err == syscall.EINTR {
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		if n == 0 {
			return string(again)
		}
		again = append(again, buf[:n]...)
	}
}

func TestReplayStdin(t *testing.T) {
	// Small, and larger than a pipe holds (the rest is written as skel reads).
	for _, conf := range []string{`{"name":"net"}`, `{"name":"` + strings.Repeat("x", 300<<10) + `"}`, ""} {
		var got []byte
		again := withStdin(t, conf, func() { got = replayStdin() })
		if string(got) != conf {
			t.Errorf("read %d bytes, want %d", len(got), len(conf))
		}
		// skel reads the same bytes again.
		if again != conf {
			t.Errorf("replayed %d bytes, want %d", len(again), len(conf))
		}
	}
}

// A runtime may hand over a non-blocking stdin and write the configuration
// later: replayStdin waits for it rather than reading it as empty.
func TestReplayStdinNonblocking(t *testing.T) {
	restoreStdin(t)
	var p [2]int
	if err := syscall.Pipe2(p[:], syscall.O_CLOEXEC|syscall.O_NONBLOCK); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Dup3(p[0], 0, 0); err != nil {
		t.Fatal(err)
	}
	syscall.Close(p[0])
	conf := `{"cniVersion":"1.0.0"}`
	go func() {
		time.Sleep(100 * time.Millisecond)
		_, _ = syscall.Write(p[1], []byte(conf))
		syscall.Close(p[1])
	}()
	if got := string(replayStdin()); got != conf {
		t.Errorf("read %q, want %q", got, conf)
	}
}

func TestSplitList(t *testing.T) {
	for _, list := range []string{"", "/a", "/a:/b", "/a::/b/", ":", "/a:"} {
		if got, want := splitList(list), filepath.SplitList(list); !slices.Equal(got, want) {
			t.Errorf("splitList(%q) = %q, want %q", list, got, want)
		}
	}
}

// startDel starts nothing for the two errors DEL reports before changing
// anything: a configuration that is not JSON, and CNI_NETNS being the
// plugin's own netns.
func TestStartDelRefuses(t *testing.T) {
	savedCheck := ownNetnsCheck
	defer func() { ownNetnsCheck = savedCheck }()
	dir := t.TempDir()
	plugin(t, dir, "ipam", "cat >/dev/null")
	t.Setenv("CNI_PATH", dir)
	t.Setenv("CNI_CONTAINERID", "c1")
	t.Setenv("CNI_IFNAME", "eth0")
	ownNetnsCheck = true
	for _, tc := range []struct{ name, conf, netns string }{
		{"not JSON", `{"ipam":{"type":"ipam"}`, ""},
		{"own netns", `{"ipam":{"type":"ipam"}}`, "/proc/self/ns/net"},
	} {
		t.Setenv("CNI_NETNS", tc.netns)
		again := withStdin(t, tc.conf, startDel)
		if _, _, started := HostVethDel(); started {
			t.Errorf("%s: host veth removal started", tc.name)
		}
		if p := TakeIPAM(); p != nil {
			t.Errorf("%s: IPAM started (%s)", tc.name, p.Path)
		}
		// skel still reads the configuration.
		if again != tc.conf {
			t.Errorf("%s: replayed %q", tc.name, again)
		}
	}
}
