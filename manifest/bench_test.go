package manifest

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"

	"github.com/quic-s/quics/cas"
)

// Commits are synchronous writes (kv.Open sets SyncWrites), so these
// measure the disk's fsync as much as the code.

func BenchmarkCommit(b *testing.B) {
	e := newEnv(b)
	owner := e.client(b, "owner")
	root := e.root(b, "bench", owner)
	c := newContent("bench")
	if err := e.db.PutChunkList(context.Background(), c.hash, c.chunks); err != nil {
		b.Fatal(err)
	}
	head := mustCommit(b, e.db, proposal(root.ID, "f", nil, c, owner.ID))
	p := proposal(root.ID, "f", nil, c, owner.ID)
	p.Chunks = nil
	for b.Loop() {
		p.BaseSeq, p.BaseHash = head.Seq, head.Hash
		head = mustCommit(b, e.db, p)
	}
}

// BenchmarkCommitParallel commits to distinct files of one root from many
// goroutines: every commit bumps the root seq, so they queue, and this
// measures how well grouping shares the fsyncs.
func BenchmarkCommitParallel(b *testing.B) {
	e := newEnv(b)
	owner := e.client(b, "owner")
	root := e.root(b, "bench", owner)
	c := newContent("bench")
	if err := e.db.PutChunkList(context.Background(), c.hash, c.chunks); err != nil {
		b.Fatal(err)
	}
	b.SetParallelism(8) // 16 writers on 2 CPUs, as many clients would be
	var worker atomic.Int64
	b.RunParallel(func(pb *testing.PB) {
		path := fmt.Sprint("w", worker.Add(1))
		var head *Version
		for pb.Next() {
			p := proposal(root.ID, path, head, c, owner.ID)
			p.Chunks = nil
			v := mustCommit(b, e.db, p)
			head = &v
		}
	})
}

func BenchmarkHead(b *testing.B) {
	e := newEnv(b)
	ctx := context.Background()
	owner := e.client(b, "owner")
	root := e.root(b, "bench", owner)
	mustCommit(b, e.db, proposal(root.ID, "dir/file.txt", nil, newContent("x"), owner.ID))
	for b.Loop() {
		if _, err := e.db.Head(ctx, root.ID, "dir/file.txt"); err != nil {
			b.Fatal(err)
		}
	}
}

// populate commits n files, each with its own content, concurrently so
// the fsyncs overlap.
func populate(b *testing.B, e *testEnv, root RootID, client Client, n int) {
	b.Helper()
	const workers = 16
	errs := make(chan error, workers)
	for w := range workers {
		go func() {
			for i := w; i < n; i += workers {
				_, err := e.db.Commit(context.Background(), proposal(root, fmt.Sprintf("dir%02d/file%05d", i%37, i), nil, newContent(fmt.Sprint(i)), client.ID))
				if err != nil {
					errs <- err
					return
				}
			}
			errs <- nil
		}()
	}
	for range workers {
		if err := <-errs; err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkListHeads(b *testing.B) {
	const files = 2000
	e := newEnv(b)
	ctx := context.Background()
	owner := e.client(b, "owner")
	root := e.root(b, "bench", owner)
	populate(b, e, root.ID, owner, files)
	b.ResetTimer()
	for b.Loop() {
		n := 0
		if err := e.db.ListHeads(ctx, root.ID, func(string, Head) error { n++; return nil }); err != nil || n != files {
			b.Fatal(n, err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*files), "ns/head")
}

func BenchmarkChanges(b *testing.B) {
	const files = 2000
	e := newEnv(b)
	ctx := context.Background()
	owner := e.client(b, "owner")
	root := e.root(b, "bench", owner)
	populate(b, e, root.ID, owner, files)
	b.ResetTimer()
	for b.Loop() {
		ch, err := e.db.Changes(ctx, root.ID, 0, 0)
		if err != nil || len(ch) != files {
			b.Fatal(len(ch), err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*files), "ns/change")
}

// bigChunkList is the list of a 2 GiB file at 64 KiB chunks.
func bigChunkList() []Chunk {
	chunks := make([]Chunk, 32<<10)
	for i := range chunks {
		chunks[i] = Chunk{ID: cas.Sum([]byte(fmt.Sprint(i))), Size: 64 << 10}
	}
	return chunks
}

func BenchmarkEncodeChunkList(b *testing.B) {
	chunks := bigChunkList()
	enc, err := encodeChunkList(chunks)
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(enc)))
	for b.Loop() {
		if _, err := encodeChunkList(chunks); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkDecodeChunkList(b *testing.B) {
	enc, err := encodeChunkList(bigChunkList())
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(enc)))
	for b.Loop() {
		if _, err := decodeChunkList(enc); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkChunkList(b *testing.B) {
	e := newEnv(b)
	ctx := context.Background()
	chunks := bigChunkList()
	hash := cas.Sum([]byte("big file"))
	if err := e.db.PutChunkList(ctx, hash, chunks); err != nil {
		b.Fatal(err)
	}
	enc, _ := encodeChunkList(chunks)
	b.SetBytes(int64(len(enc)))
	for b.Loop() {
		got, err := e.db.ChunkList(ctx, hash)
		if err != nil || len(got) != len(chunks) {
			b.Fatal(len(got), err)
		}
	}
}
