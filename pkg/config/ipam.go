package config

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/netip"
	"reflect"
	"slices"
	"strings"

	"github.com/containernetworking/cni/pkg/types"
	"github.com/containernetworking/cni/pkg/utils"
	"github.com/containernetworking/cni/pkg/version"

	"github.com/flatcni/plugins/pkg/ipam"
)

// IPAM is a validated host-local configuration.
type IPAM struct {
	Network    string // the network's name: the lease directory's name
	CNIVersion string
	Ranges     []ipam.RangeSet
	Routes     []*types.Route
	DataDir    string
	ResolvConf string
	Requested  []netip.Addr // from CNI_ARGS IP=, args.cni.ips, runtimeConfig.ips

	loc *ipam.Locator // of Ranges, built by LoadIPAM to check them for overlaps
}

// Locator returns the index of the range sets by address.
func (c *IPAM) Locator() *ipam.Locator {
	if c.loc == nil {
		c.loc = ipam.NewLocator(c.Ranges)
	}
	return c.loc
}

// jsonRange is a range as written in JSON; addresses stay strings so that
// errors can quote them.
type jsonRange struct {
	Subnet     string `json:"subnet"`
	RangeStart string `json:"rangeStart,omitempty"`
	RangeEnd   string `json:"rangeEnd,omitempty"`
	Gateway    string `json:"gateway,omitempty"`
}

type jsonIPAMNet struct {
	Name       string `json:"name"`
	CNIVersion string `json:"cniVersion"`
	IPAM       *struct {
		jsonRange
		Type       string            `json:"type"`
		Routes     []json.RawMessage `json:"routes"`
		DataDir    string            `json:"dataDir"`
		ResolvConf string            `json:"resolvConf"`
		Ranges     rangeSetList      `json:"ranges"`
	} `json:"ipam"`
	RuntimeConfig struct {
		IPRanges rangeSetList `json:"ipRanges,omitempty"`
		IPs      []string     `json:"ips,omitempty"`
	} `json:"runtimeConfig,omitempty"`
	Args *struct {
		CNI *struct {
			IPs []string `json:"ips"`
		} `json:"cni"`
	} `json:"args"`
}

// LoadIPAM parses a host-local configuration (the whole network configuration
// on stdin) and CNI_ARGS.
func LoadIPAM(stdin []byte, envArgs string) (*IPAM, error) {
	var n jsonIPAMNet
	if err := json.Unmarshal(stdin, &n); err != nil {
		return nil, decodeError("network configuration", err)
	}
	if n.IPAM == nil {
		return nil, Invalid("ipam", "missing")
	}
	if err := utils.ValidateNetworkName(n.Name); err != nil {
		return nil, Invalid("name", "%q: must be non-empty and contain only letters, digits, '_', '.' and '-', starting with a letter or digit", n.Name)
	}
	c := &IPAM{
		Network:    n.Name,
		CNIVersion: n.CNIVersion,
		DataDir:    n.IPAM.DataDir,
		ResolvConf: n.IPAM.ResolvConf,
	}
	// Routes are decoded one by one so that a bad address is a configuration
	// error naming the route, not a decoding failure of the whole document.
	for i, raw := range n.IPAM.Routes {
		key := fmt.Sprintf("ipam.routes[%d]", i)
		var r types.Route
		if err := json.Unmarshal(raw, &r); err != nil {
			return nil, Invalid(key, "%v", err)
		}
		if r.Dst.IP == nil {
			return nil, Invalid(key+".dst", "missing")
		}
		c.Routes = append(c.Routes, &r)
	}

	env, err := ParseEnvArgs(envArgs)
	if err != nil {
		return nil, err
	}
	c.Requested = append(c.Requested, env.IPs...)
	var ips []string
	if n.Args != nil && n.Args.CNI != nil {
		ips = append(ips, n.Args.CNI.IPs...)
	}
	ips = append(ips, n.RuntimeConfig.IPs...)
	for _, s := range ips {
		a, err := ParseAddrOrPrefix(s)
		if err != nil {
			return nil, Invalid("ips", "%q is not an IP address", s)
		}
		c.Requested = append(c.Requested, a)
	}

	// Where ranges come from, in the reference's order: runtime ipRanges
	// (capability "ipRanges"), then the legacy single range (ipam.subnet;
	// its rangeStart, rangeEnd and gateway are ignored without a subnet, as
	// by the reference), then ipam.ranges. The range sets are numbered in
	// that order (last_reserved_ip.N).
	type source struct {
		key  string
		list *rangeSetList
	}
	var sources []source
	if len(n.RuntimeConfig.IPRanges.sets) > 0 || n.RuntimeConfig.IPRanges.failed {
		sources = append(sources, source{"runtimeConfig.ipRanges", &n.RuntimeConfig.IPRanges})
	}
	if n.IPAM.Subnet != "" {
		legacy := &rangeSetList{}
		legacy.add([]jsonRange{n.IPAM.jsonRange})
		sources = append(sources, source{"ipam", legacy})
	}
	sources = append(sources, source{"ipam.ranges", &n.IPAM.Ranges})
	for _, src := range sources {
		if src.list.failed {
			// Parsed again, to name the set in the error.
			key := src.key
			if key != "ipam" {
				key = fmt.Sprintf("%s[%d]", src.key, len(src.list.sets))
			}
			_, err := parseRangeSet(key, src.list.bad)
			return nil, err
		}
	}
	total := 0
	for _, src := range sources {
		total += len(src.list.sets)
	}
	c.Ranges = make([]ipam.RangeSet, 0, total)
	counts := make([]int, len(sources))
	var v4, v6 int
	for k, src := range sources {
		for _, rs := range src.list.sets {
			if rs.Is4() {
				v4++
			} else {
				v6++
			}
			c.Ranges = append(c.Ranges, rs)
		}
		counts[k] = len(src.list.sets)
		src.list.sets = nil // c.Ranges holds them now
	}
	// The key of range set i in errors, built only for an error.
	keyOf := func(i int) string {
		for k, src := range sources {
			if i < counts[k] {
				if src.key == "ipam" {
					return "ipam"
				}
				return fmt.Sprintf("%s[%d]", src.key, i)
			}
			i -= counts[k]
		}
		return "ipam.ranges"
	}
	// Sorted, not pairwise: thousands of range sets are checked at once.
	if i, j, ok := c.Locator().Overlap(); ok {
		return nil, Invalid(keyOf(i), "range set %s overlaps range set %d (%s)", c.Ranges[i], j, c.Ranges[j])
	}
	if len(c.Ranges) == 0 {
		return nil, Invalid("ipam.ranges", "no IP ranges specified (set ipam.ranges or ipam.subnet)")
	}
	if v4 > 1 || v6 > 1 {
		if ok, _ := version.GreaterThanOrEqualTo(orDefault(c.CNIVersion), "0.3.0"); !ok {
			return nil, Invalid("cniVersion", "%s allows one address per family; use 0.3.0 or later for more range sets", c.CNIVersion)
		}
	}
	return c, nil
}

