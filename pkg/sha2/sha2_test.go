package sha2

import (
	"crypto/sha256"
	"crypto/sha512"
	"math/rand/v2"
	"testing"
)

// Both sums agree with the crypto packages on every length around the
// padding boundaries (55/56/64 bytes for SHA-256, 111/112/128 for SHA-512,
// and two blocks) and on random input.
func TestSums(t *testing.T) {
	rnd := rand.New(rand.NewPCG(1, 2))
	for n := 0; n < 300; n++ {
		msg := make([]byte, n)
		for i := range msg {
			msg[i] = byte(rnd.Uint32())
		}
		check(t, msg)
	}
}

func check(t *testing.T, msg []byte) {
	t.Helper()
	if got, want := Sum256(msg), sha256.Sum256(msg); got != want {
		t.Fatalf("Sum256 of %d bytes: %x, want %x", len(msg), got, want)
	}
	if got, want := Sum512(msg), sha512.Sum512(msg); got != want {
		t.Fatalf("Sum512 of %d bytes: %x, want %x", len(msg), got, want)
	}
}

// The caller's slice is left alone, even with spare capacity.
func TestInputUntouched(t *testing.T) {
	buf := make([]byte, 3, 200)
	copy(buf, "abc")
	full := buf[:cap(buf)]
	for i := 3; i < len(full); i++ {
		full[i] = 0xaa
	}
	Sum256(buf)
	Sum512(buf)
	for i := 3; i < len(full); i++ {
		if full[i] != 0xaa {
			t.Fatalf("byte %d past the input was overwritten", i)
		}
	}
}

func FuzzSums(f *testing.F) {
	f.Add([]byte("c1\x00eth0"))
	f.Add([]byte("mynet"))
	f.Fuzz(func(t *testing.T, msg []byte) { check(t, msg) })
}
