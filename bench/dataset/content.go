package dataset

import (
	"encoding/binary"
	"math"
	"math/rand/v2"
)

// newRandomReader is an endless ChaCha8 stream.
func newRandomReader(seed uint64) *rand.ChaCha8 {
	var key [32]byte
	binary.LittleEndian.PutUint64(key[:], seed)
	return rand.NewChaCha8(key)
}

// vocabulary is the fixed word list text is made of, built once from its
// own seed so that it needs no data file.
var vocabulary = func() []string {
	rng := rand.New(rand.NewPCG(0x766f636162, 2)) // "vocab"
	const letters = "etaoinshrdlcumwfgypbvkjxqz"
	words := make([]string, 2048)
	for i := range words {
		n := 2 + rng.IntN(9)
		w := make([]byte, n)
		for j := range w {
			// Skewed toward common letters, like English.
			w[j] = letters[min(rng.IntN(len(letters)), rng.IntN(len(letters)))]
		}
		words[i] = string(w)
	}
	return words
}()

// wordTable maps 16 random bits to a word index with a Zipf-like
// distribution (weight 1/(i+4)^1.1), so drawing a word costs a table
// lookup instead of math/rand's Zipf sampler.
var wordTable = func() *[1 << 16]uint16 {
	weights := make([]float64, len(vocabulary))
	var sum float64
	for i := range weights {
		weights[i] = 1 / math.Pow(float64(i+4), 1.1)
		sum += weights[i]
	}
	var table [1 << 16]uint16
	slot, acc := 0, 0.0
	for i, w := range weights {
		acc += w / sum
		for end := int(acc * float64(len(table))); slot < end && slot < len(table); slot++ {
			table[slot] = uint16(i)
		}
	}
	for ; slot < len(table); slot++ {
		table[slot] = uint16(len(weights) - 1)
	}
	return &table
}()

// textReader is an endless stream of lines of words.
type textReader struct {
	rng     *rand.PCG
	pending []byte
	line    []byte
}

func newTextReader(seed uint64) *textReader {
	return &textReader{rng: rand.NewPCG(seed, seed^0x74657874)}
}

func (t *textReader) Read(p []byte) (int, error) {
	n := 0
	for n < len(p) {
		if len(t.pending) == 0 {
			t.pending = t.nextLine()
		}
		c := copy(p[n:], t.pending)
		t.pending = t.pending[c:]
		n += c
	}
	return n, nil
}

// nextLine makes one line of 4 to 15 words, sometimes indented, ending
// in punctuation. One 64-bit draw shapes the line, one more picks up to
// four words.
func (t *textReader) nextLine() []byte {
	line := t.line[:0]
	shape := t.rng.Uint64()
	if shape&3 == 0 {
		line = append(line, "    "...)
	}
	words := 4 + int(shape>>2%12)
	var bits uint64
	for i := range words {
		if i%4 == 0 {
			bits = t.rng.Uint64()
		}
		if i > 0 {
			line = append(line, ' ')
		}
		line = append(line, vocabulary[wordTable[uint16(bits)]]...)
		bits >>= 16
	}
	line = append(line, ".,;:"[shape>>8%4], '\n')
	t.line = line
	return line
}
