package config

import (
	"fmt"
	"testing"
)

// TestValidAttachments: the list is read from cni.dev/valid-attachments,
// else from cni.dev/attachments (CNI 1.1.0's text); neither key is no list
// (nil), an empty one an empty list; a list of the wrong type is an error.
func TestValidAttachments(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{`{"cni.dev/valid-attachments":[{"containerID":"a","ifname":"eth0"}]}`, "[{a eth0}]"},
		{`{"cni.dev/attachments":[{"containerID":"b","ifname":"eth0"}]}`, "[{b eth0}]"},
		{`{"cni.dev/valid-attachments":[{"containerID":"a","ifname":"eth0"}],"cni.dev/attachments":[{"containerID":"b","ifname":"eth0"}]}`, "[{a eth0}]"},
		{`{"cni.dev/valid-attachments":[],"cni.dev/attachments":[{"containerID":"b","ifname":"eth0"}]}`, "[]"},
		{`{"name":"n"}`, "nil"},
	} {
		got, err := ValidAttachments([]byte(tc.in))
		s := fmt.Sprint(got)
		if got == nil {
			s = "nil"
		}
		if err != nil || s != tc.want {
			t.Errorf("ValidAttachments(%s) = %s, %v; want %s", tc.in, s, err, tc.want)
		}
	}
	if _, err := ValidAttachments([]byte(`{"cni.dev/attachments":"all"}`)); err == nil {
		t.Error("a list of the wrong type: no error")
	}
}
