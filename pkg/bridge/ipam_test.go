package bridge

import (
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/containernetworking/cni/pkg/types"

	"github.com/flatcni/plugins/pkg/config"
)

// copyFile copies src to dst, executable.
func copyFile(t *testing.T, src, dst string) {
	t.Helper()
	b, err := os.ReadFile(src)
	if err == nil {
		err = os.WriteFile(dst, b, 0o755)
	}
	if err != nil {
		t.Fatal(err)
	}
}

// The test binary stands for this program: a link or copy of it is the same
// program, another Go binary or a script is not.
func TestSameProgram(t *testing.T) {
	dir := t.TempDir()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	if !sameProgram(self) {
		t.Fatal("the running binary is not itself")
	}
	if goBuildID(self) == nil {
		t.Fatal("no Go build ID in the test binary")
	}
	cp := filepath.Join(dir, "copy")
	copyFile(t, self, cp)
	if !sameProgram(cp) {
		t.Error("a copy of the running binary is not the same program")
	}
	// Same size, another build ID: not the same program.
	b, err := os.ReadFile(cp)
	if err != nil {
		t.Fatal(err)
	}
	id := goBuildID(cp)
	i := strings.Index(string(b), string(id))
	if i < 0 {
		t.Fatal("build ID not found in the file")
	}
	b[i] ^= 1
	other := filepath.Join(dir, "other")
	if err := os.WriteFile(other, b, 0o755); err != nil {
		t.Fatal(err)
	}
	if sameProgram(other) {
		t.Error("a binary with another build ID is the same program")
	}
	script := filepath.Join(dir, "script")
	if err := os.WriteFile(script, []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	if sameProgram(script) || sameProgram(filepath.Join(dir, "missing")) {
		t.Error("a script or a missing file is the same program")
	}
}

func TestParseGoNote(t *testing.T) {
	note := func(name string, typ uint32, desc string) []byte {
		var b []byte
		b = binary.LittleEndian.AppendUint32(b, uint32(len(name)+1))
		b = binary.LittleEndian.AppendUint32(b, uint32(len(desc)))
		b = binary.LittleEndian.AppendUint32(b, typ)
		b = append(b, name+"\x00"...)
		for len(b)%4 != 0 {
			b = append(b, 0)
		}
		return append(b, desc...)
	}
	if got := parseGoNote(note("Go", 4, "abc/def"), binary.LittleEndian); string(got) != "abc/def" {
		t.Errorf("Go note: %q", got)
	}
	for _, b := range [][]byte{note("GNU", 4, "x"), note("Go", 3, "x"), note("Go", 4, "abc")[:18], nil} {
		if got := parseGoNote(b, binary.LittleEndian); got != nil {
			t.Errorf("parseGoNote(%q) = %q, want nil", b, got)
		}
	}
}

// NodeIPAM runs host-local in-process when CNI_PATH's host-local is this
// program, refuses this program under another name (a loop), and executes
// anything else.
func TestNodeIPAMPlugin(t *testing.T) {
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	copyFile(t, self, filepath.Join(dir, "host-local"))
	copyFile(t, self, filepath.Join(dir, "bridge"))
	if err := os.WriteFile(filepath.Join(dir, "dhcp"), []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	plugin := func(typ string) (IPAMPlugin, error) {
		c := &config.Bridge{}
		c.IPAM.Type = typ
		return NodeIPAM{}.Plugin(c, "/nonexistent:"+dir)
	}
	if p, err := plugin("host-local"); err != nil {
		t.Errorf("host-local: %v", err)
	} else if _, ok := p.(inProcessHostLocal); !ok {
		t.Errorf("host-local: %T, want in-process", p)
	}
	if p, err := plugin("dhcp"); err != nil {
		t.Errorf("dhcp: %v", err)
	} else if e, ok := p.(execIPAM); !ok || e.name != "dhcp" {
		t.Errorf("dhcp: %#v, want executed", p)
	}
	for _, typ := range []string{"bridge", "missing"} {
		_, err := plugin(typ)
		var te *types.Error
		if !errors.As(err, &te) || te.Code != types.ErrInvalidNetworkConfig || !strings.Contains(te.Msg, "ipam.type") || !strings.Contains(te.Msg, `"`+typ+`"`) {
			t.Errorf("%s: %v, want a configuration error naming ipam.type and the plugin", typ, err)
		}
		if typ == "bridge" && (te == nil || !strings.Contains(te.Msg, "loop")) {
			t.Errorf("bridge: %v, want a loop", err)
		}
	}
}

func TestInProcess(t *testing.T) {
	var te *types.Error
	err := inProcess(func() error { panic("bad lease file") })
	if !errors.As(err, &te) || te.Code != types.ErrInternal || !strings.Contains(te.Msg, "bad lease file") {
		t.Errorf("panic: %v", err)
	}
	err = inProcess(func() error { return errors.New("disk full") })
	if !errors.As(err, &te) || te.Code != types.ErrInternal || te.Msg != "disk full" {
		t.Errorf("plain error: %v", err)
	}
	err = inProcess(func() error { return types.NewError(types.ErrTryAgainLater, "busy", "") })
	if !errors.As(err, &te) || te.Code != types.ErrTryAgainLater {
		t.Errorf("CNI error: %v", err)
	}
	if err := inProcess(func() error { return nil }); err != nil {
		t.Errorf("no error: %v", err)
	}
}
