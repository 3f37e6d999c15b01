package early

import (
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
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
	if got := findInPath("ipam", []string{a, b}); got != want {
		t.Errorf("found %q, want %q", got, want)
	}
	for _, name := range []string{"", "../ipam", "missing"} {
		if got := findInPath(name, []string{a, b}); got != "" {
			t.Errorf("findInPath(%q) = %q, want none", name, got)
		}
	}
}

func TestStartIPAM(t *testing.T) {
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
	if _, err := p.Stdin.Write([]byte("fed")); err != nil {
		t.Fatal(err)
	}
	p.Stdin.Close()
	out, _ := io.ReadAll(p.Stdout)
	p.Stdout.Close()
	p.Stderr.Close()
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

func TestReplayStdin(t *testing.T) {
	saved := os.Stdin
	defer func() { os.Stdin = saved }()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	os.Stdin = r
	conf := `{"name":"net"}`
	go func() {
		_, _ = w.Write([]byte(conf))
		w.Close()
	}()
	if got := string(replayStdin()); got != conf {
		t.Errorf("read %q", got)
	}
	r.Close()
	// skel reads the same bytes again.
	again, err := io.ReadAll(os.Stdin)
	if err != nil || string(again) != conf {
		t.Errorf("replayed %q, %v", again, err)
	}
	os.Stdin.Close()
}

// startDel starts nothing for the two errors DEL reports before changing
// anything: a configuration that is not JSON, and CNI_NETNS being the
// plugin's own netns.
func TestStartDelRefuses(t *testing.T) {
	saved, savedCheck := os.Stdin, ownNetnsCheck
	defer func() { os.Stdin, ownNetnsCheck = saved, savedCheck }()
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
		r, w, err := os.Pipe()
		if err != nil {
			t.Fatal(err)
		}
		_, _ = w.Write([]byte(tc.conf))
		w.Close()
		os.Stdin = r
		startDel()
		r.Close()
		if _, _, started := HostVethDel(); started {
			t.Errorf("%s: host veth removal started", tc.name)
		}
		if p := TakeIPAM(); p != nil {
			t.Errorf("%s: IPAM started (%s)", tc.name, p.Path)
		}
		// skel still reads the configuration.
		if got, _ := io.ReadAll(os.Stdin); string(got) != tc.conf {
			t.Errorf("%s: replayed %q", tc.name, got)
		}
		os.Stdin.Close()
	}
}
