package client

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/zeebo/blake3"

	"github.com/quic-s/quics/cas"
	"github.com/quic-s/quics/chunker"
	"github.com/quic-s/quics/syncproto"
)

// DefaultRacyMargin is how close to its last scan a file's mtime may be
// before a matching stat no longer proves the content unchanged: it covers
// file systems with coarse timestamps (FAT: 2 s, HFS+ and many network
// file systems: 1 s, ext4: a clock tick).
const DefaultRacyMargin = 2 * time.Second

// IsRacy reports whether a file whose stat st was taken at scannedAt (Unix
// ns) must be re-hashed even when a later stat is identical. It is git's
// racy-timestamp rule: a write in the same timestamp tick as the scan, but
// after it, can leave size, mtime and ctime as they were. Such a write
// gives the file an mtime not older than scannedAt minus the timestamp
// granularity, so every file with such an mtime is re-read. A file with an
// mtime in the future is racy until that time has passed.
func IsRacy(st FileStat, scannedAt int64, margin time.Duration) bool {
	return st.MTime >= scannedAt-margin.Nanoseconds()
}

// contentHasher computes, in one read pass, a file's content hash (BLAKE3-256
// of the whole content, the same value as cas.Sum of it) and its chunk
// list. Memory is the chunker's buffer (2×Max) whatever the file size. It
// is reused for many files, one at a time.
type contentHasher struct {
	h   *blake3.Hasher
	ch  *chunker.Chunker
	min int // the chunker's smallest cut
}

func newContentHasher(p chunker.Params) (*contentHasher, error) {
	ch, err := chunker.New(nil, p)
	if err != nil {
		return nil, err
	}
	return &contentHasher{h: blake3.New(), ch: ch, min: p.Min}, nil
}

// hashed is the outcome of reading one file.
type hashed struct {
	hash   cas.ID
	chunks []syncproto.ChunkRef
	n      int64
}

// hashChunks reads r to its end.
func (c *contentHasher) hashChunks(ctx context.Context, r io.Reader) (hashed, error) {
	return c.hash(ctx, r, true)
}

// hashSized reads at most size bytes of r. A file no larger than the
// smallest chunk is one chunk, whose ID is the content hash: its bytes are
// hashed once, not twice.
func (c *contentHasher) hashSized(ctx context.Context, r io.Reader, size int64) (hashed, error) {
	return c.hash(ctx, io.LimitReader(r, size), size > int64(c.min))
}

func (c *contentHasher) hash(ctx context.Context, r io.Reader, whole bool) (hashed, error) {
	c.h.Reset()
	if whole {
		r = io.TeeReader(r, c.h)
	}
	c.ch.Reset(r)
	var out hashed
	for {
		if err := ctx.Err(); err != nil {
			return hashed{}, err
		}
		chunk, err := c.ch.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return hashed{}, err
		}
		out.chunks = append(out.chunks, syncproto.ChunkRef{ID: cas.Sum(chunk.Data), Size: uint32(chunk.Length)})
		out.n += int64(chunk.Length)
	}
	switch {
	case whole:
		c.h.Sum(out.hash[:0])
	case len(out.chunks) == 1:
		out.hash = out.chunks[0].ID
	case len(out.chunks) == 0:
		c.h.Sum(out.hash[:0]) // the hash of nothing
	default:
		// More than one chunk out of at most min bytes: the chunker broke
		// its own bound.
		return hashed{}, fmt.Errorf("client: %d chunks in %d bytes, below the smallest chunk", len(out.chunks), out.n)
	}
	c.ch.Reset(nil)
	return out, nil
}

// hashContent returns the BLAKE3-256 of r's content.
func hashContent(ctx context.Context, r io.Reader) (cas.ID, int64, error) {
	h := blake3.New()
	buf := make([]byte, 256<<10)
	var n int64
	for {
		if err := ctx.Err(); err != nil {
			return cas.ID{}, n, err
		}
		m, err := r.Read(buf)
		_, _ = h.Write(buf[:m]) // a hasher never fails
		n += int64(m)
		if err == io.EOF {
			break
		}
		if err != nil {
			return cas.ID{}, n, err
		}
	}
	var id cas.ID
	h.Sum(id[:0])
	return id, n, nil
}
