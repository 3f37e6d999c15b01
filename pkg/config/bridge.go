package config

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strings"

	"github.com/containernetworking/cni/pkg/types"
	"github.com/containernetworking/cni/pkg/utils"
)

// DefaultBridge is the bridge name used when the configuration names none.
const DefaultBridge = "cni0"

// Bridge is a validated bridge network configuration.
type Bridge struct {
	types.PluginConf

	BrName                    string      `json:"bridge"`
	IsGW                      bool        `json:"isGateway"`
	IsDefaultGW               bool        `json:"isDefaultGateway"`
	ForceAddress              bool        `json:"forceAddress"`
	IPMasq                    bool        `json:"ipMasq"`
	IPMasqBackend             *string     `json:"ipMasqBackend,omitempty"`
	NonMasqueradeCIDRs        []string    `json:"nonMasqueradeCIDRs,omitempty"`
	MTU                       int         `json:"mtu"`
	HairpinMode               bool        `json:"hairpinMode"`
	PromiscMode               bool        `json:"promiscMode"`
	Vlan                      int         `json:"vlan"`
	VlanTrunk                 []VlanTrunk `json:"vlanTrunk,omitempty"`
	PreserveDefaultVlan       bool        `json:"preserveDefaultVlan"`
	MacSpoofChk               bool        `json:"macspoofchk,omitempty"`
	EnableDad                 bool        `json:"enabledad,omitempty"`
	DisableContainerInterface bool        `json:"disableContainerInterface,omitempty"`
	PortIsolation             bool        `json:"portIsolation,omitempty"`
	Isolation                             // isolation, internal, icc (isolation.go)

	Args *struct {
		CNI struct {
			MAC string   `json:"mac,omitempty"`
			IPs []string `json:"ips,omitempty"` // IPAM's; here to ignore CNI_ARGS IP= and to tell StaticIPs
		} `json:"cni,omitempty"`
	} `json:"args,omitempty"`
	RuntimeConfig struct {
		MAC string   `json:"mac,omitempty"`
		IPs []string `json:"ips,omitempty"` // IPAM's; here only to tell StaticIPs
	} `json:"runtimeConfig,omitempty"`
	// A GC's valid attachments under their CNI 1.1.0 name (gc.go): in
	// ValidAttachments when that key is not there.
	OldValidAttachments []types.GCAttachment `json:"cni.dev/attachments,omitempty"`

	// RulesUnknown is set by LoadBridgeForTeardown when a key that asks for
	// rules (ipMasq, isolation, internal, icc) could not be read: the
	// network may hold rules its live containers need.
	RulesUnknown bool `json:"-"`

	// Derived by LoadBridge.
	MAC net.HardwareAddr `json:"-"` // container MAC requested by CNI_ARGS, args or runtimeConfig
	// StaticIPs: the runtime asks for specific addresses (CNI_ARGS IP=,
	// args.cni.ips, runtimeConfig.ips), likely an earlier container's.
	StaticIPs  bool           `json:"-"`
	NonMasq    []netip.Prefix `json:"-"`
	TrunkVlans []int          `json:"-"`
}

// IsLayer3 reports whether the network gets addresses from an IPAM plugin.
func (b *Bridge) IsLayer3() bool { return b.IPAM.Type != "" }

// NeedsVlanFiltering reports whether the bridge must filter VLANs.
func (b *Bridge) NeedsVlanFiltering() bool { return NeedsVlanFiltering(b.Vlan, b.VlanTrunk) }

// MasqBackend returns the configured masquerade backend name ("" = default).
func (b *Bridge) MasqBackend() string {
	if b.IPMasqBackend == nil {
		return ""
	}
	return *b.IPMasqBackend
}

// LoadBridge parses and fully validates a bridge configuration and CNI_ARGS
// (ADD, CHECK, STATUS). Nothing on the node is looked at or changed.
func LoadBridge(stdin []byte, envArgs string) (*Bridge, error) {
	b, err := decodeBridge(stdin, false)
	if err != nil {
		return nil, err
	}
	if err := b.validate(envArgs); err != nil {
		return nil, err
	}
	return b, nil
}

// LoadBridgeForTeardown parses a configuration for DEL and GC. Only the
// network's name must be valid (it leads to files), so that a runtime can
// always remove what an ADD of the same configuration left, even when ADD
// rejected it. A bridge name that is no valid interface name comes back as
// "" (no link of that name can exist: nothing of the bridge's to remove;
// the reason is written to stderr), an unknown ipMasqBackend as none (the
// rules of the ADDs, made under another value, are looked for with every
// backend); ipam.type is not checked (see IPAMPluginName).
func LoadBridgeForTeardown(stdin []byte) (*Bridge, error) {
	return decodeBridge(stdin, true)
}

