package config

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"unicode"

	"github.com/containernetworking/cni/pkg/types"
)

// ErrPluginNotAvailable is CNI 1.1's STATUS error: the plugin cannot serve ADDs now.
const ErrPluginNotAvailable uint = 50

// Invalid returns a CNI "invalid network configuration" error (code 7) about key.
func Invalid(key, format string, args ...any) *types.Error {
	return types.NewError(types.ErrInvalidNetworkConfig, key+": "+fmt.Sprintf(format, args...), "")
}

// decodeError turns a json error into a CNI error: syntax errors are
// "decoding failure" (6), values of the wrong type "invalid configuration" (7).
func decodeError(where string, err error) *types.Error {
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		// The key as written: without the Go names of embedded structs
		// that encoding/json puts in the path ("Isolation.icc").
		var parts []string
		for _, p := range strings.Split(te.Field, ".") {
			if p != "" && !unicode.IsUpper(rune(p[0])) {
				parts = append(parts, p)
			}
		}
		key := strings.Join(parts, ".")
		if key == "" {
			key = where
		}
		return Invalid(key, "expected %s, got JSON %s", te.Type, te.Value)
	}
	return types.NewError(types.ErrDecodingFailure, "cannot decode "+where+": "+err.Error(), "")
}
