package server

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/zeebo/blake3"

	"github.com/quic-s/quics/cas"
	"github.com/quic-s/quics/chunker"
	"github.com/quic-s/quics/manifest"
	"github.com/quic-s/quics/syncproto"
)

// storeContent chunks data as a client would, puts the chunks in the
// server's store (durable) and records the chunk list, without keeping a
// second copy of data in memory as newFile does.
func (e *env) storeContent(tb testing.TB, data []byte) (cas.ID, []manifest.Chunk) {
	tb.Helper()
	ends, err := chunker.Boundaries(data, chunker.DefaultParams)
	if err != nil {
		tb.Fatal(err)
	}
	parts := make([][]byte, 0, len(ends))
	start := 0
	for _, end := range ends {
		parts = append(parts, data[start:end])
		start = end
	}
	return e.storeParts(tb, cas.Sum(data), parts)
}

// storeParts stores each part as a chunk (durable) and records them, in
// order, as the chunk list of hash.
func (e *env) storeParts(tb testing.TB, hash cas.ID, parts [][]byte) (cas.ID, []manifest.Chunk) {
	tb.Helper()
	ctx := context.Background()
	chunks := make([]manifest.Chunk, 0, len(parts))
	for _, p := range parts {
		id := cas.Sum(p)
		if _, err := e.srv.store.Put(ctx, id, p); err != nil {
			tb.Fatal(err)
		}
		chunks = append(chunks, manifest.Chunk{ID: id, Size: uint32(len(p))})
	}
	if err := e.srv.store.Sync(ctx); err != nil {
		tb.Fatal(err)
	}
	if err := e.srv.db.PutChunkList(ctx, hash, chunks); err != nil {
		tb.Fatal(err)
	}
	return hash, chunks
}

// incompressible is n random bytes: every chunk is stored raw, like the
// 256 MiB file of the end-to-end benchmark.
func incompressible(seed uint64, n int) []byte {
	rng := rand.New(rand.NewPCG(seed, seed^0x5851f42d4c957f2d))
	b := make([]byte, n)
	for i := 0; i+8 <= n; i += 8 {
		v := rng.Uint64()
		for j := range 8 {
			b[i+j] = byte(v >> (8 * j))
		}
	}
	return b
}

