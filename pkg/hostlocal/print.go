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
// address by address: PrintTo builds the whole document (for 1.x results
// three times: as a struct's JSON, as a generic map of it, as the map's
// JSON) before indenting it, which with one address per range set and
// thousands of sets is several times the configuration's size. Results of
// other types are printed by their PrintTo.
func PrintResult(w io.Writer, r types.Result) error {
	var ips []json.Marshaler
	var rest types.Result
	var canonical bool  // elements go through a generic map, as the 1.x MarshalJSON does
	var before []string // top-level keys the "ips" key precedes, the first present wins
	switch r := r.(type) {
	case *current.Result:
		c := *r
		for _, ip := range c.IPs {
			ips = append(ips, ip)
		}
		c.IPs = nil
		rest, canonical = &c, true
		before = []string{"routes"} // keys sorted; "routes" is the only one after "ips"
	case *types040.Result:
		c := *r
		for _, ip := range c.IPs {
			ips = append(ips, ip)
		}
		c.IPs = nil
		rest = &c
		before = []string{"routes", "dns"} // the struct's field order
	default:
		return r.PrintTo(w)
	}
	if len(ips) == 0 {
		return r.PrintTo(w)
	}
	var head bytes.Buffer
	if err := rest.PrintTo(&head); err != nil {
		return err
	}
	doc := head.Bytes()
	// Where "ips" goes: before the first following top-level key present
	// (a line indented once; deeper lines are indented more), else last.
	at, comma := -1, false
	for _, k := range before {
		if i := bytes.Index(doc, []byte("\n    \""+k+"\": ")); i >= 0 {
			at, comma = i, true
			break
		}
	}
	if at < 0 {
		at = bytes.LastIndex(doc, []byte("\n}"))
		if at < 0 {
			return r.PrintTo(w)
		}
	}
	bw := bufio.NewWriterSize(w, 64<<10)
	bw.Write(doc[:at])
	if !comma {
		bw.WriteString(",")
	}
	bw.WriteString("\n    \"ips\": [")
	var ind bytes.Buffer
	for i, ip := range ips {
		b, err := json.Marshal(ip)
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
	if comma {
		bw.WriteString(",")
	}
	bw.Write(doc[at:])
	return bw.Flush()
}

// printResult prints a result on stdout (the plugin's ADD).
func printResult(r types.Result) error { return PrintResult(os.Stdout, r) }
