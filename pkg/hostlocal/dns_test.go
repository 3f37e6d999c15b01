package hostlocal

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

func TestParseResolvConf(t *testing.T) {
	tests := []struct {
		name, content, want string
	}{
		{name: "empty", want: "ns=[] domain= search=[] options=[]"},
		{name: "full",
			content: "# generated\n; also a comment\nnameserver 10.0.0.53\n  nameserver   fd00::53  \ndomain example.test\nsearch a.test b.test\noptions ndots:2 edns0\n",
			want:    "ns=[10.0.0.53 fd00::53] domain=example.test search=[a.test b.test] options=[ndots:2 edns0]"},
		{name: "lines without a value and unknown keys skipped",
			content: "nameserver\nsortlist 10.0.0.0/8\ndomain\nnameserver 1.1.1.1",
			want:    "ns=[1.1.1.1] domain= search=[] options=[]"},
		{name: "last domain wins, search accumulates",
			content: "domain a.test\ndomain b.test\nsearch x.test\nsearch y.test",
			want:    "ns=[] domain=b.test search=[x.test y.test] options=[]"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "resolv.conf")
			if err := os.WriteFile(path, []byte(tt.content), 0o644); err != nil {
				t.Fatal(err)
			}
			dns, err := ParseResolvConf(path)
			if err != nil {
				t.Fatal(err)
			}
			got := fmt.Sprintf("ns=%v domain=%s search=%v options=%v", dns.Nameservers, dns.Domain, dns.Search, dns.Options)
			if got != tt.want {
				t.Fatalf("got  %s\nwant %s", got, tt.want)
			}
		})
	}
	if _, err := ParseResolvConf(filepath.Join(t.TempDir(), "missing")); err == nil {
		t.Fatal("missing file: no error")
	}
}
