package main

import (
	"bytes"
	"errors"
	"io"
	"math/rand/v2"
	"sync"
	"testing"

	"github.com/zeebo/blake3"
)

// recordReader hands out its data in reads of uneven sizes up to 16 KiB
// (a TLS record's worth), then fails with err, or ends with io.EOF.
type recordReader struct {
	data []byte
	err  error
	rng  *rand.Rand
}

func (r *recordReader) Read(p []byte) (int, error) {
	if len(r.data) == 0 {
		if r.err != nil {
			return 0, r.err
		}
		return 0, io.EOF
	}
	n := min(len(p), len(r.data), 1+r.rng.IntN(16<<10))
	copy(p, r.data[:n])
	r.data = r.data[n:]
	return n, nil
}

func newRecordReader(data []byte, err error) *recordReader {
	return &recordReader{data: data, err: err, rng: rand.New(rand.NewPCG(1, 2))}
}

func randomBytes(n int) []byte {
	rng := rand.New(rand.NewPCG(uint64(n), 3))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(rng.Uint32())
	}
	return b
}

func sum(b []byte) []byte {
	h := blake3.Sum256(b)
	return h[:]
}

func TestRestoreSinkReadFrom(t *testing.T) {
	// Sizes around the buffer size, and more bytes than all buffers hold.
	for _, size := range []int{0, 1, restoreBufSize - 1, restoreBufSize, restoreBufSize + 1, restoreBufs*restoreBufSize + 12345} {
		data := randomBytes(size)
		var out bytes.Buffer
		sink := &restoreSink{dst: &out, h: blake3.New()}
		n, err := io.Copy(sink, newRecordReader(data, nil))
		if err != nil || n != int64(size) {
			t.Fatalf("%d bytes: copied %d, %v", size, n, err)
		}
		if !bytes.Equal(out.Bytes(), data) {
			t.Fatalf("%d bytes: the file holds %d other bytes", size, out.Len())
		}
		if !bytes.Equal(sink.h.Sum(nil), sum(data)) {
			t.Fatalf("%d bytes: the hash is not the data's", size)
		}
	}
}

func TestRestoreSinkReadError(t *testing.T) {
	// A transfer cut short: the error is the reader's, not an early end,
	// and what arrived before it is written and hashed.
	data := randomBytes(3*restoreBufSize + 100)
	var out bytes.Buffer
	sink := &restoreSink{dst: &out, h: blake3.New()}
	n, err := sink.ReadFrom(newRecordReader(data, io.ErrUnexpectedEOF))
	if !errors.Is(err, io.ErrUnexpectedEOF) || n != int64(len(data)) {
		t.Fatalf("ReadFrom = %d, %v; want %d bytes and io.ErrUnexpectedEOF", n, err, len(data))
	}
	if !bytes.Equal(out.Bytes(), data) || !bytes.Equal(sink.h.Sum(nil), sum(data)) {
		t.Errorf("wrote %d bytes, want the %d that arrived", out.Len(), len(data))
	}
}

// failingFile takes limit bytes, then fails every write.
type failingFile struct {
	n, limit int
	err      error
}

func (f *failingFile) Write(p []byte) (int, error) {
	if f.n+len(p) > f.limit {
		return 0, f.err
	}
	f.n += len(p)
	return len(p), nil
}

func TestRestoreSinkWriteError(t *testing.T) {
	errFull := errors.New("no space left on device")
	size := 64 * restoreBufSize
	src := newStreamReader(size)
	sink := &restoreSink{dst: &failingFile{limit: 2 * restoreBufSize, err: errFull}, h: blake3.New()}
	if _, err := sink.ReadFrom(src); !errors.Is(err, errFull) {
		t.Fatalf("ReadFrom onto a full disk: %v, want its error", err)
	}
	// It stops reading once the file fails, give or take the buffers
	// already in flight.
	if read, limit := size-src.left, (3+restoreBufs)*restoreBufSize; read > limit {
		t.Errorf("read %d bytes after the file failed at %d", read, 2*restoreBufSize)
	}
}

func TestRestoreSinkWrite(t *testing.T) {
	// The offline path writes chunk by chunk.
	var out bytes.Buffer
	sink := &restoreSink{dst: &out, h: blake3.New()}
	for _, p := range [][]byte{[]byte("chunk one, "), []byte("chunk two")} {
		if _, err := sink.Write(p); err != nil {
			t.Fatal(err)
		}
	}
	if out.String() != "chunk one, chunk two" || !bytes.Equal(sink.h.Sum(nil), sum(out.Bytes())) {
		t.Errorf("wrote %q", out.String())
	}
}

// syncingFile counts what it is written, hashes it and records how much
// it held at each Sync, which may run while it is written; Sync fails with
// err, if set.
type syncingFile struct {
	mu    sync.Mutex
	n     int
	h     *blake3.Hasher
	syncs []int
	err   error
}

func (f *syncingFile) Write(p []byte) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.n += len(p)
	_, _ = f.h.Write(p)
	return len(p), nil
}

func (f *syncingFile) Sync() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.syncs = append(f.syncs, f.n)
	return f.err
}

// streamReader hands out n bytes of a repeating random block without
// holding them all.
type streamReader struct {
	left, pos int
	block     []byte
}

func newStreamReader(n int) *streamReader {
	return &streamReader{left: n, block: randomBytes(64<<10 + 7)}
}

func (r *streamReader) Read(p []byte) (int, error) {
	if r.left == 0 {
		return 0, io.EOF
	}
	n := copy(p[:min(len(p), r.left, 16<<10)], r.block[r.pos:])
	r.pos = (r.pos + n) % len(r.block)
	r.left -= n
	return n, nil
}

func TestRestoreSinkSyncsAlongTheWay(t *testing.T) {
	size := 4*restoreSyncEvery + restoreSyncEvery/2
	dst := &syncingFile{h: blake3.New()}
	sink := &restoreSink{dst: dst, h: blake3.New()}
	n, err := sink.ReadFrom(newStreamReader(size))
	if err != nil || n != int64(size) || dst.n != size {
		t.Fatalf("ReadFrom = %d, %v; the file got %d of %d bytes", n, err, dst.n, size)
	}
	if !bytes.Equal(dst.h.Sum(nil), sink.h.Sum(nil)) {
		t.Error("the file and the hash saw different bytes")
	}
	// Requests made while a sync runs are merged, and the tail is left to
	// the commit's own fsync; but the first comes once restoreSyncEvery
	// bytes are written, long before the end.
	if len(dst.syncs) == 0 || len(dst.syncs) > size/restoreSyncEvery || dst.syncs[0] < restoreSyncEvery || dst.syncs[0] >= size {
		t.Errorf("synced with %v bytes written, want a first sync from %d on and at most %d", dst.syncs, restoreSyncEvery, size/restoreSyncEvery)
	}
}

func TestRestoreSinkSyncError(t *testing.T) {
	errIO := errors.New("input/output error")
	dst := &syncingFile{h: blake3.New(), err: errIO}
	size := 64 * restoreSyncEvery
	src := newStreamReader(size)
	sink := &restoreSink{dst: dst, h: blake3.New()}
	if _, err := sink.ReadFrom(src); !errors.Is(err, errIO) {
		t.Fatalf("a failing sync: %v, want its error", err)
	}
	if len(dst.syncs) != 1 || src.left == 0 {
		t.Errorf("went on after the sync failed: %d syncs, all %d bytes read", len(dst.syncs), size)
	}
}
