package chunker

import (
	"bytes"
	"io"
	"slices"
	"testing"
	"testing/iotest"
)

// fuzzParams are the parameter sets FuzzChunker picks from: tiny chunks so
// that short fuzz inputs hold several, and the edge where Max is Avg+1.
var fuzzParams = []Params{
	{Min: 64, Avg: 128, Max: 256},
	{Min: 64, Avg: 256, Max: 1024},
	{Min: 100, Avg: 512, Max: 513},
	{Min: 200, Avg: 1024, Max: 8192},
}

// FuzzChunker checks the invariants on arbitrary bytes: sizes within bounds,
// chunks that reassemble to the input, streaming one byte at a time cutting
// where Boundaries does, and agreement with the reference rule.
func FuzzChunker(f *testing.F) {
	f.Add([]byte{}, uint8(0))
	f.Add([]byte("x"), uint8(1))
	f.Add(bytes.Repeat([]byte{0}, 600), uint8(2))
	f.Add(bytes.Repeat([]byte("quics"), 150), uint8(3))
	f.Add(randomBytes(12, 1500), uint8(0))
	f.Add(randomBytes(13, 400), uint8(2))
	f.Fuzz(func(t *testing.T, data []byte, sel uint8) {
		p := fuzzParams[int(sel)%len(fuzzParams)]
		want, err := Boundaries(data, p)
		if err != nil {
			t.Fatal(err)
		}
		checkSizes(t, want, len(data), p)
		if ref := referenceBoundaries(data, p); !slices.Equal(want, ref) {
			t.Fatalf("Boundaries %v, reference %v", want, ref)
		}
		for _, r := range []io.Reader{iotest.OneByteReader(bytes.NewReader(data)), iotest.HalfReader(bytes.NewReader(data))} {
			chunks := chunkAll(t, r, p)
			if got := ends(chunks); !slices.Equal(got, want) {
				t.Fatalf("streamed cuts %v, Boundaries %v", got, want)
			}
			if !bytes.Equal(bytes.Join(chunks, nil), data) {
				t.Fatal("reassembled chunks differ from the input")
			}
		}
	})
}
