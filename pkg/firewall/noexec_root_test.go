package firewall

import (
	"errors"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Environment of the child process of TestNFTablesStartsNoProcess.
const (
	noExecNSEnv   = "FLATCNI_FW_NOEXEC_NS"
	noExecLockEnv = "FLATCNI_FW_NOEXEC_LOCKDIR"
)

// forbidExec installs a seccomp filter, on every thread of the process,
// making execve and execveat fail with EPERM.
func forbidExec() error {
	const (
		seccompSetModeFilter = 1
		seccompFilterTSync   = 1
		retAllow             = 0x7fff0000
		retErrno             = 0x00050000
	)
	filter := []unix.SockFilter{
		{Code: unix.BPF_LD | unix.BPF_W | unix.BPF_ABS, K: 0}, // seccomp_data.nr
		{Code: unix.BPF_JMP | unix.BPF_JEQ | unix.BPF_K, Jt: 2, K: unix.SYS_EXECVE},
		{Code: unix.BPF_JMP | unix.BPF_JEQ | unix.BPF_K, Jt: 1, K: unix.SYS_EXECVEAT},
		{Code: unix.BPF_RET | unix.BPF_K, K: retAllow},
		{Code: unix.BPF_RET | unix.BPF_K, K: retErrno | uint32(unix.EPERM)},
	}
	prog := unix.SockFprog{Len: uint16(len(filter)), Filter: &filter[0]}
	if err := unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); err != nil {
		return err
	}
	if _, _, errno := unix.Syscall(unix.SYS_SECCOMP, seccompSetModeFilter, seccompFilterTSync, uintptr(unsafe.Pointer(&prog))); errno != 0 {
		return errno
	}
	return nil
}

// TestNFTablesStartsNoProcess proves the nftables backend spawns nothing:
// every operation runs in a child process in which execve is forbidden.
func TestNFTablesStartsNoProcess(t *testing.T) {
	requireRoot(t)
	if nsName := os.Getenv(noExecNSEnv); nsName != "" {
		noExecChild(t, nsName)
		return
	}
	n := newTestNS(t, "noexec")
	prepareForward(t, n)
	cmd := exec.Command(os.Args[0], "-test.run=^TestNFTablesStartsNoProcess$", "-test.v", "-test.count=1")
	cmd.Env = append(os.Environ(), noExecNSEnv+"="+n.name, noExecLockEnv+"="+t.TempDir())
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "exec forbidden as expected") {
		t.Fatalf("child failed: %v\n%s", err, out)
	}
	rs := n.ruleset(t)
	if !strings.Contains(rs, "table inet flatcni-survivor") || strings.Contains(rs, "flatcni-noexec") {
		t.Errorf("ruleset after the child ran:\n%s", rs)
	}
}

func noExecChild(t *testing.T, nsName string) {
	if err := forbidExec(); err != nil {
		t.Fatalf("install seccomp filter: %v", err)
	}
	if err := exec.Command("/bin/true").Run(); !errors.Is(err, unix.EPERM) {
		t.Fatalf("exec not forbidden: %v", err)
	}
	t.Log("exec forbidden as expected")
	os.Setenv("PATH", "")
	n := &testNS{name: nsName}
	var err error
	if n.ns, err = nsGet(nsName); err != nil {
		t.Fatal(err)
	}
	b, err := New(NFTablesName, WithLockDir(os.Getenv(noExecLockEnv)))
	if err != nil {
		t.Fatal(err)
	}
	err = n.do(t, func() error {
		for _, name := range []string{"noexec", "survivor"} {
			if err := b.Ensure(testNetwork(name, "br0", "10.1.0.0/24", "fd01::/64")); err != nil {
				return err
			}
		}
		names, err := b.Networks()
		if err != nil {
			return err
		}
		if !slices.Equal(names, []string{"noexec", "survivor"}) {
			return errors.New("Networks = " + strings.Join(names, ","))
		}
		if err := b.RemoveLegacy("noexec", nil); err != nil {
			return err
		}
		return b.Remove("noexec")
	})
	if err != nil {
		t.Fatal(err)
	}
}
