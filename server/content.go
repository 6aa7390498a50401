package server

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"

	"github.com/zeebo/blake3"
	"golang.org/x/sync/errgroup"
	"golang.org/x/sync/semaphore"

	"github.com/quic-s/quics/cas"
	"github.com/quic-s/quics/manifest"
)

// Read-ahead of writeChunks. Reading a chunk (index lookup, pack read,
// CRC, decode) costs about as much as hashing it into the whole content
// and writing it out, so one goroutine doing all of it leaves a core
// idle: a few readers fetch the next chunks meanwhile. The
// count keeps the reads in flight near the core count; the byte budget
// keeps a root with 16 MiB chunks from holding many of them in memory.
const (
	contentReaders        = 4
	contentReadAheadBytes = 8 << 20
)

// errListMismatch marks a chunk list that does not make its content (a
// size or the whole hash differs), as opposed to a chunk the store cannot
// read: for stored content both are corruption, for a proposal the first
// is the client's mistake.
var errListMismatch = errors.New("the chunk list does not make the content")

// aheadChunk is a chunk read ahead of the writer: done is closed once data
// or err is set.
type aheadChunk struct {
	id     cas.ID
	data   []byte // in a buffer of chunkBufs
	err    error
	weight int64 // held in the read-ahead budget until the chunk is done with
	done   chan struct{}
}

// chunkBufs recycles the buffers chunks are read into: re-reading a large
// file would otherwise allocate, and fault in, fresh memory for every chunk.
var chunkBufs sync.Pool

// maxPooledChunkBuf keeps a root with huge chunks from pinning them.
const maxPooledChunkBuf = 4 << 20

// read fills a from the store.
func (a *aheadChunk) read(ctx context.Context, store *cas.Store) {
	var buf []byte
	if p, ok := chunkBufs.Get().(*[]byte); ok {
		buf = *p
	}
	a.data, a.err = store.AppendUnhashed(ctx, a.id, buf[:0])
	close(a.done)
}

// release gives a's buffer back once nothing reads it any more.
func (a *aheadChunk) release() {
	if cap(a.data) > 0 && cap(a.data) <= maxPooledChunkBuf {
		b := a.data[:0]
		chunkBufs.Put(&b)
	}
	a.data = nil
}

// writeChunks writes the chunks to w in order, each read with its record's
// CRC checked, and, if checkWhole, checks that together they hash to hash
// (without checkWhole the receiver must hash what it gets: no chunk is
// hashed on its own, a damaged one shows as a whole mismatch). Readers
// fetch the next chunks while one is written, and the whole content is
// hashed on another goroutine, so reading, writing and hashing overlap.
// Errors are the first in chunk order, as a serial loop would report
// them. Every goroutine has ended when it returns.
func (s *Server) writeChunks(ctx context.Context, hash cas.ID, chunks []manifest.Chunk, w io.Writer, checkWhole bool) error {
	if len(chunks) < 2 {
		return s.writeChunksSerially(ctx, hash, chunks, w, checkWhole)
	}
	outer := ctx
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var g errgroup.Group
	budget := semaphore.NewWeighted(contentReadAheadBytes)

	// The producer queues every chunk twice: for a reader (any will do) and,
	// in order, for the writer. Both queues are short, which bounds how far
	// the reads run ahead.
	jobs := make(chan *aheadChunk, contentReaders)
	ahead := make(chan *aheadChunk, contentReaders)
	g.Go(func() error {
		defer close(ahead)
		defer close(jobs)
		for _, c := range chunks {
			// Capped so that a chunk larger than the budget still goes,
			// alone.
			weight := min(int64(c.Size), contentReadAheadBytes)
			if budget.Acquire(ctx, weight) != nil {
				return nil
			}
			a := &aheadChunk{id: c.ID, weight: weight, done: make(chan struct{})}
			for _, q := range []chan<- *aheadChunk{jobs, ahead} {
				select {
				case q <- a:
				case <-ctx.Done():
					return nil
				}
			}
		}
		return nil
	})
	// Long-lived readers rather than one goroutine per chunk: each new
	// goroutine would grow its stack again for the store's call chain.
	for range contentReaders {
		g.Go(func() error {
			for a := range jobs {
				a.read(ctx, s.store)
			}
			return nil
		})
	}

	var sum cas.ID
	var toHash chan *aheadChunk
	if checkWhole {
		toHash = make(chan *aheadChunk, contentReaders)
		g.Go(func() error {
			h := blake3.New()
			for a := range toHash {
				_, _ = h.Write(a.data)
				a.release()
				budget.Release(a.weight)
			}
			h.Sum(sum[:0])
			return nil
		})
	}

	err := writeAhead(ctx, hash, chunks, ahead, w, func(a *aheadChunk) {
		if toHash != nil {
			toHash <- a
		} else {
			a.release()
			budget.Release(a.weight)
		}
	})
	// Stop the producer, let the readers drain what it queued (the
	// canceled context makes that quick) and wait for all of them, so that
	// none outlives the call.
	cancel()
	if toHash != nil {
		close(toHash)
	}
	_ = g.Wait()
	if err != nil {
		return err
	}
	if checkWhole && sum != hash {
		return s.wholeMismatch(outer, hash, sum, chunks)
	}
	return nil
}