func orDefault(v string) string {
	if v == "" {
		return "0.1.0"
	}
	return v
}

func parseRangeSet(key string, set []jsonRange) (ipam.RangeSet, error) {
	if len(set) == 0 {
		return ipam.RangeSet{}, Invalid(key, "empty range set")
	}
	var rs ipam.RangeSet
	for j, jr := range set {
		// The range's key in errors, built only for an error: with
		// thousands of ranges it would be most of the garbage.
		rkey := func() string {
			if key == "ipam" {
				return "ipam"
			}
			return fmt.Sprintf("%s[%d]", key, j)
		}
		var r ipam.Range
		var err error
		if r.Subnet, err = netip.ParsePrefix(strings.TrimSpace(jr.Subnet)); err != nil {
			if jr.Subnet == "" {
				return ipam.RangeSet{}, Invalid(rkey()+".subnet", "missing")
			}
			return ipam.RangeSet{}, Invalid(rkey()+".subnet", "%q is not a CIDR", jr.Subnet)
		}
		for _, f := range []struct {
			name string
			text string
			dst  *netip.Addr
		}{{"rangeStart", jr.RangeStart, &r.Start}, {"rangeEnd", jr.RangeEnd, &r.End}, {"gateway", jr.Gateway, &r.Gateway}} {
			if f.text == "" {
				continue
			}
			if *f.dst, err = netip.ParseAddr(strings.TrimSpace(f.text)); err != nil {
				return ipam.RangeSet{}, Invalid(rkey()+"."+f.name, "%q is not an IP address", f.text)
			}
		}
		if err := r.Canonicalize(); err != nil {
			return ipam.RangeSet{}, Invalid(rkey(), "%v", err)
		}
		if err := rs.Add(r); err != nil {
			return ipam.RangeSet{}, Invalid(key, "%v", err)
		}
	}
	if err := rs.Check(); err != nil {
		return ipam.RangeSet{}, Invalid(key, "%v", err)
	}
	return rs, nil
}

// rangeSetList is a JSON list of range sets, parsed set by set as it is
// decoded: a configuration made of thousands of range sets is never held
// as JSON strings, nor as a whole list of them, besides its parsed form.
type rangeSetList struct {
	sets []ipam.RangeSet // parsed and canonicalized, in order
	// The first set that did not parse, kept as JSON to name it in the
	// error (LoadIPAM knows its key); the sets after it are not parsed.
	failed bool
	bad    []jsonRange
}

// UnmarshalJSON decodes and parses the sets one at a time. Only JSON type
// errors are returned here; a set that does not parse is kept in bad.
func (l *rangeSetList) UnmarshalJSON(b []byte) error {
	*l = rangeSetList{}
	dec := json.NewDecoder(bytes.NewReader(b))
	tok, err := dec.Token()
	if err != nil {
		return err
	}
	if tok == nil { // null
		return nil
	}
	if d, ok := tok.(json.Delim); !ok || d != '[' {
		return &json.UnmarshalTypeError{Value: jsonKind(tok), Type: reflect.TypeFor[[][]jsonRange](), Offset: dec.InputOffset()}
	}
	var set []jsonRange // reused: each set's JSON is garbage once parsed
	for dec.More() {
		clear(set[:cap(set)])
		set = set[:0]
		if err := dec.Decode(&set); err != nil {
			return err
		}
		l.add(set)
	}
	return nil
}

// add parses one more set (unless one has failed already).
func (l *rangeSetList) add(set []jsonRange) {
	if l.failed {
		return
	}
	rs, err := parseRangeSet("", set)
	if err != nil {
		l.failed, l.bad = true, slices.Clone(set)
		return
	}
	l.sets = append(l.sets, rs)
}

// jsonKind names a JSON token's kind as encoding/json's type errors do.
func jsonKind(tok json.Token) string {
	switch tok.(type) {
	case bool:
		return "bool"
	case float64, json.Number:
		return "number"
	case string:
		return "string"
	}
	return "object"
}

// Version returns the cniVersion of a configuration without parsing the rest.
func Version(stdin []byte) string {
	var v struct {
		CNIVersion string `json:"cniVersion"`
	}
	_ = json.NewDecoder(bytes.NewReader(stdin)).Decode(&v)
	return v.CNIVersion
}
