package config

// Values of the isolation key.
const (
	IsolationNone     = "none"
	IsolationIsolated = "isolated"
	IsolationStrict   = "strict"
)

// Isolation holds the keys that separate a bridge network from other
// networks and its containers from each other (docs/isolation.md). It is
// embedded in Bridge, so its keys sit at the top level of the configuration.
type Isolation struct {
	// IsolationMode is "none" (or absent), "isolated" or "strict".
	IsolationMode string `json:"isolation,omitempty"`
	// Internal keeps the network's traffic on its bridge: containers reach
	// each other and the gateway, nothing forwarded in or out.
	Internal bool `json:"internal,omitempty"`
	// ICC (inter-container communication) false stops containers on the
	// bridge from reaching each other; absent means true.
	ICC *bool `json:"icc,omitempty"`
}

// Isolates reports whether the network needs any isolation rules. Used by
// teardown too, so it does not depend on the keys being valid.
func (i Isolation) Isolates() bool {
	return (i.IsolationMode != "" && i.IsolationMode != IsolationNone) || i.Internal || i.NoICC()
}

// NoICC reports whether icc is false.
func (i Isolation) NoICC() bool { return i.ICC != nil && !*i.ICC }

// Mode returns the isolation mode with the default filled in.
func (i Isolation) Mode() string {
	if i.IsolationMode == "" {
		return IsolationNone
	}
	return i.IsolationMode
}

// validateIsolation checks the isolation keys and how they combine with the
// rest of the configuration.
func (b *Bridge) validateIsolation() error {
	switch b.Mode() {
	case IsolationNone, IsolationIsolated, IsolationStrict:
	default:
		return Invalid("isolation", "unknown value %q: must be %q, %q or %q", b.IsolationMode, IsolationNone, IsolationIsolated, IsolationStrict)
	}
	if b.Internal && b.IPMasq {
		return Invalid("internal", "cannot be combined with ipMasq: an internal network has no way out to masquerade")
	}
	if b.Internal && b.IsDefaultGW {
		return Invalid("internal", "cannot be combined with isDefaultGateway: an internal network has no default route")
	}
	if b.Isolates() && b.Vlan != 0 {
		return Invalid("vlan", "%d cannot be combined with isolation, internal or icc false: the network's gateway is then %s.%d, not the bridge the rules name", b.Vlan, b.BrName, b.Vlan)
	}
	return nil
}