// wholeMismatch is the error for content whose chunks hash to sum rather
// than hash. Its chunks were read unhashed, so each is read again with
// Get: the first that does not hash to its ID is a damaged store, and if
// none does, the list does not make the content.
func (s *Server) wholeMismatch(ctx context.Context, hash, sum cas.ID, chunks []manifest.Chunk) error {
	for i, c := range chunks {
		if _, err := s.store.Get(ctx, c.ID); err != nil {
			return chunkError(hash, i, c, err)
		}
	}
	return fmt.Errorf("server: content %s hashes to %s: %w: %w", hash, sum, errListMismatch, cas.ErrCorrupt)
}

// chunkError places err at chunk i of the content hash.
func chunkError(hash cas.ID, i int, c manifest.Chunk, err error) error {
	return fmt.Errorf("server: chunk %d (%s) of %s: %w", i, c.ID, hash, err)
}

// writeAhead is writeChunks' writer: it takes the chunks in order as the
// readers finish them, writes each to w and passes it on to done.
func writeAhead(ctx context.Context, hash cas.ID, chunks []manifest.Chunk, ahead <-chan *aheadChunk, w io.Writer, done func(*aheadChunk)) error {
	for i, c := range chunks {
		a, ok := <-ahead
		if !ok {
			// Only the caller's context ends the producer this early.
			return chunkError(hash, i, c, ctx.Err())
		}
		<-a.done
		if err := writeChunk(hash, i, c, a.data, a.err, w); err != nil {
			return err
		}
		done(a)
	}
	return nil
}

// writeChunk writes chunk i of the content hash, as read from the store
// (data or readErr), to w once it has the size the list says.
func writeChunk(hash cas.ID, i int, c manifest.Chunk, data []byte, readErr error, w io.Writer) error {
	if readErr != nil {
		return chunkError(hash, i, c, readErr)
	}
	if len(data) != int(c.Size) {
		return fmt.Errorf("server: chunk %d (%s) of %s has %d bytes, the list says %d: %w: %w", i, c.ID, hash, len(data), c.Size, errListMismatch, cas.ErrCorrupt)
	}
	if _, err := w.Write(data); err != nil {
		return fmt.Errorf("server: write content %s: %w", hash, err)
	}
	return nil
}

// writeChunksSerially is writeChunks for a content of at most one chunk,
// where there is nothing to overlap and goroutines would only cost. It
// reads and checks as writeChunks does: a one-chunk content's hash is its
// chunk's ID, so hashing the chunk in Get as well would hash it twice.
func (s *Server) writeChunksSerially(ctx context.Context, hash cas.ID, chunks []manifest.Chunk, w io.Writer, checkWhole bool) error {
	h := blake3.New()
	for i, c := range chunks {
		data, err := s.store.AppendUnhashed(ctx, c.ID, nil)
		if err := writeChunk(hash, i, c, data, err, w); err != nil {
			return err
		}
		if checkWhole {
			_, _ = h.Write(data)
		}
	}
	if !checkWhole {
		return nil
	}
	var sum cas.ID
	h.Sum(sum[:0])
	if sum != hash {
		return s.wholeMismatch(ctx, hash, sum, chunks)
	}
	return nil
}
