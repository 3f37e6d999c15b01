package early

// A JSON reader for the two questions early asks of the network
// configuration before encoding/json has initialised: is it valid JSON (as
// encoding/json.Valid says), and which IPAM plugin does it name (ipam.type,
// as encoding/json.Unmarshal would read it into a struct). The tests check
// both answers against encoding/json, by fuzzing among others.

// maxDepth is encoding/json's nesting limit: a document with more objects
// and arrays open at once is not valid.
const maxDepth = 10000

// roles of a value for the ipam.type lookup.
const (
	roleNone = iota // of no interest
	roleTop         // the document: an object whose "ipam" member matters
	roleIPAM        // a top-level "ipam" member: an object whose "type" matters
	roleType        // an "ipam" object's "type" member
)

type jsonReader struct {
	b     []byte
	i     int
	depth int

	ipamType string
	// bad: an "ipam" member or its "type" has a type that encoding/json
	// cannot put in the struct early reads (an object holding a string), so
	// Unmarshal fails and names no IPAM plugin.
	bad bool
}

// scanConfig reports whether conf is valid JSON and, if it is, the IPAM
// plugin it names: the last string among the "type" members of its top-level
// "ipam" objects, names matched without regard to ASCII case, as
// encoding/json does. The name is "" when there is none or when
// encoding/json would fail to read it.
func scanConfig(conf []byte) (valid bool, ipamType string) {
	r := &jsonReader{b: conf}
	if !r.value(roleTop) {
		return false, ""
	}
	r.space()
	if r.i != len(r.b) {
		return false, ""
	}
	if r.bad {
		return true, ""
	}
	return true, r.ipamType
}

func (r *jsonReader) space() {
	for r.i < len(r.b) {
		switch r.b[r.i] {
		case ' ', '\t', '\n', '\r':
			r.i++
		default:
			return
		}
	}
}

// value reads one value, after optional white space.
func (r *jsonReader) value(role int) bool {
	r.space()
	if r.i == len(r.b) {
		return false
	}
	switch c := r.b[r.i]; {
	case c == '{':
		if role == roleType {
			r.bad = true
		}
		return r.object(role)
	case c == '[':
		if role == roleIPAM || role == roleType {
			r.bad = true
		}
		return r.array()
	case c == '"':
		s, ok := r.str()
		if !ok {
			return false
		}
		switch role {
		case roleType:
			r.ipamType = s
		case roleIPAM:
			r.bad = true
		}
		return true
	case c == 'n':
		return r.literal("null") // null leaves the struct as it was
	case c == 't':
		r.mistyped(role)
		return r.literal("true")
	case c == 'f':
		r.mistyped(role)
		return r.literal("false")
	default:
		r.mistyped(role)
		return r.number()
	}
}

// mistyped notes a boolean or number where the ipam lookup needs an object
// or a string.
func (r *jsonReader) mistyped(role int) {
	if role == roleIPAM || role == roleType {
		r.bad = true
	}
}

// enter reads the opening of an object or array and, if the closing byte
// follows at once, the closing too (empty); ok is false past maxDepth.
func (r *jsonReader) enter(closing byte) (empty, ok bool) {
	r.depth++
	r.i++
	if r.depth > maxDepth {
		return false, false
	}
	r.space()
	if r.i < len(r.b) && r.b[r.i] == closing {
		r.i++
		r.depth--
		return true, true
	}
	return false, true
}

func (r *jsonReader) object(role int) bool {
	if empty, ok := r.enter('}'); !ok || empty {
		return ok
	}
	for {
		r.space()
		if r.i == len(r.b) || r.b[r.i] != '"' {
			return false
		}
		key, ok := r.str()
		if !ok {
			return false
		}
		r.space()
		if r.i == len(r.b) || r.b[r.i] != ':' {
			return false
		}
		r.i++
		member := roleNone
		switch {
		case role == roleTop && foldEqual(key, "ipam"):
			member = roleIPAM
		case role == roleIPAM && foldEqual(key, "type"):
			member = roleType
		}
		if !r.value(member) {
			return false
		}
		if done, ok := r.next('}'); !ok || done {
			return ok
		}
	}
}

