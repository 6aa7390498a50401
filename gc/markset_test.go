package gc

import (
	"encoding/binary"
	"testing"

	"github.com/quic-s/quics/cas"
)

func testID(i uint64, salt byte) cas.ID {
	var b [9]byte
	binary.LittleEndian.PutUint64(b[:], i)
	b[8] = salt
	return cas.Sum(b[:])
}

// No false negatives, and a false-positive rate near the design's 0.3 %,
// both at the expected load and after growing to four times it.
func TestMarkSet(t *testing.T) {
	for _, tc := range []struct {
		expected, added uint64
		maxFP           float64
	}{
		{100_000, 100_000, 0.006},
		{25_000, 100_000, 0.015}, // grew to three layers
		{0, 10, 0.001},
	} {
		s := newMarkSet(tc.expected, 7)
		for i := range tc.added {
			s.Add(testID(i, 1))
		}
		for i := range tc.added {
			if !s.Has(testID(i, 1)) {
				t.Fatalf("expected %d, added %d: ID %d lost", tc.expected, tc.added, i)
			}
		}
		const probes = 200_000
		fp := 0
		for i := range uint64(probes) {
			if s.Has(testID(i, 2)) {
				fp++
			}
		}
		rate := float64(fp) / probes
		if rate > tc.maxFP {
			t.Errorf("expected %d, added %d: false positives %.4f, want at most %.4f", tc.expected, tc.added, rate, tc.maxFP)
		}
		perKey := float64(s.Bytes()) / float64(max(tc.added, 1))
		t.Logf("expected %d, added %d: %d layers, %.2f bytes per ID, false positives %.4f", tc.expected, tc.added, len(s.layers), perKey, rate)
	}
}

// Add reports whether an ID was new; Len counts those.
func TestMarkSetAdd(t *testing.T) {
	s := newMarkSet(10, 1)
	id := testID(1, 0)
	if !s.Add(id) || s.Add(id) || s.Len() != 1 {
		t.Fatalf("Add twice: Len %d", s.Len())
	}
}

// Different seeds make different false positives, so a garbage chunk a
// false positive kept is freed by a later run.
func TestMarkSetSeedsDiffer(t *testing.T) {
	a, b := newMarkSet(1000, 1), newMarkSet(1000, 2)
	for i := range uint64(1000) {
		a.Add(testID(i, 1))
		b.Add(testID(i, 1))
	}
	both, either := 0, 0
	for i := range uint64(200_000) {
		id := testID(i, 3)
		ha, hb := a.Has(id), b.Has(id)
		if ha && hb {
			both++
		}
		if ha || hb {
			either++
		}
	}
	if either == 0 || both*10 > either {
		t.Fatalf("false positives of two seeds: %d in both, %d in either", both, either)
	}
}
