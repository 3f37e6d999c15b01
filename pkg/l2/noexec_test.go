package l2

import (
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"
)

// noExecNetnsEnv hands the child test process the namespace to work in.
const noExecNetnsEnv = "FLATCNI_L2_NOEXEC_NETNS"

// TestMacSpoofCheckStartsNoProcess runs the MAC spoof check functions (and
// those removing the reference plugin's checks) in a child test process
// with an empty PATH under a seccomp filter that refuses execve and
// execveat: any attempt to start a program (nft, ebtables, ...) would fail
// there and so fail the child.
func TestMacSpoofCheckStartsNoProcess(t *testing.T) {
	requireRoot(t)
	if auditArch() == 0 {
		t.Skipf("skipped: no seccomp audit arch known for %s", runtime.GOARCH)
	}
	node := newNetns(t, "noexec")
	cmd := exec.Command(os.Args[0], "-test.run=^TestMacSpoofNoExecChild$", "-test.v", "-test.count=1")
	cmd.Env = append(os.Environ(), noExecNetnsEnv+"="+node, "PATH=")
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "--- PASS: TestMacSpoofNoExecChild") {
		t.Fatalf("child process failed (%v):\n%s", err, out)
	}
	if got := listChecks(t, node, ""); len(got) != 0 {
		t.Errorf("child left MAC spoof checks behind: %+v", got)
	}
}

// TestMacSpoofNoExecChild is the child half of
// TestMacSpoofCheckStartsNoProcess; on its own it skips.
func TestMacSpoofNoExecChild(t *testing.T) {
	node := os.Getenv(noExecNetnsEnv)
	if node == "" {
		t.Skip("skipped: helper process of TestMacSpoofCheckStartsNoProcess")
	}
	if err := forbidExec(); err != nil {
		t.Fatalf("install seccomp filter: %v", err)
	}
	if err := exec.Command("/bin/true").Run(); !errors.Is(err, syscall.EPERM) {
		t.Fatalf("starting /bin/true under the filter: got %v, want EPERM", err)
	}
	mac := net.HardwareAddr{2, 0, 0, 0, 0, 9}
	err := inNetns(t, node, func() error {
		if err := SetupMacSpoofCheck("noexec", "cid", "eth0", "vethnoexec", mac); err != nil {
			return err
		}
		atts, err := MacSpoofChecks("noexec")
		if err != nil {
			return err
		}
		if len(atts) != 1 || atts[0].HostVeth != "vethnoexec" {
			t.Errorf("MacSpoofChecks = %+v, want the one just set up", atts)
		}
		if err := TeardownMacSpoofCheck("noexec", "cid", "eth0"); err != nil {
			return err
		}
		// The reference plugin's leftovers go without a process too.
		if err := SetupMacSpoofCheck("noexec", "cid", "eth0", "vethnoexec", mac); err != nil {
			return err
		}
		for _, id := range []string{"cid-eth0", "gone-eth0"} {
			if err := refSpoofAdd(id, "vethnoexec", mac); err != nil {
				return err
			}
		}
		if leftover, err := TeardownMacSpoofCheckWithReference("noexec", "cid", "eth0"); err != nil || leftover != nil {
			return fmt.Errorf("teardown with the reference's: %v, leftover %v", err, leftover)
		}
		if ids, err := RemoveDeadReferenceSpoofChecks(); err != nil || len(ids) != 1 {
			return fmt.Errorf("remove the reference's dead checks: removed %v, %v; want [gone-eth0]", ids, err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func auditArch() uint32 {
	switch runtime.GOARCH {
	case "amd64":
		return unix.AUDIT_ARCH_X86_64
	case "arm64":
		return unix.AUDIT_ARCH_AARCH64
	}
	return 0
}

// forbidExec makes execve and execveat fail with EPERM in every thread of
// this process, for good.
func forbidExec() error {
	const (
		ldW  = unix.BPF_LD | unix.BPF_W | unix.BPF_ABS
		jeq  = unix.BPF_JMP | unix.BPF_JEQ | unix.BPF_K
		ret  = unix.BPF_RET | unix.BPF_K
		arch = 4 // offsetof(struct seccomp_data, arch)
		nr   = 0 // offsetof(struct seccomp_data, nr)
	)
	filter := []unix.SockFilter{
		{Code: ldW, K: arch},
		{Code: jeq, Jt: 0, Jf: 3, K: auditArch()},
		{Code: ldW, K: nr},
		{Code: jeq, Jt: 2, Jf: 0, K: unix.SYS_EXECVE},
		{Code: jeq, Jt: 1, Jf: 0, K: unix.SYS_EXECVEAT},
		{Code: ret, K: unix.SECCOMP_RET_ALLOW},
		{Code: ret, K: unix.SECCOMP_RET_ERRNO | uint32(unix.EPERM)},
	}
	prog := unix.SockFprog{Len: uint16(len(filter)), Filter: &filter[0]}
	if err := unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); err != nil {
		return err
	}
	_, _, errno := unix.Syscall(unix.SYS_SECCOMP, unix.SECCOMP_SET_MODE_FILTER, unix.SECCOMP_FILTER_FLAG_TSYNC, uintptr(unsafe.Pointer(&prog)))
	runtime.KeepAlive(filter)
	if errno != 0 {
		return errno
	}
	return nil
}
