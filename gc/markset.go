package gc

import (
	"encoding/binary"
	"math/bits"

	"github.com/quic-s/quics/cas"
)

// bitsPerKey sizes the mark filters: 12 bits and 8 probes give about 0.3 %
// false positives, so 1.5 bytes per marked ID against the 32 of the ID.
const (
	bitsPerKey = 12
	probes     = 8
)

// minLayerKeys keeps tiny stores from allocating silly little filters.
const minLayerKeys = 1024

// markSet is the set of marked IDs, kept as a scalable Bloom filter: a
// chain of Bloom filters, each twice as large as the one before, the last
// taking new keys once the others are full. Membership can be wrong only
// one way: an ID never added may test as present (a false positive),
// never the reverse. For gc that errs on the safe side: a false positive
// keeps a garbage chunk one more round. Chunk IDs are uniform hashes
// already; they are mixed with a seed chosen per run, so the chunks a
// false positive keeps differ from run to run.
type markSet struct {
	seed   [2]uint64
	layers []*bloom
	added  uint64
}

type bloom struct {
	words    []uint64
	nbits    uint64
	capacity uint64
	keys     uint64
	salt     uint64
}

// newMarkSet returns an empty set sized for about expected IDs; it grows
// if more come.
func newMarkSet(expected uint64, seed uint64) *markSet {
	s := &markSet{seed: [2]uint64{mix(seed ^ 0x9e3779b97f4a7c15), mix(seed + 0x632be59bd9b4e019)}}
	s.grow(max(expected, minLayerKeys))
	return s
}

func (s *markSet) grow(capacity uint64) {
	nbits := (capacity*bitsPerKey + 63) &^ 63
	s.layers = append(s.layers, &bloom{
		words:    make([]uint64, nbits/64),
		nbits:    nbits,
		capacity: capacity,
		salt:     mix(uint64(len(s.layers)) + s.seed[1]),
	})
}

// hashes derives the two hashes of double hashing from an ID.
func (s *markSet) hashes(id cas.ID) (uint64, uint64) {
	h1 := mix(binary.LittleEndian.Uint64(id[0:8]) ^ s.seed[0])
	h2 := mix(binary.LittleEndian.Uint64(id[8:16]) ^ s.seed[1])
	return h1, h2 | 1
}

// Add marks id and reports whether it was new (not already testing as
// present).
func (s *markSet) Add(id cas.ID) bool {
	h1, h2 := s.hashes(id)
	for _, b := range s.layers {
		if b.has(h1, h2) {
			return false
		}
	}
	last := s.layers[len(s.layers)-1]
	if last.keys >= last.capacity {
		s.grow(2 * last.capacity)
		last = s.layers[len(s.layers)-1]
	}
	last.add(h1, h2)
	s.added++
	return true
}

// Has reports whether id was marked (or is a false positive).
func (s *markSet) Has(id cas.ID) bool {
	h1, h2 := s.hashes(id)
	for _, b := range s.layers {
		if b.has(h1, h2) {
			return true
		}
	}
	return false
}

// Len is the number of IDs added as new.
func (s *markSet) Len() uint64 { return s.added }

// Bytes is the memory the filters take.
func (s *markSet) Bytes() int64 {
	var n int64
	for _, b := range s.layers {
		n += int64(len(b.words)) * 8
	}
	return n
}

func (b *bloom) add(h1, h2 uint64) {
	h := h1 ^ b.salt
	for range probes {
		i, _ := bits.Mul64(h, b.nbits) // uniform in [0, nbits) without a division
		b.words[i/64] |= 1 << (i % 64)
		h += h2
	}
	b.keys++
}

func (b *bloom) has(h1, h2 uint64) bool {
	h := h1 ^ b.salt
	for range probes {
		i, _ := bits.Mul64(h, b.nbits)
		if b.words[i/64]&(1<<(i%64)) == 0 {
			return false
		}
		h += h2
	}
	return true
}

// mix is the 64-bit finalizer of MurmurHash3: every input bit affects
// every output bit.
func mix(x uint64) uint64 {
	x ^= x >> 33
	x *= 0xff51afd7ed558ccd
	x ^= x >> 33
	x *= 0xc4ceb9fe1a85ec53
	x ^= x >> 33
	return x
}
