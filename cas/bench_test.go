package cas_test

import (
	"context"
	"encoding/binary"
	"math/rand/v2"
	"path/filepath"
	"testing"
	"time"

	"github.com/quic-s/quics/cas"
	"github.com/quic-s/quics/cas/castest"
	"github.com/quic-s/quics/internal/kv"
)

const (
	benchChunkSize = 64 << 10
	benchSyncEvery = 256
)

// openBench opens a store with the server's settings on b.TempDir.
func openBench(b *testing.B) *cas.Store {
	b.Helper()
	root := b.TempDir()
	db, err := kv.Open(filepath.Join(root, "db"), kv.Options{})
	if err != nil {
		b.Fatal(err)
	}
	s, _, err := cas.Open(context.Background(), filepath.Join(root, "cas"), db, cas.Options{})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		_ = s.Close()
		_ = db.Close()
	})
	return s
}

type benchKind struct {
	name string
	gen  func(rng *rand.Rand, n int) castest.Chunk
}

var benchKinds = []benchKind{
	{"incompressible", castest.RandomChunk},
	{"compressible", castest.TextChunk},
}

// BenchmarkPut stores distinct 64 KiB chunks, hash verification,
// compression and a Sync every 256 puts included. The IDs are computed
// outside the timer, as the server receives them from the client.
func BenchmarkPut(b *testing.B) {
	for _, kind := range benchKinds {
		b.Run(kind.name, func(b *testing.B) {
			s := openBench(b)
			ctx := context.Background()
			rng := rand.New(rand.NewPCG(1, 2))
			batch := make([]castest.Chunk, benchSyncEvery)
			for i := range batch {
				batch[i] = kind.gen(rng, benchChunkSize)
			}
			var round uint64
			refresh := func() {
				// Make every chunk of the batch new: stamp the round
				// number into it and recompute its ID.
				round++
				for i := range batch {
					binary.LittleEndian.PutUint64(batch[i].Data, round)
					batch[i].ID = cas.Sum(batch[i].Data)
				}
			}
			refresh()
			var stored, raw int64
			var syncTime time.Duration
			b.SetBytes(benchChunkSize)
			i := 0
			for b.Loop() {
				c := batch[i]
				ok, err := s.Put(ctx, c.ID, c.Data)
				if err != nil || !ok {
					b.Fatalf("Put = %v, %v", ok, err)
				}
				if i++; i == len(batch) {
					t0 := time.Now()
					if err := s.Sync(ctx); err != nil {
						b.Fatal(err)
					}
					syncTime += time.Since(t0)
					b.StopTimer()
					refresh()
					i = 0
					b.StartTimer()
				}
			}
			if err := s.Sync(ctx); err != nil {
				b.Fatal(err)
			}
			st, err := s.Stats(ctx)
			if err != nil {
				b.Fatal(err)
			}
			stored, raw = st.StoredBytes, st.RawBytes
			b.ReportMetric(float64(raw)/float64(max(stored, 1)), "ratio")
			b.ReportMetric(float64(syncTime.Nanoseconds())/float64(b.N), "sync-ns/op")
		})
	}
}

// BenchmarkGet reads 64 KiB chunks back (pack files in the page cache),
// CRC check, decompression and hash verification included.
func BenchmarkGet(b *testing.B) {
	for _, kind := range benchKinds {
		b.Run(kind.name, func(b *testing.B) {
			s := openBench(b)
			ctx := context.Background()
			rng := rand.New(rand.NewPCG(3, 4))
			ids := make([]cas.ID, 1024)
			for i := range ids {
				c := kind.gen(rng, benchChunkSize)
				binary.LittleEndian.PutUint64(c.Data, uint64(i))
				c.ID = cas.Sum(c.Data)
				if _, err := s.Put(ctx, c.ID, c.Data); err != nil {
					b.Fatal(err)
				}
				ids[i] = c.ID
			}
			if err := s.Sync(ctx); err != nil {
				b.Fatal(err)
			}
			b.SetBytes(benchChunkSize)
			i := 0
			for b.Loop() {
				if _, err := s.Get(ctx, ids[i%len(ids)]); err != nil {
					b.Fatal(err)
				}
				i++
			}
		})
	}
}

// BenchmarkGetStored reads chunks in stored form, as the server sends them.
func BenchmarkGetStored(b *testing.B) {
	s := openBench(b)
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(5, 6))
	ids := make([]cas.ID, 256)
	for i := range ids {
		c := castest.TextChunk(rng, benchChunkSize)
		if _, err := s.Put(ctx, c.ID, c.Data); err != nil {
			b.Fatal(err)
		}
		ids[i] = c.ID
	}
	if err := s.Sync(ctx); err != nil {
		b.Fatal(err)
	}
	b.SetBytes(benchChunkSize)
	i := 0
	for b.Loop() {
		if _, err := s.GetStored(ctx, ids[i%len(ids)]); err != nil {
			b.Fatal(err)
		}
		i++
	}
}

// BenchmarkCompress is what a client pays per 64 KiB chunk it uploads:
// random chunks are judged by the probe and sent raw.
func BenchmarkCompress(b *testing.B) {
	for _, kind := range benchKinds {
		b.Run(kind.name, func(b *testing.B) {
			c := kind.gen(rand.New(rand.NewPCG(3, 4)), benchChunkSize)
			b.SetBytes(benchChunkSize)
			for b.Loop() {
				if _, err := cas.Compress(c.Data); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