// IPAMPluginName checks that ipam.type is a plugin's name, not a path.
// ADD refuses it; a teardown finds no plugin of that name (it is checked
// before the plugin is looked for).
func (b *Bridge) IPAMPluginName() *types.Error {
	if strings.ContainsAny(b.IPAM.Type, "/\x00") || b.IPAM.Type == "." || b.IPAM.Type == ".." {
		return Invalid("ipam.type", "%q is not a plugin name", b.IPAM.Type)
	}
	return nil
}

// HasBridge reports whether the configuration names a bridge; only a
// teardown's configuration (LoadBridgeForTeardown) may not.
func (b *Bridge) HasBridge() bool { return b.BrName != "" }

// MasqBackendValid reports whether ipMasqBackend names a known backend.
func (b *Bridge) MasqBackendValid() bool {
	name := b.MasqBackend()
	return name == "" || name == "iptables" || name == "nftables"
}

// decodeBridge decodes a bridge configuration and checks the names that
// lead to links, files and plugins; for a teardown, a bad bridge name is
// dropped instead (see LoadBridgeForTeardown).
func decodeBridge(stdin []byte, teardown bool) (*Bridge, error) {
	b := &Bridge{BrName: DefaultBridge}
	if err := json.Unmarshal(stdin, b); err != nil {
		var te *json.UnmarshalTypeError
		if !teardown || !errors.As(err, &te) {
			return nil, decodeError("network configuration", err)
		}
		// A key of the wrong type (edited since the ADDs, or in a
		// configuration ADD rejected): json decoded the others. Those a
		// teardown cannot do without must be right.
		if err := b.teardownKeys(stdin); err != nil {
			return nil, err
		}
		fmt.Fprintf(os.Stderr, "network %q: %s: ignored by DEL and GC\n", b.Name, decodeError("network configuration", err).Msg)
	}
	if err := networkName(b.Name); err != nil {
		return nil, err
	}
	if err := utils.ValidateInterfaceName(b.BrName); err != nil && (!teardown || b.BrName != "") {
		bad := Invalid("bridge", "%q is not a valid interface name: %s", b.BrName, err.Msg)
		if !teardown {
			return nil, bad
		}
		fmt.Fprintf(os.Stderr, "network %q: %s: nothing of it to remove\n", b.Name, bad.Msg)
		b.BrName = ""
	}
	if teardown && !b.MasqBackendValid() {
		// Edited since the ADDs (ADD rejects it): their rules and ports
		// are looked for with every backend, as without the key.
		fmt.Fprintf(os.Stderr, "network %q: ipMasqBackend: unknown backend %q: looking in every backend\n", b.Name, b.MasqBackend())
		b.IPMasqBackend = nil
	}
	if b.IsLayer3() && !teardown {
		if err := b.IPAMPluginName(); err != nil {
			return nil, err
		}
	}
	if b.IsDefaultGW {
		b.IsGW = true
	}
	if b.ValidAttachments == nil {
		b.ValidAttachments = b.OldValidAttachments
	}
	return b, nil
}

// teardownKeys checks, for a configuration with a key of the wrong type,
// the keys DEL and GC cannot do without: the network's name (its files),
// GC's valid attachments (read as none, every attachment would go) and
// ipam.type; and the bridge's name (read as the default, another bridge
// would be looked at: the name is dropped instead, as one no link can
// have). A key that asks for rules (ipMasq, the isolation keys) of the
// wrong type makes RulesUnknown: read as not asked, the network's rules
// would go under live containers; the teardown keeps them instead until
// no container of the network is left, as for a network that asks.
func (b *Bridge) teardownKeys(stdin []byte) error {
	var keys struct {
		Name   string               `json:"name"`
		Valid  []types.GCAttachment `json:"cni.dev/valid-attachments"`
		Old    []types.GCAttachment `json:"cni.dev/attachments"`
		Bridge json.RawMessage      `json:"bridge"`
		IPAM   struct {
			Type string `json:"type"`
		} `json:"ipam"`
		// Checked one by one below.
		IPMasq    json.RawMessage `json:"ipMasq"`
		Isolation json.RawMessage `json:"isolation"`
		Internal  json.RawMessage `json:"internal"`
		ICC       json.RawMessage `json:"icc"`
	}
	if err := json.Unmarshal(stdin, &keys); err != nil {
		return decodeError("network configuration", err)
	}
	if len(keys.Bridge) > 0 {
		var name string
		if err := json.Unmarshal(keys.Bridge, &name); err != nil {
			fmt.Fprintf(os.Stderr, "network %q: bridge: not a string: nothing of it to remove\n", b.Name)
			b.BrName = ""
		}
	}
	var flag bool
	var mode string
	for _, k := range []struct {
		name string
		raw  json.RawMessage
		into any
	}{{"ipMasq", keys.IPMasq, &flag}, {"isolation", keys.Isolation, &mode}, {"internal", keys.Internal, &flag}, {"icc", keys.ICC, &flag}} {
		if len(k.raw) > 0 && json.Unmarshal(k.raw, k.into) != nil {
			fmt.Fprintf(os.Stderr, "network %q: %s: not understood: the network's rules stay until no container of it is left\n", b.Name, k.name)
			b.RulesUnknown = true
		}
	}
	return nil
}

