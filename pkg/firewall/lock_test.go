package firewall

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// The lock directory and file are never followed through a symbolic link,
// a FIFO is refused without blocking, and errors name the path; in best
// effort mode (DEL, GC) the backend goes on without the lock.
func TestLockRefusesLinks(t *testing.T) {
	victim := t.TempDir()
	tests := []struct {
		name    string
		plant   func(t *testing.T, dir string) // dir: the lock directory
		culprit string
	}{
		{name: "directory a symlink", culprit: "lock directory",
			plant: func(t *testing.T, dir string) { must(t, os.Symlink(victim, dir)) }},
		{name: "directory a file", culprit: "lock directory",
			plant: func(t *testing.T, dir string) { must(t, os.WriteFile(dir, nil, 0o600)) }},
		{name: "lock file a symlink", culprit: "x.lock",
			plant: func(t *testing.T, dir string) {
				must(t, os.Mkdir(dir, 0o700))
				must(t, os.Symlink(filepath.Join(victim, "x.lock"), filepath.Join(dir, "x.lock")))
			}},
		{name: "lock file a FIFO", culprit: "x.lock",
			plant: func(t *testing.T, dir string) {
				must(t, os.Mkdir(dir, 0o700))
				must(t, syscall.Mkfifo(filepath.Join(dir, "x.lock"), 0o600))
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "flatcni")
			tt.plant(t, dir)
			done := make(chan struct{})
			go func() {
				defer close(done)
				if l, err := lockFile(dir, "x.lock"); err == nil || !strings.Contains(err.Error(), tt.culprit) || !strings.Contains(err.Error(), dir) {
					if l != nil {
						l.unlock()
					}
					t.Errorf("lockFile: %v, want an error naming %s", err, tt.culprit)
				}
				o := buildOptions([]Option{WithLockDir(dir), WithBestEffortLock()})
				l, err := o.lock("x.lock")
				if err != nil {
					t.Errorf("best effort lock: %v", err)
				} else {
					l.unlock()
				}
			}()
			select {
			case <-done:
			case <-time.After(20 * time.Second):
				t.Fatal("lockFile blocked")
			}
			if entries, _ := os.ReadDir(victim); len(entries) != 0 {
				t.Errorf("victim directory changed: %v", entries)
			}
		})
	}
	// A usable directory works, and LockNetworkForTeardown never fails.
	dir := filepath.Join(t.TempDir(), "flatcni")
	unlock, err := LockNetwork(dir, "n1")
	if err != nil {
		t.Fatal(err)
	}
	unlock()
	bad := filepath.Join(t.TempDir(), "link")
	must(t, os.Symlink(victim, bad))
	LockNetworkForTeardown(bad, "n1")()
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// A lock file removed while a caller waits on it (a clean-up of the
// directory): the waiter ends up holding the file the name holds now, so it
// is ordered with whoever opens the name later.
func TestLockSurvivesRemoval(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "locks")
	first, err := lockFile(dir, "x.lock")
	if err != nil {
		t.Fatal(err)
	}
	got := make(chan *fileLock)
	go func() {
		l, err := lockFile(dir, "x.lock")
		if err != nil {
			t.Error(err)
		}
		got <- l
	}()
	time.Sleep(100 * time.Millisecond) // the waiter opened the old file
	if err := os.Remove(filepath.Join(dir, "x.lock")); err != nil {
		t.Fatal(err)
	}
	first.unlock()
	second := <-got
	if second == nil {
		return
	}
	defer second.unlock()
	held, err := second.f.Stat()
	if err != nil {
		t.Fatal(err)
	}
	named, err := os.Stat(filepath.Join(dir, "x.lock"))
	if err != nil {
		t.Fatalf("the waiter did not make the lock file again: %v", err)
	}
	if !os.SameFile(held, named) {
		t.Error("the waiter holds the removed file, not the one at the name")
	}
}

