package config

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"strings"
)

// PortMapping is one validated entry of runtimeConfig.portMappings: traffic
// to the node's HostIP:HostPort goes to the container's ContainerPort.
type PortMapping struct {
	HostPort      uint16
	ContainerPort uint16
	Protocol      string // "tcp", "udp" or "sctp"
	// HostIP is the zero Addr for every local address of each family the
	// container has an address in. An unspecified address (0.0.0.0, ::)
	// is every local address of its own family only.
	HostIP netip.Addr
	// Family is 4 or 6 when the mapping applies to that family only, 0 for both.
	Family int
}

// Applies reports whether the mapping applies to the IPv4 (is4) or IPv6 family.
func (m PortMapping) Applies(is4 bool) bool {
	return m.Family == 0 || (m.Family == 4) == is4
}

// Wildcard reports whether the mapping is for every local address.
func (m PortMapping) Wildcard() bool { return !m.HostIP.IsValid() || m.HostIP.IsUnspecified() }

// String shows the mapping as "hostIP:hostPort to containerPort/proto" (no
// "->": CNI errors are JSON, which escapes ">").
func (m PortMapping) String() string {
	ip := "*"
	if m.HostIP.IsValid() {
		ip = m.HostIP.String()
	}
	return fmt.Sprintf("%s:%d to %d/%s", ip, m.HostPort, m.ContainerPort, m.Protocol)
}

// LoadPortMappings reads the port mappings a bridge entry publishes itself:
// runtimeConfig.portMappings, but only when the entry declares
// "capabilities": {"portMappings": true} (otherwise they are another
// plugin's, such as a chained portmap, and enabled is false). A request
// without any capabilities key but with runtimeConfig.portMappings is
// enabled too: the spec has the runtime remove capabilities from the
// request and insert runtimeConfig only for the capabilities the entry
// declares (libcni passes capabilities on, and inserts nothing for an
// entry without them). Every entry is validated; errors name it.
func LoadPortMappings(stdin []byte) (maps []PortMapping, enabled bool, err error) {
	var conf struct {
		Capabilities *struct {
			PortMappings bool `json:"portMappings"`
		} `json:"capabilities"`
		RuntimeConfig struct {
			PortMappings json.RawMessage `json:"portMappings"`
		} `json:"runtimeConfig"`
	}
	if err := json.Unmarshal(stdin, &conf); err != nil {
		return nil, false, decodeError("network configuration", err)
	}
	raw := conf.RuntimeConfig.PortMappings
	if string(raw) == "null" {
		raw = nil
	}
	if declared := conf.Capabilities != nil && conf.Capabilities.PortMappings; !declared &&
		(conf.Capabilities != nil || raw == nil) {
		return nil, false, nil
	}
	// Entry by entry, so that a value of the wrong type names its entry.
	var entries []json.RawMessage
	if raw != nil {
		if err := json.Unmarshal(raw, &entries); err != nil {
			return nil, true, Invalid("runtimeConfig.portMappings", "expected a list of port mappings, got JSON %s", jsonKindOf(raw))
		}
	}
	for i, rawEntry := range entries {
		key := fmt.Sprintf("runtimeConfig.portMappings[%d]", i)
		var e struct {
			HostPort      *int64 `json:"hostPort"`
			ContainerPort *int64 `json:"containerPort"`
			Protocol      string `json:"protocol"`
			HostIP        string `json:"hostIP"`
		}
		if err := json.Unmarshal(rawEntry, &e); err != nil {
			var te *json.UnmarshalTypeError
			if errors.As(err, &te) && te.Field != "" {
				return nil, true, Invalid(key+"."+te.Field, "expected %s, got JSON %s", te.Type, te.Value)
			}
			return nil, true, Invalid(key, "expected a port mapping, got JSON %s", jsonKindOf(rawEntry))
		}
		var m PortMapping
		for _, p := range []struct {
			name string
			v    *int64
			dst  *uint16
		}{{"hostPort", e.HostPort, &m.HostPort}, {"containerPort", e.ContainerPort, &m.ContainerPort}} {
			if p.v == nil {
				return nil, true, Invalid(key+"."+p.name, "missing")
			}
			if *p.v < 1 || *p.v > 65535 {
				return nil, true, Invalid(key+"."+p.name, "%d out of range 1-65535", *p.v)
			}
			*p.dst = uint16(*p.v)
		}
		m.Protocol = strings.ToLower(e.Protocol)
		switch m.Protocol {
		case "":
			m.Protocol = "tcp"
		case "tcp", "udp", "sctp":
		default:
			return nil, true, Invalid(key+".protocol", "%q: must be \"tcp\", \"udp\" or \"sctp\"", e.Protocol)
		}
		if e.HostIP != "" {
			a, err := netip.ParseAddr(e.HostIP)
			if err != nil || a.Zone() != "" {
				return nil, true, Invalid(key+".hostIP", "%q is not an IP address", e.HostIP)
			}
			a = a.Unmap()
			if a.IsMulticast() || a == netip.AddrFrom4([4]byte{255, 255, 255, 255}) {
				return nil, true, Invalid(key+".hostIP", "%s is not a unicast address", a)
			}
			if a == netip.IPv6Loopback() {
				return nil, true, Invalid(key+".hostIP", "::1 cannot be published: the kernel never lets a packet from or to ::1 leave the loopback interface (IPv6 has no route_localnet)")
			}
			m.HostIP, m.Family = a, 6
			if a.Is4() {
				m.Family = 4
			}
		}
		for j, o := range maps {
			// Entries that agree (the same container port, and the same
			// host address or both a wildcard: a repeated entry, hostIP
			// "" beside "0.0.0.0") are none: the bridge publishes each
			// mapping once. An address beside the wildcard is one.
			agree := o.ContainerPort == m.ContainerPort && o.Wildcard() == m.Wildcard() && (o.Wildcard() || o.HostIP == m.HostIP)
			if o.HostPort == m.HostPort && o.Protocol == m.Protocol && (o.Family == 0 || m.Family == 0 || o.Family == m.Family) &&
				(o.Wildcard() || m.Wildcard() || o.HostIP == m.HostIP) && !agree {
				return nil, true, Invalid(key, "host port %d/%s is already mapped by runtimeConfig.portMappings[%d]", m.HostPort, m.Protocol, j)
			}
		}
		maps = append(maps, m)
	}
	return maps, true, nil
}

// jsonKindOf names the kind of a JSON value as encoding/json's type errors
// do (jsonKind).
func jsonKindOf(raw json.RawMessage) string {
	tok, err := json.NewDecoder(bytes.NewReader(raw)).Token()
	if err != nil {
		return "value"
	}
	if d, ok := tok.(json.Delim); ok {
		if d == '[' {
			return "array"
		}
		return "object"
	}
	return jsonKind(tok)
}
