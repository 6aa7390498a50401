package chunker

import "testing"

// TestGearTableMatchesSeed pins the gear table: it must be exactly the first
// 256 outputs of splitmix64 from gearSeed. Any change to the table would move
// every cut point and orphan every stored chunk.
func TestGearTableMatchesSeed(t *testing.T) {
	state := uint64(gearSeed)
	for i, got := range gear {
		state += 0x9e3779b97f4a7c15
		z := state
		z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
		z = (z ^ (z >> 27)) * 0x94d049bb133111eb
		z ^= z >> 31
		if got != z {
			t.Fatalf("gear[%d] = %#016x, splitmix64(seed %#x) gives %#016x", i, got, uint64(gearSeed), z)
		}
	}
}
