package bridge

import (
	"io"
	"os"
	"testing"

	"github.com/containernetworking/cni/pkg/version"
)

// warmResultPath only exercises code: it runs through for the 1.x CNI
// versions, skips the others, and prints nothing.
func TestWarmResultPathPrintsNothing(t *testing.T) {
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout := os.Stdout
	os.Stdout = w
	defer func() { os.Stdout = stdout }()
	for _, v := range append(version.All.SupportedVersions(), "9.9.9", "1.x") {
		want := v == "1.0.0" || v == "1.1.0"
		if got := warmResultPath(v); got != want {
			t.Errorf("version %q: ran through %v, want %v", v, got, want)
		}
	}
	os.Stdout = stdout
	w.Close()
	out, _ := io.ReadAll(r)
	if len(out) != 0 {
		t.Errorf("printed %q", out)
	}
}
