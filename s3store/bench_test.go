package s3store

import (
	"bytes"
	"context"
	"testing"

	"github.com/quic-s/quics/internal/s3test"
)

// BenchmarkPutPack uploads one 32 MiB pack per iteration to a real
// S3-compatible server on 127.0.0.1 (two 16 MiB parts).
func BenchmarkPutPack(b *testing.B) {
	srv := s3test.Start(b)
	srv.NewBucket(b, "bench")
	be := openBackend(b, s3Config(srv, "bench", "put"), "bench-put")
	pack := randomBytes(32<<20, 1)
	b.SetBytes(int64(len(pack)))
	for i := 0; b.Loop(); i++ {
		if err := be.Put(context.Background(), uint64(i+1), bytes.NewReader(pack), int64(len(pack))); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(be.Requests().Total())/float64(b.N), "requests/op")
}

// BenchmarkReadAt reads 1 MiB ranges (the block cache's unit) of a pack.
func BenchmarkReadAt(b *testing.B) {
	srv := s3test.Start(b)
	srv.NewBucket(b, "bench")
	be := openBackend(b, s3Config(srv, "bench", "read"), "bench-read")
	pack := randomBytes(32<<20, 2)
	if err := be.Put(context.Background(), 1, bytes.NewReader(pack), int64(len(pack))); err != nil {
		b.Fatal(err)
	}
	p := make([]byte, 1<<20)
	b.SetBytes(int64(len(p)))
	for i := 0; b.Loop(); i++ {
		off := int64(i%32) << 20
		if _, err := be.ReadAt(context.Background(), 1, p, off); err != nil {
			b.Fatal(err)
		}
	}
}
