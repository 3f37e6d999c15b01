package config

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"reflect"
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
	if err := networkName(n.Name); err != nil {
		return nil, err
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

	// CONVENTIONS.md: with args.cni.ips, the equivalent CNI_ARGS field
	// (IP=) must be ignored; the other CNI_ARGS keys are still parsed.
	var ips []string
	if n.Args != nil && n.Args.CNI != nil {
		ips = append(ips, n.Args.CNI.IPs...)
	}
	if len(ips) > 0 {
		envArgs = withoutEnvArg(envArgs, "IP")
	}
	env, err := ParseEnvArgs(envArgs)
	if err != nil {
		return nil, err
	}
	c.Requested = append(c.Requested, env.IPs...)
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
	if len(n.RuntimeConfig.IPRanges.sets) > 0 || n.RuntimeConfig.IPRanges.failed != nil {
		sources = append(sources, source{"runtimeConfig.ipRanges", &n.RuntimeConfig.IPRanges})
	}
	if n.IPAM.Subnet != "" {
		var p rangeSetParser
		p.add(&n.IPAM.jsonRange)
		legacy := &rangeSetList{}
		legacy.done(&p)
		sources = append(sources, source{"ipam", legacy})
	}
	sources = append(sources, source{"ipam.ranges", &n.IPAM.Ranges})
	for _, src := range sources {
		if src.list.failed != nil {
			key := src.key
			if key != "ipam" {
				key = fmt.Sprintf("%s[%d]", src.key, len(src.list.sets))
			}
			return nil, src.list.failed(key)
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

// LoadIPAMForTeardown parses what host-local's DEL and GC need: the
// network's name (its lease directory's) and dataDir. Ranges, routes,
// requested addresses and CNI_ARGS are not looked at, so that the leases of
// an attachment can always be released, also under a configuration that
// ADD rejects (a range edited since, a typo): a DEL failing for that would
// be retried for ever.
func LoadIPAMForTeardown(stdin []byte) (*IPAM, error) {
	var n struct {
		Name       string `json:"name"`
		CNIVersion string `json:"cniVersion"`
		IPAM       struct {
			DataDir string `json:"dataDir"`
		} `json:"ipam"`
	}
	if err := json.Unmarshal(stdin, &n); err != nil {
		return nil, decodeError("network configuration", err)
	}
	if err := networkName(n.Name); err != nil {
		return nil, err
	}
	return &IPAM{Network: n.Name, CNIVersion: n.CNIVersion, DataDir: n.IPAM.DataDir}, nil
}

// networkName checks the network's name, which names its lease directory
// and lock files.
func networkName(name string) *types.Error {
	if err := utils.ValidateNetworkName(name); err != nil {
		return Invalid("name", "%q: must be non-empty and contain only letters, digits, '_', '.' and '-', starting with a letter or digit", name)
	}
	return nil
}

func orDefault(v string) string {
	if v == "" {
		return "0.1.0"
	}
	return v
}

// rangeSetParser parses a range set range by range, as its JSON is
// decoded: a set of hundreds of thousands of ranges is never held as JSON
// strings beside its parsed form.
type rangeSetParser struct {
	rs ipam.RangeSet
	// err is the first error, given the set's key ("ipam" for the legacy
	// single range, "ipam.ranges[3]", ...).
	err func(key string) error
}

// add parses one more range (unless one has failed already).
func (p *rangeSetParser) add(jr *jsonRange) {
	if p.err != nil {
		return
	}
	j := p.rs.Len() // every range before this one was added
	r, field, err := parseRange(jr)
	if err != nil {
		p.err = func(key string) error {
			if key != "ipam" {
				key = fmt.Sprintf("%s[%d]", key, j)
			}
			return Invalid(key+field, "%v", err)
		}
		return
	}
	if err := p.rs.Add(r); err != nil {
		p.err = func(key string) error { return Invalid(key, "%v", err) }
	}
}

// finish checks the whole set: not empty, no two ranges overlapping.
func (p *rangeSetParser) finish() (ipam.RangeSet, func(key string) error) {
	if p.err == nil {
		if err := p.rs.Check(); err != nil {
			p.err = func(key string) error { return Invalid(key, "%v", err) }
		}
	}
	return p.rs, p.err
}

// parseRange parses and canonicalizes one range; an error comes with the
// key of the field at fault under the range's (".subnet", or "" for the
// range as a whole).
func parseRange(jr *jsonRange) (ipam.Range, string, error) {
	var r ipam.Range
	var err error
	if r.Subnet, err = netip.ParsePrefix(strings.TrimSpace(jr.Subnet)); err != nil {
		if jr.Subnet == "" {
			return r, ".subnet", errors.New("missing")
		}
		return r, ".subnet", fmt.Errorf("%q is not a CIDR", jr.Subnet)
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
			return r, "." + f.name, fmt.Errorf("%q is not an IP address", f.text)
		}
	}
	if err := r.Canonicalize(); err != nil {
		return r, "", err
	}
	return r, "", nil
}

// rangeSetList is a JSON list of range sets, parsed range by range as it is
// decoded.
type rangeSetList struct {
	sets []ipam.RangeSet // parsed and canonicalized, in order
	// failed is the error of the first set that did not parse, given its
	// key (LoadIPAM knows it); the sets after it are decoded, not parsed.
	failed func(key string) error
}

// UnmarshalJSON decodes and parses the sets one range at a time. Only JSON
// type errors are returned here; a set that does not parse is in failed.
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
	var jr jsonRange // reused: each range's JSON is garbage once parsed
	for dec.More() {
		var p rangeSetParser
		tok, err := dec.Token()
		if err != nil {
			return err
		}
		if tok != nil { // a null set is an empty one
			if d, ok := tok.(json.Delim); !ok || d != '[' {
				return &json.UnmarshalTypeError{Value: jsonKind(tok), Type: reflect.TypeFor[[]jsonRange](), Offset: dec.InputOffset()}
			}
			for dec.More() {
				jr = jsonRange{}
				if err := dec.Decode(&jr); err != nil {
					return err
				}
				if l.failed == nil {
					p.add(&jr)
				}
			}
			if _, err := dec.Token(); err != nil { // ']'
				return err
			}
		}
		l.done(&p)
	}
	return nil
}

// done adds a parsed set (unless one has failed already).
func (l *rangeSetList) done(p *rangeSetParser) {
	if l.failed != nil {
		return
	}
	rs, err := p.finish()
	if err != nil {
		l.failed = err
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