// BenchmarkWriteContent measures streaming a 256 MiB random file out of a
// real store, every chunk verified: the server's share of `quics restore
// --output`, which uses StreamContent (the whole checked by the receiver),
// and of a history export, which uses WriteContent.
func BenchmarkWriteContent(b *testing.B) {
	opts := testOptions(filepath.Join(b.TempDir(), "data"))
	opts.Views = false
	e := newEnvWith(b, opts)
	const size = 256 << 20
	hash, _ := e.storeContent(b, incompressible(7, size))
	ctx := context.Background()
	for _, cw := range contentWriters {
		b.Run(cw.name, func(b *testing.B) {
			b.SetBytes(size)
			for b.Loop() {
				if err := cw.write(e.srv, ctx, hash, io.Discard); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// contentOf stores parts as the chunks of their concatenation and returns
// its hash and bytes.
func (e *env) contentOf(t *testing.T, parts ...[]byte) (cas.ID, []byte) {
	t.Helper()
	data := bytes.Join(parts, nil)
	hash, _ := e.storeParts(t, cas.Sum(data), parts)
	return hash, data
}

// unevenParts is n incompressible parts of 1 B to 200 KiB, in an order
// where a small part often follows a large one (read ahead, it is ready
// first).
func unevenParts(seed uint64, n int) [][]byte {
	rng := rand.New(rand.NewPCG(seed, 1))
	parts := make([][]byte, n)
	for i := range parts {
		size := 1 + rng.IntN(200<<10)
		if i%3 == 1 {
			size = 1 + rng.IntN(64)
		}
		parts[i] = incompressible(seed+uint64(i), size)
	}
	return parts
}

// contentWriters are the two ways to stream a content: they differ only in
// whether the whole content is checked here.
var contentWriters = []struct {
	name  string
	write func(*Server, context.Context, cas.ID, io.Writer) error
}{
	{"WriteContent", (*Server).WriteContent},
	{"StreamContent", (*Server).StreamContent},
}

func TestWriteContentKeepsChunkOrder(t *testing.T) {
	e := newEnv(t)
	parts := unevenParts(1, 40)
	// A chunk may appear several times in a list.
	parts = append(parts, parts[7], parts[0], parts[7])
	hash, data := e.contentOf(t, parts...)
	for _, cw := range contentWriters {
		var buf bytes.Buffer
		if err := cw.write(e.srv, context.Background(), hash, &buf); err != nil {
			t.Fatalf("%s: %v", cw.name, err)
		}
		if !bytes.Equal(buf.Bytes(), data) {
			t.Fatalf("%s wrote %d bytes that differ from the %d of the content", cw.name, buf.Len(), len(data))
		}
	}
}

func TestWriteContentChunksLargerThanReadAhead(t *testing.T) {
	e := newEnv(t)
	big := contentReadAheadBytes + 1<<20
	parts := [][]byte{incompressible(1, big), incompressible(2, 10), incompressible(3, big), incompressible(4, big)}
	hash, data := e.contentOf(t, parts...)
	h := blake3.New()
	n, err := io.Copy(h, pipeContent(t, e, hash))
	if err != nil || n != int64(len(data)) || !bytes.Equal(h.Sum(nil), hash[:]) {
		t.Fatalf("read %d of %d bytes, err %v", n, len(data), err)
	}
}

// pipeContent runs WriteContent into a pipe and returns its reading end.
func pipeContent(t *testing.T, e *env, hash cas.ID) io.Reader {
	t.Helper()
	pr, pw := io.Pipe()
	go func() { pw.CloseWithError(e.srv.WriteContent(context.Background(), hash, pw)) }()
	t.Cleanup(func() { _ = pr.Close() })
	return pr
}

func TestWriteContentDamagedChunks(t *testing.T) {
	tests := []struct {
		name     string
		damage   []int // chunk indexes, damaged in this order
		truncate bool
		want     error
		first    int
	}{
		{"corrupt", []int{25}, false, cas.ErrCorrupt, 25},
		// The error is the first damaged chunk in content order, however
		// the reads ahead finish.
		{"two corrupt", []int{30, 12}, false, cas.ErrCorrupt, 12},
		{"first corrupt", []int{0}, false, cas.ErrCorrupt, 0},
		{"last corrupt", []int{39}, false, cas.ErrCorrupt, 39},
		{"pack cut short", []int{20}, true, cas.ErrMissing, 20},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t)
			parts := unevenParts(2, 40)
			hash, data := e.contentOf(t, parts...)
			for _, i := range tt.damage {
				damageChunk(t, e, cas.Sum(parts[i]), tt.truncate)
			}
			for _, cw := range contentWriters {
				var buf bytes.Buffer
				err := cw.write(e.srv, context.Background(), hash, &buf)
				if !errors.Is(err, tt.want) || !strings.Contains(err.Error(), fmt.Sprintf("chunk %d (%s)", tt.first, cas.Sum(parts[tt.first]))) {
					t.Fatalf("%s: %v, want %v naming chunk %d", cw.name, err, tt.want, tt.first)
				}
				// Nothing from the damaged chunk on is written.
				good := len(bytes.Join(parts[:tt.first], nil))
				if !bytes.Equal(buf.Bytes(), data[:good]) {
					t.Errorf("%s wrote %d bytes, want the %d before chunk %d", cw.name, buf.Len(), good, tt.first)
				}
				noReadAhead(t)
			}
		})
	}
}

func TestWriteContentWrongChunkSize(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	_, chunks := e.storeParts(t, cas.Sum([]byte("right sizes")), unevenParts(3, 10))
	chunks[4].Size++
	// A list is stored once per content: the wrong one goes under a name
	// of its own.
	wrong := cas.Sum([]byte("wrong sizes"))
	if err := e.srv.db.PutChunkList(ctx, wrong, chunks); err != nil {
		t.Fatal(err)
	}
	for _, cw := range contentWriters {
		err := cw.write(e.srv, ctx, wrong, io.Discard)
		if !errors.Is(err, cas.ErrCorrupt) || !strings.Contains(err.Error(), "chunk 4 (") {
			t.Errorf("%s of a list with a wrong size: %v, want ErrCorrupt naming chunk 4", cw.name, err)
		}
	}
}

func TestStreamContentLeavesTheWholeToTheReceiver(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	parts := unevenParts(5, 8)
	// Intact chunks under the name of another content: only a check of the
	// whole can tell.
	forged := cas.Sum([]byte("another content"))
	e.storeParts(t, forged, parts)
	if err := e.srv.WriteContent(ctx, forged, io.Discard); !errors.Is(err, cas.ErrCorrupt) {
		t.Errorf("WriteContent of a forged list: %v, want ErrCorrupt", err)
	}
	h := blake3.New()
	if err := e.srv.StreamContent(ctx, forged, h); err != nil {
		t.Fatalf("StreamContent of a forged list: %v, want the bytes for the receiver to check", err)
	}
	if got := h.Sum(nil); bytes.Equal(got, forged[:]) || !bytes.Equal(got, sum(bytes.Join(parts, nil))) {
		t.Errorf("the receiver hashes %x, want the parts' hash, not %s", got, forged)
	}
	for _, hash := range []cas.ID{{}, cas.Sum([]byte("unknown"))} {
		if err := e.srv.StreamContent(ctx, hash, io.Discard); !errors.Is(err, syncproto.ErrBadRequest) && !errors.Is(err, syncproto.ErrNotFound) {
			t.Errorf("StreamContent of %s: %v", hash, err)
		}
	}
}

func sum(b []byte) []byte {
	id := cas.Sum(b)
	return id[:]
}

// stopWriter fails, or cancels a context, once it has taken limit bytes.
type stopWriter struct {
	n, limit int
	err      error
	cancel   context.CancelFunc
}

func (w *stopWriter) Write(p []byte) (int, error) {
	if w.n+len(p) > w.limit {
		if w.cancel != nil {
			w.cancel()
		} else {
			return 0, w.err
		}
	}
	w.n += len(p)
	return len(p), nil
}

func TestWriteContentStopsEarly(t *testing.T) {
	e := newEnv(t)
	hash, data := e.contentOf(t, unevenParts(4, 60)...)
	errFull := errors.New("disk full")
	for _, cw := range contentWriters {
		w := &stopWriter{limit: len(data) / 3, err: errFull}
		if err := cw.write(e.srv, context.Background(), hash, w); !errors.Is(err, errFull) {
			t.Errorf("%s, writer failing: %v, want its error", cw.name, err)
		}
		noReadAhead(t)

		ctx, cancel := context.WithCancel(context.Background())
		w = &stopWriter{limit: len(data) / 3, cancel: cancel}
		if err := cw.write(e.srv, ctx, hash, w); !errors.Is(err, context.Canceled) {
			t.Errorf("%s, context canceled while writing: %v, want context.Canceled", cw.name, err)
		}
		cancel()
		if w.n >= len(data) {
			t.Errorf("%s wrote all %d bytes after the context was canceled", cw.name, w.n)
		}
		noReadAhead(t)
	}
}

// noReadAhead fails if a goroutine of writeChunks is still running: once
// WriteContent has returned, none may be, even for a moment (no retries,
// unlike goleak).
func noReadAhead(t *testing.T) {
	t.Helper()
	buf := make([]byte, 1<<16)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			buf = buf[:n]
			break
		}
		buf = make([]byte, 2*len(buf))
	}
	for _, g := range strings.Split(string(buf), "\n\n") {
		if strings.Contains(g, "server.(*Server).writeChunks") {
			t.Fatalf("a goroutine of WriteContent outlived it:\n%s", g)
		}
	}
}