// TestNetworkMarker: MarkNetwork makes the marker NetworkMarked sees and
// UnmarkNetwork takes it away (twice is no error); a symbolic link at the
// marker's name is neither followed by MarkNetwork nor by UnmarkNetwork.
func TestNetworkMarker(t *testing.T) {
	dir := t.TempDir()
	if NetworkMarked(dir, "n1") {
		t.Fatal("marked before MarkNetwork")
	}
	if err := MarkNetwork(dir, "n1"); err != nil {
		t.Fatal(err)
	}
	if !NetworkMarked(dir, "n1") || NetworkMarked(dir, "n2") {
		t.Fatalf("after MarkNetwork(n1): n1 %t, n2 %t", NetworkMarked(dir, "n1"), NetworkMarked(dir, "n2"))
	}
	for i := 0; i < 2; i++ {
		if err := UnmarkNetwork(dir, "n1"); err != nil {
			t.Fatal(err)
		}
	}
	if NetworkMarked(dir, "n1") {
		t.Fatal("marked after UnmarkNetwork")
	}
	target := filepath.Join(t.TempDir(), "target")
	if err := os.Symlink(target, filepath.Join(dir, "net-n3.rules")); err != nil {
		t.Fatal(err)
	}
	if err := MarkNetwork(dir, "n3"); err == nil {
		t.Error("MarkNetwork over a symbolic link succeeded")
	}
	if _, err := os.Lstat(target); !os.IsNotExist(err) {
		t.Errorf("the link's target was created (%v)", err)
	}
	if err := UnmarkNetwork(dir, "n3"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(filepath.Join(dir, "net-n3.rules")); !os.IsNotExist(err) {
		t.Errorf("the link is still there after UnmarkNetwork (%v)", err)
	}
	if err := UnmarkNetwork(filepath.Join(dir, "missing"), "n1"); err != nil {
		t.Errorf("UnmarkNetwork in a missing directory: %v", err)
	}
}

// TestMarkerForeignDirectory: the markers live in the lock directory and
// are refused in one owned by another user, as the locks are (README,
// Security: an existing directory must be ours).
func TestMarkerForeignDirectory(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to give the directory away")
	}
	dir := filepath.Join(t.TempDir(), "lockdir")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(dir, 4242, 4242); err != nil {
		t.Fatal(err)
	}
	if _, err := LockNetwork(dir, "n1"); err == nil {
		t.Fatal("LockNetwork took a lock in a directory owned by another user")
	}
	if err := MarkNetwork(dir, "n1"); err == nil {
		t.Error("MarkNetwork made a marker in a directory owned by another user")
	}
	if _, err := os.Lstat(filepath.Join(dir, "net-n1.rules")); !os.IsNotExist(err) {
		t.Errorf("marker there (%v)", err)
	}
}

// TestUsableIPTablesWithoutCommand: without the iptables command in PATH
// the iptables backend is not usable (STATUS), and the error names it.
func TestUsableIPTablesWithoutCommand(t *testing.T) {
	t.Setenv("PATH", t.TempDir())
	if err := Usable(IPTablesName); err == nil || !strings.Contains(err.Error(), "iptables") {
		t.Errorf("Usable(iptables) without the command: %v", err)
	}
}

// TestForgetNetwork: ForgetNetwork removes the network's marker and lock
// file only when unused says so under the lock, leaves other networks'
// files alone, and takes no lock (calls nothing) when neither file exists.
func TestForgetNetwork(t *testing.T) {
	dir := t.TempDir()
	exists := func(name string) bool { _, err := os.Lstat(filepath.Join(dir, name)); return err == nil }
	for _, n := range []string{"n1", "n2"} {
		must(t, MarkNetwork(dir, n))
		unlock, err := LockNetwork(dir, n)
		must(t, err)
		unlock()
	}
	must(t, ForgetNetwork(dir, "n1", func() (bool, error) { return false, nil }))
	if !exists("net-n1.lock") || !exists("net-n1.rules") {
		t.Fatal("files removed though the network is in use")
	}
	locked := false
	got := make(chan struct{})
	must(t, ForgetNetwork(dir, "n1", func() (bool, error) {
		// The lock is held: another taker waits.
		go func() {
			if unlock, err := LockNetwork(dir, "n1"); err == nil {
				unlock()
			}
			close(got)
		}()
		select {
		case <-got:
		case <-time.After(100 * time.Millisecond):
			locked = true
		}
		return true, nil
	}))
	if !locked {
		t.Error("unused was called without the network's lock held")
	}
	<-got
	if exists("net-n1.rules") || !exists("net-n2.lock") || !exists("net-n2.rules") {
		t.Errorf("after forgetting n1: n1 marker %t, n2 lock %t, n2 marker %t", exists("net-n1.rules"), exists("net-n2.lock"), exists("net-n2.rules"))
	}
	// The waiter above made the lock file again once it had the removed
	// one (lockFile); without a waiter it is gone.
	if !exists("net-n1.lock") {
		t.Error("the waiter locked the removed lock file")
	}
	must(t, ForgetNetwork(dir, "n1", func() (bool, error) { return true, nil }))
	if exists("net-n1.lock") {
		t.Error("lock file left")
	}
	must(t, ForgetNetwork(dir, "n1", func() (bool, error) { t.Error("called with nothing to forget"); return true, nil }))
	if exists("net-n1.lock") {
		t.Error("ForgetNetwork made a lock file")
	}
	// A network that publishes ports only has its port rules' stamp
	// lines alone: they go too.
	for _, n := range []string{"n1", "n2"} {
		must(t, os.WriteFile(filepath.Join(dir, portsStamps(n)), nil, 0o600))
	}
	must(t, ForgetNetwork(dir, "n1", func() (bool, error) { return true, nil }))
	if exists(portsStamps("n1")) || exists("net-n1.lock") || !exists(portsStamps("n2")) {
		t.Errorf("after forgetting n1: n1 port stamps %t, n1 lock %t, n2 port stamps %t", exists(portsStamps("n1")), exists("net-n1.lock"), exists(portsStamps("n2")))
	}
}
