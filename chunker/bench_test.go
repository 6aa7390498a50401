package chunker

import (
	"bytes"
	"io"
	"testing"
)

// BenchmarkChunker measures streaming throughput with DefaultParams over
// 64 MiB of random data (the quics target is at least 1 GB/s on one core).
func BenchmarkChunker(b *testing.B) {
	data := randomBytes(1, 64<<20)
	c, err := New(nil, DefaultParams)
	if err != nil {
		b.Fatal(err)
	}
	r := bytes.NewReader(data)
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		r.Reset(data)
		c.Reset(r)
		for {
			_, err := c.Next()
			if err == io.EOF {
				break
			}
			if err != nil {
				b.Fatal(err)
			}
		}
	}
}

// BenchmarkBoundaries measures the cut search alone, without reading.
func BenchmarkBoundaries(b *testing.B) {
	data := randomBytes(1, 64<<20)
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		if _, err := Boundaries(data, DefaultParams); err != nil {
			b.Fatal(err)
		}
	}
}