// validate checks what only ADD (and CHECK) need, and derives MAC, NonMasq
// and TrunkVlans.
func (b *Bridge) validate(envArgs string) error {
	if b.MTU != 0 && (b.MTU < 68 || b.MTU > 65535) {
		return Invalid("mtu", "%d out of range 68-65535", b.MTU)
	}
	if b.HairpinMode && b.PromiscMode {
		return Invalid("hairpinMode", "cannot be combined with promiscMode")
	}
	if b.IsLayer3() && b.DisableContainerInterface {
		return Invalid("disableContainerInterface", "cannot be used with IPAM (ipam.type %q): an interface that stays down cannot carry addresses", b.IPAM.Type)
	}
	// An explicit "" is not the default backend: the reference rejects it too.
	if !b.MasqBackendValid() || (b.IPMasqBackend != nil && *b.IPMasqBackend == "") {
		return Invalid("ipMasqBackend", "unknown backend %q: must be \"iptables\" or \"nftables\"", b.MasqBackend())
	}
	for i, s := range b.NonMasqueradeCIDRs {
		p, err := netip.ParsePrefix(strings.TrimSpace(s))
		if err != nil {
			return Invalid(fmt.Sprintf("nonMasqueradeCIDRs[%d]", i), "%q is not a CIDR", s)
		}
		b.NonMasq = append(b.NonMasq, p.Masked())
	}
	if err := b.validateIsolation(); err != nil {
		return err
	}
	vlans, err := VlanIDs(b.Vlan, b.VlanTrunk)
	if err != nil {
		// The message starts with its key: vlan or vlanTrunk[i].
		return types.NewError(types.ErrInvalidNetworkConfig, err.Error(), "")
	}
	b.TrunkVlans = vlans

	// IP= is IPAM's (host-local reads it, also in-process): the bridge
	// reads MAC= only, as the reference, and an IP= it would refuse may
	// be another IPAM plugin's. CONVENTIONS.md: a CNI_ARGS field whose
	// equivalent args carries is ignored (not even parsed).
	b.StaticIPs = hasEnvArg(envArgs, "IP") || len(b.RuntimeConfig.IPs) > 0 || b.Args != nil && len(b.Args.CNI.IPs) > 0
	envArgs = withoutEnvArg(envArgs, "IP")
	if argsMAC(b) != "" {
		envArgs = withoutEnvArg(envArgs, "MAC")
	}
	env, err := ParseEnvArgs(envArgs)
	if err != nil {
		return err
	}
	// Precedence as the reference: CNI_ARGS, then args.cni.mac, then runtimeConfig.mac.
	// A bad MAC in CNI_ARGS is an invalid environment variable (code 4), as
	// a bad IP= there; in the configuration, an invalid one (7).
	for _, m := range []struct {
		key, val string
		code     uint
	}{
		{"CNI_ARGS MAC", env.MAC, types.ErrInvalidEnvironmentVariables},
		{"args.cni.mac", argsMAC(b), types.ErrInvalidNetworkConfig},
		{"runtimeConfig.mac", b.RuntimeConfig.MAC, types.ErrInvalidNetworkConfig},
	} {
		if m.val == "" {
			continue
		}
		bad := func(format string) error {
			return types.NewError(m.code, m.key+": "+fmt.Sprintf(format, m.val), "")
		}
		mac, err := net.ParseMAC(m.val)
		if err != nil || len(mac) != 6 {
			return bad("%q is not an Ethernet MAC address")
		}
		if mac[0]&1 == 1 {
			return bad("%s is a multicast address")
		}
		if bytes.Equal(mac, make(net.HardwareAddr, 6)) {
			return bad("%s is the all-zero address, which no interface can have")
		}
		b.MAC = mac
	}
	return nil
}

func argsMAC(b *Bridge) string {
	if b.Args == nil {
		return ""
	}
	return b.Args.CNI.MAC
}
