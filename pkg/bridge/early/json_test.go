package early

import (
	"encoding/json"
	"strings"
	"testing"
	"unicode/utf8"
)

// jsonAnswer is what encoding/json says of conf: valid, and the IPAM plugin
// that startIPAM read with it before it had its own reader.
func jsonAnswer(conf []byte) (bool, string) {
	if !json.Valid(conf) {
		return false, ""
	}
	var c struct {
		IPAM struct {
			Type string `json:"type"`
		} `json:"ipam"`
	}
	if json.Unmarshal(conf, &c) != nil {
		return true, ""
	}
	return true, c.IPAM.Type
}

var jsonCases = []string{
	`{"cniVersion":"1.1.0","ipam":{"type":"host-local","ranges":[[{"subnet":"10.1.0.0/16"}]]}}`,
	`{"IPAM":{"Type":"a"}}`, `{"ipam":{"type":"a"},"ipam":{}}`, `{"ipam":{"type":"a"},"ipam":{"type":"b"}}`,
	`{"ipam":{"type":"a"},"ipam":null}`, `{"ipam":{"type":null}}`, `{"ipam":"x"}`, `{"ipam":[]}`,
	`{"ipam":{"type":1}}`, `{"ipam":{"type":{}}}`, `{"ipam":{"type":["a"]}}`, `{"ipam":{"type":true}}`,
	`{"ip\u0061m":{"typ\u0065":"a\/b"}}`, `{"ipam":{"type":"\u00e9"}}`, `{"x":{"ipam":{"type":"a"}}}`,
	`[{"ipam":{"type":"a"}}]`, `null`, `"s"`, `0`, `-0.5e+10`, `1E5`, ` {} `, "\t[]\r\n",
	``, ` `, `{`, `}`, `{"a"}`, `{"a":}`, `{"a":1,}`, `[1,]`, `[,1]`, `{"a" 1}`, `{1:2}`,
	`01`, `-`, `1.`, `.5`, `1e`, `1e+`, `+1`, `0x1`, `tru`, `nul`, `truex`, `[true false]`,
	`"\x"`, `"\u12"`, `"\u12g4"`, "\"a\x01\"", "\"\xff\xfe\"", `"`, `"\`, `{"a":"b"} x`,
	"\ufeff{}", `{"ipam":{"type":"a"}}{}`, `[[[[]]]]`, `{"a":[{"b":[null,{"c":1.5e-3}]}]}`,
}

func TestScanConfig(t *testing.T) {
	for _, c := range jsonCases {
		v, typ := scanConfig([]byte(c))
		wv, wtyp := jsonAnswer([]byte(c))
		if !exact(typ, []byte(c)) {
			typ = wtyp // only validity is compared (see exact)
		}
		if v != wv || typ != wtyp {
			t.Errorf("%q: valid %v type %q; encoding/json: %v %q", c, v, typ, wv, wtyp)
		}
	}
}

// A non-ASCII escape in the name reads as a byte no plugin name has.
func TestScanConfigNonASCIIName(t *testing.T) {
	if v, typ := scanConfig([]byte(`{"ipam":{"type":"\u00e9"}}`)); !v || typ != "\xff" {
		t.Errorf("valid %v type %q", v, typ)
	}
}

// encoding/json refuses documents nested deeper than 10000.
func TestScanConfigDepth(t *testing.T) {
	for _, depth := range []int{maxDepth, maxDepth + 1} {
		c := []byte(strings.Repeat("[", depth) + strings.Repeat("]", depth))
		if v, wv := func() bool { v, _ := scanConfig(c); return v }(), json.Valid(c); v != wv {
			t.Errorf("depth %d: valid %v, encoding/json %v", depth, v, wv)
		}
	}
}

// exact tells whether scanConfig reads the plugin name typ exactly as
// encoding/json does: not when conf has a \u escape (one outside ASCII is
// read as 0xff) or the name is not UTF-8 (encoding/json replaces such
// bytes). Such a name is no plugin to start, and ADD starts the one it
// needs if early guessed wrong.
func exact(typ string, conf []byte) bool {
	return utf8.ValidString(typ) && !strings.Contains(string(conf), `\u`)
}

func FuzzScanConfig(f *testing.F) {
	for _, c := range jsonCases {
		f.Add([]byte(c))
	}
	f.Fuzz(func(t *testing.T, conf []byte) {
		v, typ := scanConfig(conf)
		wv, wtyp := jsonAnswer(conf)
		if v != wv {
			t.Fatalf("%q: valid %v, encoding/json %v", conf, v, wv)
		}
		if typ != wtyp && exact(typ, conf) {
			t.Fatalf("%q: type %q, encoding/json %q", conf, typ, wtyp)
		}
	})
}
