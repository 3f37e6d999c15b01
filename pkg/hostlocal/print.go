package hostlocal

import (
	"bufio"
	"bytes"
	"encoding/json"
	"io"
	"os"

	"github.com/containernetworking/cni/pkg/types"
	types040 "github.com/containernetworking/cni/pkg/types/040"
	current "github.com/containernetworking/cni/pkg/types/100"
)

// PrintResult writes a result as its PrintTo does, byte for byte, but
// address by address and route by route: PrintTo builds the whole document
// (for 1.x results three times: as a struct's JSON, as a generic map of it,
// as the map's JSON) before indenting it, which with one address per range
// set and thousands of sets, or thousands of routes, is several times the
// configuration's size. Results of other types are printed by their
// PrintTo.
func PrintResult(w io.Writer, r types.Result) error {
	var ips, routes []json.Marshaler
	var rest types.Result
	var canonical bool // elements go through a generic map, as the 1.x MarshalJSON does
	var after []string // top-level keys that follow "ips" and "routes", the first present wins
	switch r := r.(type) {
	case *current.Result:
		c := *r
		ips, routes = marshalers(c.IPs), marshalers(c.Routes)
		c.IPs, c.Routes = nil, nil
		rest, canonical = &c, true
		// keys sorted: "ips" and "routes" come last
	case *types040.Result:
		c := *r
		ips, routes = marshalers(c.IPs), marshalers(c.Routes)
		c.IPs, c.Routes = nil, nil
		rest = &c
		after = []string{"dns"} // the struct's field order
	default:
		return r.PrintTo(w)
	}
	if len(ips)+len(routes) == 0 {
		return r.PrintTo(w)
	}
	var head bytes.Buffer
	if err := rest.PrintTo(&head); err != nil {
		return err
	}
	doc := head.Bytes()
	// Where the arrays go: before the first following top-level key present
	// (a line indented once; deeper lines are indented more), else last.
	at, before := -1, false
	for _, k := range after {
		if i := bytes.Index(doc, []byte("\n    \""+k+"\": ")); i >= 0 {
			at, before = i, true
			break
		}
	}
	if at < 0 {
		at = bytes.LastIndex(doc, []byte("\n}"))
		if at < 0 {
			return r.PrintTo(w)
		}
	}
	bw := bufio.NewWriter(w)
	bw.Write(doc[:at])
	if !before {
		bw.WriteString(",")
	}
	first := true
	for _, arr := range []struct {
		key   string
		elems []json.Marshaler
	}{{"ips", ips}, {"routes", routes}} {
		if len(arr.elems) == 0 {
			continue
		}
		if !first {
			bw.WriteString(",")
		}
		first = false
		if err := writeArray(bw, arr.key, arr.elems, canonical); err != nil {
			return err
		}
	}
	if before {
		bw.WriteString(",")
	}
	bw.Write(doc[at:])
	return bw.Flush()
}

// marshalers lists a slice's elements as json.Marshalers.
func marshalers[T json.Marshaler](s []T) []json.Marshaler {
	out := make([]json.Marshaler, len(s))
	for i, e := range s {
		out[i] = e
	}
	return out
}

// writeArray writes `"key": [...]` as a top-level member of an indented
// document, element by element.
func writeArray(bw *bufio.Writer, key string, elems []json.Marshaler, canonical bool) error {
	bw.WriteString("\n    \"" + key + "\": [")
	var ind bytes.Buffer
	for i, e := range elems {
		b, err := json.Marshal(e)
		if err != nil {
			return err
		}
		if canonical {
			var m any
			if err := json.Unmarshal(b, &m); err != nil {
				return err
			}
			if b, err = json.Marshal(m); err != nil {
				return err
			}
		}
		ind.Reset()
		if err := json.Indent(&ind, b, "        ", "    "); err != nil {
			return err
		}
		if i > 0 {
			bw.WriteString(",")
		}
		bw.WriteString("\n        ")
		bw.Write(ind.Bytes())
	}
	bw.WriteString("\n    ]")
	return nil
}

// printResult prints a result on stdout (the plugin's ADD).
func printResult(r types.Result) error { return PrintResult(os.Stdout, r) }