func (r *jsonReader) array() bool {
	if empty, ok := r.enter(']'); !ok || empty {
		return ok
	}
	for {
		if !r.value(roleNone) {
			return false
		}
		if done, ok := r.next(']'); !ok || done {
			return ok
		}
	}
}

// next reads what follows a member or element: a comma (another follows)
// or closing, which ends the object or array (done).
func (r *jsonReader) next(closing byte) (done, ok bool) {
	r.space()
	if r.i == len(r.b) {
		return false, false
	}
	switch r.b[r.i] {
	case ',':
		r.i++
		return false, true
	case closing:
		r.i++
		r.depth--
		return true, true
	}
	return false, false
}

// str reads a string and returns its content with escapes decoded as far as
// names matter here: an escaped character outside ASCII becomes 0xff, which
// matches no name and no plugin worth starting.
func (r *jsonReader) str() (string, bool) {
	r.i++ // the opening quote
	start := r.i
	var dec []byte // nil until an escape is met
	for r.i < len(r.b) {
		c := r.b[r.i]
		switch {
		case c == '"':
			s := r.b[start:r.i]
			if dec != nil {
				s = append(dec, s...)
			}
			r.i++
			return string(s), true
		case c < 0x20:
			return "", false
		case c == '\\':
			dec = append(dec, r.b[start:r.i]...)
			if r.i+1 == len(r.b) {
				return "", false
			}
			e := r.b[r.i+1]
			r.i += 2
			switch e {
			case '"', '\\', '/':
				dec = append(dec, e)
			case 'b':
				dec = append(dec, '\b')
			case 'f':
				dec = append(dec, '\f')
			case 'n':
				dec = append(dec, '\n')
			case 'r':
				dec = append(dec, '\r')
			case 't':
				dec = append(dec, '\t')
			case 'u':
				if r.i+4 > len(r.b) {
					return "", false
				}
				v := 0
				for _, h := range r.b[r.i : r.i+4] {
					d := hexValue(h)
					if d < 0 {
						return "", false
					}
					v = v<<4 | d
				}
				r.i += 4
				if v < 0x80 {
					dec = append(dec, byte(v))
				} else {
					dec = append(dec, 0xff)
				}
			default:
				return "", false
			}
			start = r.i
		default:
			r.i++
		}
	}
	return "", false
}

func hexValue(c byte) int {
	switch {
	case '0' <= c && c <= '9':
		return int(c - '0')
	case 'a' <= c && c <= 'f':
		return int(c-'a') + 10
	case 'A' <= c && c <= 'F':
		return int(c-'A') + 10
	}
	return -1
}

func (r *jsonReader) literal(word string) bool {
	if len(r.b)-r.i < len(word) || string(r.b[r.i:r.i+len(word)]) != word {
		return false
	}
	r.i += len(word)
	return true
}

// number reads -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
func (r *jsonReader) number() bool {
	if r.i < len(r.b) && r.b[r.i] == '-' {
		r.i++
	}
	switch {
	case r.i < len(r.b) && r.b[r.i] == '0':
		r.i++
	case r.digits() == 0:
		return false
	}
	if r.i < len(r.b) && r.b[r.i] == '.' {
		r.i++
		if r.digits() == 0 {
			return false
		}
	}
	if r.i < len(r.b) && (r.b[r.i] == 'e' || r.b[r.i] == 'E') {
		r.i++
		if r.i < len(r.b) && (r.b[r.i] == '+' || r.b[r.i] == '-') {
			r.i++
		}
		if r.digits() == 0 {
			return false
		}
	}
	return true
}

func (r *jsonReader) digits() int {
	n := 0
	for r.i < len(r.b) && '0' <= r.b[r.i] && r.b[r.i] <= '9' {
		r.i++
		n++
	}
	return n
}

// foldEqual reports whether s is name (lower-case ASCII) but for ASCII case.
func foldEqual(s, name string) bool {
	if len(s) != len(name) {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != name[i] {
			return false
		}
	}
	return true
}
