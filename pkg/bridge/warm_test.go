package bridge

import (
	"io"
	"os"
	"strings"
	"testing"

	"github.com/containernetworking/cni/pkg/version"
)

// warmResultPath only exercises code: it runs through for the 1.x CNI
// versions, skips the others, and writes nothing to stdout or stderr.
func TestWarmResultPathPrintsNothing(t *testing.T) {
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	stdout, stderr := os.Stdout, os.Stderr
	os.Stdout, os.Stderr = w, w
	defer func() { os.Stdout, os.Stderr = stdout, stderr }()
	for _, v := range append(version.All.SupportedVersions(), "9.9.9", "1.x") {
		want := strings.HasPrefix(v, "1.") && v != "1.x"
		if got := warmResultPath(v); got != want {
			t.Errorf("version %q: ran through %v, want %v", v, got, want)
		}
	}
	os.Stdout, os.Stderr = stdout, stderr
	w.Close()
	out, _ := io.ReadAll(r)
	if len(out) != 0 {
		t.Errorf("printed %q", out)
	}
}
