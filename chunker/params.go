package chunker

import (
	"errors"
	"fmt"
	"math/bits"
)

// Limits that Params.Validate enforces.
const (
	// SmallestMin is the smallest allowed Params.Min. The rolling hash looks at a
	// 64-byte window, and the window of the first cut candidate has to fit
	// inside the chunk for the cut to depend on content alone.
	SmallestMin = windowSize
	// LargestMax is the largest allowed Params.Max. The chunker buffers twice Max,
	// and a peer must be able to hold a whole chunk in memory.
	LargestMax = 16 << 20
)

// ErrInvalidParams is returned (wrapped, with the reason) for Params that
// Validate rejects.
var ErrInvalidParams = errors.New("chunker: invalid params")

// Params are the chunk size bounds, in bytes. A root fixes them when it is
// created; changing them would move every cut point, so that nothing already
// stored would be found again.
type Params struct {
	// Min is the smallest chunk; no cut is ever made before it (except at the
	// end of the stream).
	Min int
	// Avg is the target chunk size. It must be a power of two: the cut masks
	// have log2(Avg)±2 bits.
	Avg int
	// Max is the largest chunk; a cut is forced there.
	Max int
}

// DefaultParams are quics' chunk bounds: 16 KiB, 64 KiB, 256 KiB.
var DefaultParams = Params{Min: 16 << 10, Avg: 64 << 10, Max: 256 << 10}

// Validate reports whether p can be used, and if not why, as an error wrapping
// ErrInvalidParams.
func (p Params) Validate() error {
	switch {
	case p.Min < SmallestMin:
		return fmt.Errorf("%w: Min %d is below %d", ErrInvalidParams, p.Min, SmallestMin)
	case p.Avg <= p.Min:
		return fmt.Errorf("%w: Avg %d is not above Min %d", ErrInvalidParams, p.Avg, p.Min)
	case p.Max <= p.Avg:
		return fmt.Errorf("%w: Max %d is not above Avg %d", ErrInvalidParams, p.Max, p.Avg)
	case p.Max > LargestMax:
		return fmt.Errorf("%w: Max %d is above %d", ErrInvalidParams, p.Max, LargestMax)
	case p.Avg&(p.Avg-1) != 0:
		return fmt.Errorf("%w: Avg %d is not a power of two", ErrInvalidParams, p.Avg)
	}
	return nil
}

// String formats p for logs and error messages.
func (p Params) String() string {
	return fmt.Sprintf("min=%d avg=%d max=%d", p.Min, p.Avg, p.Max)
}

// Normalization level 2 of the FastCDC paper: the mask used before Avg has two
// bits more than log2(Avg) (a cut is 4 times less likely), the one used after
// Avg two bits fewer (4 times more likely). Chunk sizes then bunch around Avg.
const normalization = 2

// masks returns the strict mask used for chunks shorter than Avg and the loose
// one used from Avg on. p must be valid.
func (p Params) masks() (strict, loose uint64) {
	b := bits.Len(uint(p.Avg)) - 1 // log2(Avg)
	return spreadMask(b + normalization), spreadMask(b - normalization)
}

// maskSpan is how many of the hash's high bits the mask bits are spread over.
const maskSpan = 48

// spreadMask returns a mask with ones 1-bits spread evenly over the top
// maskSpan bits of a word, the highest bit always set. With the left-shift
// gear hash, bit k of the hash depends on the last k+1 bytes only: a mask of
// low bits would make cuts depend on a handful of bytes, while bit 63 makes
// every cut depend on the whole 64-byte window. Spreading the remaining bits
// with zeros between them, as FastCDC does, keeps the window that large
// without using adjacent bits, which share all but one byte of their input.
// ones must be in [1, maskSpan].
func spreadMask(ones int) uint64 {
	var m uint64
	for i := range ones {
		m |= 1 << (63 - i*maskSpan/ones)
	}
	return m
}
