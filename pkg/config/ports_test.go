package config

import (
	"net/netip"
	"strings"
	"testing"
)

func TestLoadPortMappings(t *testing.T) {
	const withCap = `{"name":"n","type":"bridge","capabilities":{"portMappings":true},"runtimeConfig":{"portMappings":[%s]}}`
	conf := func(entries string) []byte { return []byte(strings.Replace(withCap, "%s", entries, 1)) }

	// With capabilities that do not declare portMappings, the mappings are
	// another plugin's (libcni passes an entry's capabilities on).
	for _, caps := range []string{`{}`, `{"portMappings":false}`, `{"ipRanges":true}`} {
		maps, enabled, err := LoadPortMappings([]byte(`{"name":"n","capabilities":` + caps + `,"runtimeConfig":{"portMappings":[{"hostPort":80,"containerPort":80,"protocol":"tcp"}]}}`))
		if err != nil || enabled || maps != nil {
			t.Errorf("capabilities %s: %v %t %v", caps, maps, enabled, err)
		}
	}
	// Without capabilities and runtimeConfig.portMappings, nothing.
	if maps, enabled, err := LoadPortMappings([]byte(`{"name":"n","runtimeConfig":{}}`)); err != nil || enabled || maps != nil {
		t.Errorf("neither: %v %t %v", maps, enabled, err)
	}
	// A runtime that follows the spec removes capabilities from the request
	// and inserts runtimeConfig.portMappings only for an entry declaring
	// the capability: the mappings are then ours.
	maps, enabled, err := LoadPortMappings([]byte(`{"name":"n","runtimeConfig":{"portMappings":[{"hostPort":80,"containerPort":80,"protocol":"tcp"}]}}`))
	if err != nil || !enabled || len(maps) != 1 {
		t.Errorf("capabilities removed by the runtime: %v %t %v", maps, enabled, err)
	}

	maps, enabled, err = LoadPortMappings(conf(`{"hostPort":8080,"containerPort":80},
		{"hostPort":53,"containerPort":53,"protocol":"UDP","hostIP":"192.0.2.1"},
		{"hostPort":53,"containerPort":53,"protocol":"udp","hostIP":"2001:db8::1"},
		{"hostPort":9,"containerPort":9,"protocol":"sctp","hostIP":"0.0.0.0"},
		{"hostPort":9,"containerPort":9,"protocol":"sctp","hostIP":"::"}`))
	if err != nil || !enabled {
		t.Fatalf("valid mappings: %v %t", err, enabled)
	}
	want := []PortMapping{
		{HostPort: 8080, ContainerPort: 80, Protocol: "tcp"},
		{HostPort: 53, ContainerPort: 53, Protocol: "udp", HostIP: netip.MustParseAddr("192.0.2.1"), Family: 4},
		{HostPort: 53, ContainerPort: 53, Protocol: "udp", HostIP: netip.MustParseAddr("2001:db8::1"), Family: 6},
		{HostPort: 9, ContainerPort: 9, Protocol: "sctp", HostIP: netip.IPv4Unspecified(), Family: 4},
		{HostPort: 9, ContainerPort: 9, Protocol: "sctp", HostIP: netip.IPv6Unspecified(), Family: 6},
	}
	if len(maps) != len(want) {
		t.Fatalf("got %v, want %v", maps, want)
	}
	for i := range want {
		if maps[i] != want[i] {
			t.Errorf("mapping %d: %+v, want %+v", i, maps[i], want[i])
		}
	}
	if !maps[3].Wildcard() || maps[3].Applies(false) || !maps[0].Applies(false) || !maps[0].Applies(true) {
		t.Errorf("Wildcard/Applies wrong for %v and %v", maps[3], maps[0])
	}

	for _, c := range []struct{ entries, want string }{
		{`{"hostPort":0,"containerPort":80}`, "runtimeConfig.portMappings[0].hostPort: 0 out of range"},
		{`{"hostPort":80,"containerPort":80},{"hostPort":81,"containerPort":65536}`, "runtimeConfig.portMappings[1].containerPort: 65536 out of range"},
		{`{"containerPort":80}`, "runtimeConfig.portMappings[0].hostPort: missing"},
		{`{"hostPort":80,"containerPort":80,"protocol":"icmp"}`, "runtimeConfig.portMappings[0].protocol"},
		{`{"hostPort":80,"containerPort":80,"hostIP":"nope"}`, "runtimeConfig.portMappings[0].hostIP"},
		{`{"hostPort":80,"containerPort":80,"hostIP":"fe80::1%eth0"}`, "runtimeConfig.portMappings[0].hostIP"},
		{`{"hostPort":80,"containerPort":80,"hostIP":"224.0.0.1"}`, "not a unicast address"},
		{`{"hostPort":80,"containerPort":80,"hostIP":"::1"}`, "::1 cannot be published"},
		{`{"hostPort":80,"containerPort":80},{"hostPort":80,"containerPort":81,"hostIP":"192.0.2.1"}`, "runtimeConfig.portMappings[1]: host port 80/tcp is already mapped by runtimeConfig.portMappings[0]"},
		{`{"hostPort":"80","containerPort":80}`, "hostPort"},
	} {
		_, _, err := LoadPortMappings(conf(c.entries))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want an error with %q", c.entries, err, c.want)
		}
	}
	// Same port on different families or protocols is no duplicate.
	if _, _, err := LoadPortMappings(conf(`{"hostPort":80,"containerPort":80,"hostIP":"192.0.2.1"},{"hostPort":80,"containerPort":80,"hostIP":"2001:db8::1"},{"hostPort":80,"containerPort":80,"protocol":"udp"}`)); err != nil {
		t.Errorf("distinct mappings rejected: %v", err)
	}
	// Entries that agree (the same container port, the same host address
	// or both a wildcard) are no conflict: a repeated entry, the wildcard
	// of every family and of one (Kubernetes tells hostIP "" from
	// "0.0.0.0", and the reference portmap accepts both). An address
	// beside the wildcard still is (the rules hold one mapping a port).
	for _, entries := range []string{
		`{"hostPort":80,"containerPort":80},{"hostPort":80,"containerPort":80}`,
		`{"hostPort":80,"containerPort":80},{"hostPort":80,"containerPort":80,"hostIP":"0.0.0.0"}`,
		`{"hostPort":80,"containerPort":80,"hostIP":"192.0.2.1"},{"hostPort":80,"containerPort":80,"hostIP":"192.0.2.1"}`,
	} {
		if _, _, err := LoadPortMappings(conf(entries)); err != nil {
			t.Errorf("%s: %v, want them accepted", entries, err)
		}
	}
	if _, _, err := LoadPortMappings(conf(`{"hostPort":80,"containerPort":80,"hostIP":"192.0.2.1"},{"hostPort":80,"containerPort":80,"hostIP":"0.0.0.0"}`)); err == nil || !strings.Contains(err.Error(), "already mapped") {
		t.Errorf("an address beside the wildcard: %v, want a conflict", err)
	}
}

// A value of the wrong JSON type names its entry, and the list that is no
// list says so.
func TestPortMappingsTypeErrorsNameTheEntry(t *testing.T) {
	for pm, want := range map[string]string{
		`[{"hostPort":81,"containerPort":80},{"hostPort":"8080","containerPort":80}]`: "runtimeConfig.portMappings[1].hostPort",
		`[{"hostPort":81,"containerPort":80,"protocol":17}]`:                          "runtimeConfig.portMappings[0].protocol",
		`[{"hostPort":81,"containerPort":80},7]`:                                      "runtimeConfig.portMappings[1]",
		`{"hostPort":80,"containerPort":80}`:                                          "runtimeConfig.portMappings: expected a list of port mappings, got JSON object",
	} {
		conf := `{"cniVersion":"1.1.0","name":"n","type":"bridge","capabilities":{"portMappings":true},"runtimeConfig":{"portMappings":` + pm + `}}`
		_, _, err := LoadPortMappings([]byte(conf))
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: %v, want an error naming %q", pm, err, want)
		}
	}
}
