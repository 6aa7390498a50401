package chunker

import "math/rand/v2"

// randomBytes returns n reproducible pseudo-random bytes for seed. ChaCha8's
// output is fixed by its specification, so the data (and the cut points
// tests and examples expect) is the same on every machine.
func randomBytes(seed byte, n int) []byte {
	var key [32]byte
	key[0] = seed
	data := make([]byte, n)
	_, _ = rand.NewChaCha8(key).Read(data) // never fails
	return data
}
