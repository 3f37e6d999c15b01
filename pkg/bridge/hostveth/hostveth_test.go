package hostveth

import (
	cryptosha256 "crypto/sha256"
	"math/rand/v2"
	"testing"
)

func TestName(t *testing.T) {
	a, b := Name("c1", "eth0"), Name("c1", "eth1")
	if a == b || len(a) != 12 || a[:4] != "veth" || a != Name("c1", "eth0") {
		t.Errorf("Name: %q %q", a, b)
	}
	// Fixed forever: DEL finds host ends made by earlier versions by name.
	if a != "vethec43057c" {
		t.Errorf("Name(c1, eth0) = %q, changed from vethec43057c", a)
	}
	if got := Alias("c1", "eth0"); got != "flatcni:c1/eth0" {
		t.Errorf("Alias = %q", got)
	}
}

// The package's own SHA-256 agrees with crypto/sha256 on every length
// around the padding boundaries and on random input.
func TestSHA256(t *testing.T) {
	rnd := rand.New(rand.NewPCG(1, 2))
	for n := 0; n < 300; n++ {
		msg := make([]byte, n)
		for i := range msg {
			msg[i] = byte(rnd.Uint32())
		}
		if got, want := sha256(msg), cryptosha256.Sum256(msg); got != want {
			t.Fatalf("length %d: %x, want %x", n, got, want)
		}
	}
}

func FuzzSHA256(f *testing.F) {
	f.Add([]byte("c1\x00eth0"))
	f.Fuzz(func(t *testing.T, msg []byte) {
		if got, want := sha256(msg), cryptosha256.Sum256(msg); got != want {
			t.Fatalf("%x: %x, want %x", msg, got, want)
		}
	})
}
