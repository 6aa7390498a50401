package client

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	"github.com/quic-s/quics/chunker"
)

// BenchmarkScanUnchanged measures the stat-only path: a scan of 5,000
// small files that all match their records and none is racy.
func BenchmarkScanUnchanged(b *testing.B) {
	const files = 5000
	h, dir := testRoot(b, chunker.DefaultParams)
	data := randomBytes(11, 1024)
	for i := range files {
		writeFile(b, dir, fmt.Sprintf("d%02d/file %04d.txt", i%50, i), data)
	}
	s := scanner(h, nil, laterClock)
	if res := mustScan(b, s); len(res.Changes) != files {
		b.Fatalf("first scan: %d changes", len(res.Changes))
	}
	b.ReportAllocs()
	for b.Loop() {
		res := mustScan(b, s)
		if res.Unchanged != files || res.Hashed != 0 {
			b.Fatalf("unchanged %d, hashed %d", res.Unchanged, res.Hashed)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*files), "ns/file")
}

// BenchmarkScanNew measures a first scan: 5,000 small files with no
// record, each opened, hashed and recorded.
func BenchmarkScanNew(b *testing.B) {
	const files = 5000
	dir := b.TempDir()
	for i := range files {
		writeFile(b, dir, fmt.Sprintf("d%02d/file %04d.txt", i%50, i), randomBytes(uint64(i), 1024))
	}
	b.ReportAllocs()
	for b.Loop() {
		b.StopTimer()
		h := openTestHome(b, b.TempDir())
		if err := h.State().PutRoot(context.Background(), Root{Name: "docs", Dir: dir, Chunking: chunker.DefaultParams}); err != nil {
			b.Fatal(err)
		}
		s := scanner(h, nil, laterClock)
		b.StartTimer()
		if res := mustScan(b, s); res.Hashed != files {
			b.Fatalf("hashed %d of %d files", res.Hashed, files)
		}
		b.StopTimer()
		h.Close()
		b.StartTimer()
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*files), "ns/file")
}

// BenchmarkHashAndChunk measures one read pass over a 64 MiB file:
// whole-file BLAKE3, chunking with the default parameters, and a BLAKE3 per
// chunk. The file is in the page cache, so this is the CPU cost.
func BenchmarkHashAndChunk(b *testing.B) {
	const size = 64 << 20
	name := filepath.Join(b.TempDir(), "big")
	if err := os.WriteFile(name, randomBytes(12, size), 0o644); err != nil {
		b.Fatal(err)
	}
	ch, err := newContentHasher(chunker.DefaultParams)
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	b.SetBytes(size)
	b.ReportAllocs()
	for b.Loop() {
		f, err := os.Open(name)
		if err != nil {
			b.Fatal(err)
		}
		h, err := ch.hashChunks(ctx, f)
		f.Close()
		if err != nil || h.n != size {
			b.Fatalf("read %d bytes: %v", h.n, err)
		}
	}
}

// BenchmarkChunkStream measures reading and compressing an upload batch
// of one large compressible file (text-like words), as one stream sends
// it.
func BenchmarkChunkStream(b *testing.B) {
	dir := b.TempDir()
	rng := rand.New(rand.NewPCG(1, 2))
	words := []string{"alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel", "india", "juliet", "kilo", "lima"}
	var text []byte
	for len(text) < 32<<20 {
		text = append(text, words[rng.IntN(len(words))]...)
		text = append(text, " \n"[rng.IntN(2)])
		text = append(text, byte('a'+rng.IntN(26)))
	}
	writeFile(b, dir, "big.txt", text)
	srcs := scannedSourcesWith(b, chunker.DefaultParams, dir, "big.txt")
	br := batchReader{dir: dir}
	buf := new(uploadBuf)
	b.SetBytes(int64(len(text)))
	for b.Loop() {
		chunks, bad := readAll(b, br, srcs, buf)
		if len(bad) != 0 || len(chunks) != len(srcs) {
			b.Fatalf("%d chunks of %d, bad %v", len(chunks), len(srcs), bad)
		}
	}
}
