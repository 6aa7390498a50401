package syncproto

import (
	"context"
	"testing"

	"github.com/quic-s/quics/cas"
)

// benchChunks is 1 MiB of incompressible data in four 256 KiB chunks, the
// worst case for the wire: every byte travels.
func benchChunks(b *testing.B) ([]Chunk, []cas.ID) {
	chunks := make([]Chunk, 4)
	ids := make([]cas.ID, len(chunks))
	for i := range chunks {
		chunks[i] = storedChunk(b, randomBytes(256<<10))
		ids[i] = chunks[i].ID
	}
	return chunks, ids
}

func benchClient(b *testing.B) *Client {
	s := startSyncServer(b, newMemHandler(testServerPassword), Config{})
	c := s.client(b)
	if _, err := c.RegisterRoot(context.Background(), "r", "p"); err != nil {
		b.Fatal(err)
	}
	return c
}

// BenchmarkPutChunks uploads 1 MiB per operation over real QUIC on
// loopback, including the test handler's hashing of every chunk.
func BenchmarkPutChunks(b *testing.B) {
	c := benchClient(b)
	chunks, _ := benchChunks(b)
	ctx := context.Background()
	b.SetBytes(1 << 20)
	for b.Loop() {
		if err := c.PutChunks(ctx, "r", chunks); err != nil {
			b.Fatal(err)
		}
	}
	sent, _ := c.WireStats()
	b.ReportMetric(float64(sent)/float64(b.N)/(1<<20), "wireMiB/op")
}

// BenchmarkGetChunks downloads 1 MiB per operation over real QUIC on
// loopback.
func BenchmarkGetChunks(b *testing.B) {
	c := benchClient(b)
	chunks, ids := benchChunks(b)
	ctx := context.Background()
	if err := c.PutChunks(ctx, "r", chunks); err != nil {
		b.Fatal(err)
	}
	b.SetBytes(1 << 20)
	for b.Loop() {
		if err := c.GetChunks(ctx, "r", ids, func(Chunk) error { return nil }); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkHaveChunks asks about a full batch of 65536 IDs per operation.
func BenchmarkHaveChunks(b *testing.B) {
	c := benchClient(b)
	ids := make([]cas.ID, MaxHaveChunksIDs)
	for i := range ids {
		ids[i][0], ids[i][1], ids[i][2] = byte(i), byte(i>>8), 1
	}
	ctx := context.Background()
	b.SetBytes(int64(len(ids) * cas.IDSize))
	for b.Loop() {
		if _, err := c.HaveChunks(ctx, "r", ids); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkPing is the latency of one small transaction on loopback.
func BenchmarkPing(b *testing.B) {
	c := benchClient(b)
	ctx := context.Background()
	for b.Loop() {
		if _, err := c.Ping(ctx); err != nil {
			b.Fatal(err)
		}
	}
}
