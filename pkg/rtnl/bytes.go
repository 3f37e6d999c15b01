package rtnl

import "unsafe"

// Netlink messages are in the host's byte order. These helpers stand in for
// encoding/binary.NativeEndian (see the package comment for why).

var bigEndian = func() bool {
	x := uint16(1)
	return *(*byte)(unsafe.Pointer(&x)) == 0
}()

func getU16(b []byte) uint16 {
	if bigEndian {
		return uint16(b[0])<<8 | uint16(b[1])
	}
	return uint16(b[1])<<8 | uint16(b[0])
}

func getU32(b []byte) uint32 {
	if bigEndian {
		return uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
	}
	return uint32(b[3])<<24 | uint32(b[2])<<16 | uint32(b[1])<<8 | uint32(b[0])
}

func putU16(b []byte, v uint16) {
	if bigEndian {
		b[0], b[1] = byte(v>>8), byte(v)
		return
	}
	b[0], b[1] = byte(v), byte(v>>8)
}

// putU32 writes v at the start of b and returns b.
func putU32(b []byte, v uint32) []byte {
	if bigEndian {
		b[0], b[1], b[2], b[3] = byte(v>>24), byte(v>>16), byte(v>>8), byte(v)
	} else {
		b[0], b[1], b[2], b[3] = byte(v), byte(v>>8), byte(v>>16), byte(v>>24)
	}
	return b
}

// wrapError is an error with what was being done in front, as
// fmt.Errorf("%s: %w") would make it.
type wrapError struct {
	op  string
	err error
}

func (e *wrapError) Error() string { return e.op + ": " + e.err.Error() }
func (e *wrapError) Unwrap() error { return e.err }

func wrap(op string, err error) error { return &wrapError{op, err} }

// quote puts s in double quotes (link names and paths, for messages).
func quote(s string) string { return `"` + s + `"` }
