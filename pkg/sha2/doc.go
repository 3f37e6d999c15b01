// Package sha2 computes SHA-256 and SHA-512 (FIPS 180-4), written out so
// that a package using them imports nothing that initialises late: crypto/sha256
// and crypto/sha512 bring the crypto packages' initialisers (FIPS self-test
// set-up, AES-GCM, DRBG) into a plugin's start-up, while its hashes name
// links and rules, a few short strings per call, where speed does not matter.
// pkg/bridge/early's dependencies rely on this (see its package comment).
package sha2

// pad appends SHA-2 padding to a copy of msg for a block size of 64 or 128
// bytes: a one bit, zeros up to the length field, and the message length in
// bits as a big-endian number filling the last 8 (SHA-256) or 16 (SHA-512)
// bytes of the last block.
func pad(msg []byte, block int) []byte {
	lenField := block / 8
	n := uint64(len(msg))
	p := append(msg[:n:n], 0x80)
	for len(p)%block != block-lenField {
		p = append(p, 0)
	}
	for i := lenField - 1; i >= 0; i-- {
		if i >= 8 {
			p = append(p, 0) // a message shorter than 2^61 bytes
			continue
		}
		p = append(p, byte(n*8>>(8*i)))
	}
	return p
}
