package blockcache

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// remote is the object store at the edge of the cache: objects in memory,
// every Fetch recorded.
type remote struct {
	mu       sync.Mutex
	objects  map[uint64][]byte
	calls    []fetchCall
	failNext map[uint64]error
	// hook, when set, runs before each fetch is served; n counts calls
	// from 1. An error it returns is the fetch's.
	hook func(ctx context.Context, n int) error
}

type fetchCall struct {
	key uint64
	off int64
	len int
}

func newRemote() *remote {
	return &remote{objects: make(map[uint64][]byte), failNext: make(map[uint64]error)}
}

// add stores a pseudo-random object of size bytes under key.
func (s *remote) add(key uint64, size int) []byte {
	rng := rand.New(rand.NewPCG(key, uint64(size)))
	b := make([]byte, size)
	for i := range b {
		b[i] = byte(rng.Uint32())
	}
	s.mu.Lock()
	s.objects[key] = b
	s.mu.Unlock()
	return b
}

func (s *remote) fetch(ctx context.Context, key uint64, p []byte, off int64) (int, error) {
	s.mu.Lock()
	s.calls = append(s.calls, fetchCall{key, off, len(p)})
	n := len(s.calls)
	obj, ok := s.objects[key]
	failure := s.failNext[key]
	delete(s.failNext, key)
	hook := s.hook
	s.mu.Unlock()
	if hook != nil {
		if err := hook(ctx, n); err != nil {
			return 0, err
		}
	}
	if failure != nil {
		return 0, failure
	}
	if !ok {
		return 0, fmt.Errorf("no object %d", key)
	}
	if off >= int64(len(obj)) {
		return 0, io.EOF
	}
	got := copy(p, obj[off:])
	if off+int64(got) == int64(len(obj)) {
		// io.ReaderAt may say EOF with a full read at the end; the cache
		// must accept that.
		return got, io.EOF
	}
	return got, nil
}

func (s *remote) fetches() []fetchCall {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]fetchCall(nil), s.calls...)
}

func (s *remote) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.calls)
}

func newCache(t testing.TB, opts Options, s *remote) *Cache {
	t.Helper()
	c, err := New(opts, s.fetch)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := c.Close(); err != nil {
			t.Error(err)
		}
	})
	return c
}

// read reads [off, off+n) of key and checks the bytes against want.
func read(t testing.TB, c *Cache, key uint64, want []byte, off, n int) {
	t.Helper()
	p := make([]byte, n)
	if err := c.ReadAt(t.Context(), key, int64(len(want)), p, int64(off)); err != nil {
		t.Fatalf("ReadAt(key %d, [%d, %d)): %v", key, off, off+n, err)
	}
	if !bytes.Equal(p, want[off:off+n]) {
		t.Fatalf("ReadAt(key %d, [%d, %d)) returned wrong bytes", key, off, off+n)
	}
}

// blockFiles lists the block files in dir with their sizes.
func blockFiles(t testing.TB, dir string) map[string]int64 {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	files := make(map[string]int64)
	for _, de := range ents {
		if !strings.HasSuffix(de.Name(), blockSuffix) && !strings.HasPrefix(de.Name(), tmpPrefix) {
			continue
		}
		fi, err := de.Info()
		if err != nil {
			t.Fatal(err)
		}
		files[de.Name()] = fi.Size()
	}
	return files
}

func dirBytes(t testing.TB, dir string) int64 {
	t.Helper()
	var total int64
	for _, size := range blockFiles(t, dir) {
		total += size
	}
	return total
}

func wantFetches(t *testing.T, s *remote, want ...fetchCall) {
	t.Helper()
	got := s.fetches()
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("fetches = %v, want %v", got, want)
	}
}

// waitFor polls until cond holds; the test's deadline bounds it.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for !cond() {
		select {
		case <-t.Context().Done():
			t.Fatalf("gave up waiting for %s", what)
		case <-time.After(time.Millisecond):
		}
	}
}

const bs = 4096

func TestHitMakesNoFetch(t *testing.T) {
	s := newRemote()
	obj := s.add(1, 10000)
	c := newCache(t, Options{Dir: t.TempDir(), MaxBytes: 16 * bs, BlockSize: bs}, s)

	read(t, c, 1, obj, 100, 100)
	wantFetches(t, s, fetchCall{1, 0, bs})
	read(t, c, 1, obj, 300, 100)
	read(t, c, 1, obj, 0, bs)
	wantFetches(t, s, fetchCall{1, 0, bs})

	// Only the block not yet cached is fetched.
	read(t, c, 1, obj, bs-10, 20)
	wantFetches(t, s, fetchCall{1, 0, bs}, fetchCall{1, bs, bs})

	st := c.Stats()
	if st.Hits != 3 || st.Misses != 2 || st.Fetches != 2 || st.FetchedBytes != 2*bs || st.Blocks != 2 || st.Bytes != 2*bs {
		t.Errorf("stats = %+v", st)
	}
}

func TestReadSpanningBlocks(t *testing.T) {
	s := newRemote()
	obj := s.add(1, 20000)
	c := newCache(t, Options{Dir: t.TempDir(), MaxBytes: 16 * bs, BlockSize: bs}, s)

	// Four missing blocks in a row: one fetch.
	read(t, c, 1, obj, 1000, 3*bs)
	wantFetches(t, s, fetchCall{1, 0, 4 * bs})
	if st := c.Stats(); st.Misses != 4 || st.Blocks != 4 {
		t.Errorf("stats = %+v, want 4 misses and 4 blocks", st)
	}
	read(t, c, 1, obj, 0, 4*bs)
	if n := s.count(); n != 1 {
		t.Errorf("%d fetches after re-reading cached blocks, want 1", n)
	}
}

func TestReadAroundCachedBlock(t *testing.T) {
	s := newRemote()
	obj := s.add(1, 20000)
	c := newCache(t, Options{Dir: t.TempDir(), MaxBytes: 16 * bs, BlockSize: bs}, s)

	read(t, c, 1, obj, bs+5, 10)
	// Blocks 0 to 3: block 1 is cached, so 0 is one run and 2–3 another.
	read(t, c, 1, obj, 7, 4*bs-20)
	wantFetches(t, s, fetchCall{1, bs, bs}, fetchCall{1, 0, bs}, fetchCall{1, 2 * bs, 2 * bs})
	if st := c.Stats(); st.Hits != 1 {
		t.Errorf("hits = %d, want 1", st.Hits)
	}
}

func TestShortLastBlock(t *testing.T) {
	s := newRemote()
	const size = 2*bs + 1808
	obj := s.add(1, size)
	dir := t.TempDir()
	c := newCache(t, Options{Dir: dir, MaxBytes: 16 * bs, BlockSize: bs}, s)

	read(t, c, 1, obj, size-10, 10)
	wantFetches(t, s, fetchCall{1, 2 * bs, 1808})
	files := blockFiles(t, dir)
	if len(files) != 1 {
		t.Fatalf("block files = %v, want one", files)
	}
	for name, n := range files {
		if n != 1808 {
			t.Errorf("%s holds %d bytes, want 1808", name, n)
		}
	}
	read(t, c, 1, obj, 2*bs, 1808)
	read(t, c, 1, obj, 0, size)
	wantFetches(t, s, fetchCall{1, 2 * bs, 1808}, fetchCall{1, 0, 2 * bs})
}

func TestReadPastSizeFails(t *testing.T) {
	s := newRemote()
	obj := s.add(1, 10000)
	c := newCache(t, Options{Dir: t.TempDir(), MaxBytes: 16 * bs, BlockSize: bs}, s)
	ctx := t.Context()

	for _, tc := range []struct {
		name      string
		size, off int64
		n         int
		eof       bool
	}{
		{"one byte past the end", 10000, 9990, 11, true},
		{"starts past the end", 10000, 10001, 1, true},
		{"empty read past the end", 10000, 10001, 0, true},
		{"negative offset", 10000, -1, 10, false},
		{"negative size", -1, 0, 1, false},
	} {
		err := c.ReadAt(ctx, 1, tc.size, make([]byte, tc.n), tc.off)
		if err == nil {
			t.Errorf("%s: no error", tc.name)
			continue
		}
		if tc.eof && !errors.Is(err, io.ErrUnexpectedEOF) {
			t.Errorf("%s: %v, want io.ErrUnexpectedEOF", tc.name, err)
		}
	}
	if n := s.count(); n != 0 {
		t.Errorf("%d fetches for reads out of range, want 0", n)
	}
	if err := c.ReadAt(ctx, 1, 10000, nil, 10000); err != nil {
		t.Errorf("empty read at the end: %v", err)
	}

	// The caller claims a bigger object than the store holds: the short
	// fetch is an error, and nothing is cached.
	err := c.ReadAt(ctx, 1, 20000, make([]byte, 100), 12000)
	if !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Errorf("read beyond the stored object: %v, want io.ErrUnexpectedEOF", err)
	}
	if st := c.Stats(); st.Blocks != 0 || st.Bytes != 0 {
		t.Errorf("stats after failed read = %+v, want nothing cached", st)
	}
	read(t, c, 1, obj, 9000, 1000)
}

func TestLRUEviction(t *testing.T) {
	s := newRemote()
	objs := make(map[uint64][]byte)
	for key := uint64(1); key <= 4; key++ {
		objs[key] = s.add(key, bs)
	}
	c := newCache(t, Options{Dir: t.TempDir(), MaxBytes: 3 * bs, BlockSize: bs}, s)
	readKeys := func(keys ...uint64) {
		t.Helper()
		for _, key := range keys {
			read(t, c, key, objs[key], 0, 10)
		}
	}
	readKeys(1, 2, 3, 1)
	readKeys(4) // 2 is the least recently used
	if n := s.count(); n != 4 {
		t.Fatalf("%d fetches, want 4", n)
	}
	readKeys(1, 3, 4)
	if n := s.count(); n != 4 {
		t.Fatalf("%d fetches after reading cached keys, want 4", n)
	}
	readKeys(2)
	if n := s.count(); n != 5 {
		t.Fatalf("%d fetches after reading the evicted key, want 5", n)
	}
}

func TestEvictionKeepsDirUnderMaxBytes(t *testing.T) {
	s := newRemote()
	rng := rand.New(rand.NewPCG(7, 7))
	objs := make(map[uint64][]byte)
	for key := uint64(1); key <= 8; key++ {
		objs[key] = s.add(key, 5000+rng.IntN(25000))
	}
	dir := t.TempDir()
	const maxBytes = 5*bs + 100
	c := newCache(t, Options{Dir: dir, MaxBytes: maxBytes, BlockSize: bs}, s)

	for range 300 {
		key := uint64(1 + rng.IntN(8))
		obj := objs[key]
		n := min(1+rng.IntN(3*bs), len(obj))
		off := rng.IntN(len(obj) - n + 1)
		read(t, c, key, obj, off, n)
		got := dirBytes(t, dir)
		if got > maxBytes {
			t.Fatalf("cache directory holds %d bytes, bound %d", got, maxBytes)
		}
		if st := c.Stats(); st.Bytes != got {
			t.Fatalf("Stats.Bytes = %d, directory holds %d", st.Bytes, got)
		}
	}
	if st := c.Stats(); st.Hits == 0 || st.Blocks == 0 {
		t.Errorf("stats = %+v: the cache never served anything", st)
	}
}

func TestReadLargerThanMaxBytes(t *testing.T) {
	s := newRemote()
	obj := s.add(1, 10*bs)
	dir := t.TempDir()
	c := newCache(t, Options{Dir: dir, MaxBytes: 2 * bs, BlockSize: bs}, s)

	read(t, c, 1, obj, 0, 10*bs)
	if got := dirBytes(t, dir); got > 2*bs {
		t.Fatalf("cache directory holds %d bytes, bound %d", got, 2*bs)
	}
	if st := c.Stats(); st.Blocks != 2 {
		t.Errorf("%d blocks cached, want 2", st.Blocks)
	}
	// The tail of the read is kept: a sequential reader goes on there.
	read(t, c, 1, obj, 8*bs, 2*bs)
	if n := s.count(); n != 1 {
		t.Errorf("%d fetches after re-reading the tail, want 1", n)
	}
	read(t, c, 1, obj, 0, 10)
	if n := s.count(); n != 2 {
		t.Errorf("%d fetches after reading the head, want 2", n)
	}
}

func TestForget(t *testing.T) {
	s := newRemote()
	one, two := s.add(1, 3*bs), s.add(2, 3*bs)
	dir := t.TempDir()
	c := newCache(t, Options{Dir: dir, MaxBytes: 16 * bs, BlockSize: bs}, s)
	read(t, c, 1, one, 0, 3*bs)
	read(t, c, 2, two, 0, 10)

	c.Forget(1)
	for name := range blockFiles(t, dir) {
		if strings.HasPrefix(name, fmt.Sprintf("%016x-", 1)) {
			t.Errorf("block file %s of a forgotten key is still there", name)
		}
	}
	if st := c.Stats(); st.Blocks != 1 || st.Bytes != bs || dirBytes(t, dir) != bs {
		t.Errorf("stats after Forget = %+v, directory %d bytes; want one block", st, dirBytes(t, dir))
	}
	read(t, c, 2, two, 0, 10)
	if n := s.count(); n != 2 {
		t.Fatalf("%d fetches, want 2: Forget(1) dropped key 2", n)
	}
	read(t, c, 1, one, 0, 10)
	if n := s.count(); n != 3 {
		t.Fatalf("%d fetches, want 3: key 1 served after Forget", n)
	}
}

func TestForgetDuringFetch(t *testing.T) {
	s := newRemote()
	obj := s.add(1, bs)
	dir := t.TempDir()
	c := newCache(t, Options{Dir: dir, MaxBytes: 16 * bs, BlockSize: bs}, s)
	s.hook = func(ctx context.Context, n int) error {
		if n == 1 {
			c.Forget(1) // the object is deleted while its bytes are on the way
		}
		return nil
	}
	read(t, c, 1, obj, 0, 10)
	if st := c.Stats(); st.Blocks != 0 || len(blockFiles(t, dir)) != 0 {
		t.Errorf("stats = %+v, files %v: a block forgotten during its fetch was cached", st, blockFiles(t, dir))
	}
}

func TestConcurrentReadersShareOneFetch(t *testing.T) {
	s := newRemote()
	obj := s.add(1, 3*bs)
	c := newCache(t, Options{Dir: t.TempDir(), MaxBytes: 16 * bs, BlockSize: bs}, s)
	const readers = 8
	// Hold the fetch until every reader has found the block missing, so
	// all of them really are waiting on it.
	s.hook = func(ctx context.Context, n int) error {
		for c.Stats().Misses < readers {
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(time.Millisecond):
			}
		}
		return nil
	}
	var wg sync.WaitGroup
	for i := range readers {
		wg.Go(func() {
			off := bs + i*100
			p := make([]byte, 50)
			if err := c.ReadAt(t.Context(), 1, int64(len(obj)), p, int64(off)); err != nil {
				t.Error(err)
				return
			}
			if !bytes.Equal(p, obj[off:off+50]) {
				t.Errorf("reader %d got wrong bytes", i)
			}
		})
	}
	wg.Wait()
	if st := c.Stats(); st.Fetches != 1 || st.Misses != readers || st.Hits != 0 {
		t.Errorf("stats = %+v, want 1 fetch shared by %d readers", st, readers)
	}
}

func TestOwnerCanceledWaiterFetches(t *testing.T) {
	s := newRemote()
	obj := s.add(1, bs)
	c := newCache(t, Options{Dir: t.TempDir(), MaxBytes: 16 * bs, BlockSize: bs}, s)
	started := make(chan struct{})
	s.hook = func(ctx context.Context, n int) error {
		if n == 1 {
			close(started)
			<-ctx.Done()
			return ctx.Err()
		}
		return nil
	}
	ownerCtx, cancel := context.WithCancel(t.Context())
	defer cancel()
	ownerErr := make(chan error, 1)
	go func() { ownerErr <- c.ReadAt(ownerCtx, 1, bs, make([]byte, 10), 0) }()
	<-started

	waiterErr := make(chan error, 1)
	p := make([]byte, 10)
	go func() { waiterErr <- c.ReadAt(t.Context(), 1, bs, p, 20) }()
	waitFor(t, "the second reader to join the fetch", func() bool { return c.Stats().Misses == 2 })
	cancel()

	if err := <-ownerErr; !errors.Is(err, context.Canceled) {
		t.Errorf("canceled reader: %v, want context.Canceled", err)
	}
	// The owner's cancellation is not the waiter's failure: it fetches.
	if err := <-waiterErr; err != nil {
		t.Fatalf("waiter: %v", err)
	}
	if !bytes.Equal(p, obj[20:30]) {
		t.Error("waiter got wrong bytes")
	}
	if n := s.count(); n != 2 {
		t.Errorf("%d fetches, want 2", n)
	}
}

func TestWaiterHonorsItsContext(t *testing.T) {
	s := newRemote()
	obj := s.add(1, bs)
	c := newCache(t, Options{Dir: t.TempDir(), MaxBytes: 16 * bs, BlockSize: bs}, s)
	started, release := make(chan struct{}), make(chan struct{})
	s.hook = func(ctx context.Context, n int) error {
		if n == 1 {
			close(started)
			<-release
		}
		return nil
	}
	ownerErr := make(chan error, 1)
	p := make([]byte, 10)
	go func() { ownerErr <- c.ReadAt(t.Context(), 1, bs, p, 0) }()
	<-started

	waiterCtx, cancel := context.WithCancel(t.Context())
	waiterErr := make(chan error, 1)
	go func() { waiterErr <- c.ReadAt(waiterCtx, 1, bs, make([]byte, 10), 0) }()
	waitFor(t, "the second reader to join the fetch", func() bool { return c.Stats().Misses == 2 })
	cancel()
	// The fetch is still held: the waiter returns on its own context.
	if err := <-waiterErr; !errors.Is(err, context.Canceled) {
		t.Errorf("waiter: %v, want context.Canceled", err)
	}
	close(release)
	if err := <-ownerErr; err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(p, obj[:10]) {
		t.Error("owner got wrong bytes")
	}
	read(t, c, 1, obj, 0, 10)
	if n := s.count(); n != 1 {
		t.Errorf("%d fetches, want 1", n)
	}
}

func TestFetchErrorNotCached(t *testing.T) {
	s := newRemote()
	obj := s.add(1, 3*bs)
	dir := t.TempDir()
	c := newCache(t, Options{Dir: dir, MaxBytes: 16 * bs, BlockSize: bs}, s)
	errStore := errors.New("store unavailable")
	s.failNext[1] = errStore

	err := c.ReadAt(t.Context(), 1, int64(len(obj)), make([]byte, 100), 5000)
	if !errors.Is(err, errStore) {
		t.Fatalf("ReadAt: %v, want the fetch error", err)
	}
	if msg := err.Error(); !strings.Contains(msg, "key 1 ") || !strings.Contains(msg, "offset 5000 ") {
		t.Errorf("error %q does not name the key and offset", msg)
	}
	if st := c.Stats(); st.Blocks != 0 || len(blockFiles(t, dir)) != 0 {
		t.Errorf("stats = %+v after a failed fetch, want nothing cached", st)
	}
	read(t, c, 1, obj, 5000, 100)
	read(t, c, 1, obj, 5000, 100)
	wantFetches(t, s, fetchCall{1, bs, bs}, fetchCall{1, bs, bs})
}

func TestDamagedBlockRefetched(t *testing.T) {
	for _, tc := range []struct {
		name   string
		damage func(path string) error
	}{
		{"truncated", func(path string) error { return os.Truncate(path, 100) }},
		{"emptied", func(path string) error { return os.Truncate(path, 0) }},
		{"extended", func(path string) error {
			f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
			if err != nil {
				return err
			}
			_, err = f.Write([]byte("junk"))
			return errors.Join(err, f.Close())
		}},
		{"removed", os.Remove},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newRemote()
			obj := s.add(1, 2*bs)
			dir := t.TempDir()
			c := newCache(t, Options{Dir: dir, MaxBytes: 16 * bs, BlockSize: bs}, s)
			read(t, c, 1, obj, 10, 50)
			files := blockFiles(t, dir)
			if len(files) != 1 {
				t.Fatalf("block files = %v, want one", files)
			}
			for name := range files {
				if err := tc.damage(filepath.Join(dir, name)); err != nil {
					t.Fatal(err)
				}
			}

			read(t, c, 1, obj, 10, 50)
			if n := s.count(); n != 2 {
				t.Fatalf("%d fetches, want 2: the damaged block was served", n)
			}
			read(t, c, 1, obj, 10, 50)
			if n := s.count(); n != 2 {
				t.Fatalf("%d fetches, want 2: the refetched block was not cached", n)
			}
			st := c.Stats()
			if st.DiskErrors != 1 || st.Blocks != 1 || st.Bytes != bs || dirBytes(t, dir) != bs {
				t.Errorf("stats = %+v, directory %d bytes", st, dirBytes(t, dir))
			}
		})
	}
}

func TestPassThrough(t *testing.T) {
	s := newRemote()
	obj := s.add(1, 3*bs)
	dir := filepath.Join(t.TempDir(), "cache")
	c := newCache(t, Options{Dir: dir, MaxBytes: 0, BlockSize: bs}, s)

	read(t, c, 1, obj, 5, 100)
	read(t, c, 1, obj, 5, 100)
	read(t, c, 1, obj, 0, 3*bs)
	wantFetches(t, s, fetchCall{1, 5, 100}, fetchCall{1, 5, 100}, fetchCall{1, 0, 3 * bs})
	if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("pass-through cache touched its directory: %v", err)
	}
	if st := c.Stats(); st.Hits != 0 || st.Misses != 0 || st.Fetches != 3 || st.Bytes != 0 {
		t.Errorf("stats = %+v", st)
	}
	s.failNext[1] = io.ErrUnexpectedEOF
	if err := c.ReadAt(t.Context(), 1, int64(len(obj)), make([]byte, 10), 0); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Errorf("failed fetch: %v", err)
	}
}

func TestNewClearsOldBlocks(t *testing.T) {
	dir := t.TempDir()
	for name, content := range map[string]string{
		"0000000000000001-0-1.blk": "stale block",
		tmpPrefix + "123":          "torn",
		"keep.txt":                 "not ours",
	} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	s := newRemote()
	obj := s.add(1, 11)
	c := newCache(t, Options{Dir: dir, MaxBytes: 16 * bs, BlockSize: bs}, s)
	if files := blockFiles(t, dir); len(files) != 0 {
		t.Errorf("files left from an earlier process: %v", files)
	}
	if _, err := os.Stat(filepath.Join(dir, "keep.txt")); err != nil {
		t.Errorf("a file that is not the cache's was touched: %v", err)
	}
	read(t, c, 1, obj, 0, 11)
	if n := s.count(); n != 1 {
		t.Errorf("%d fetches, want 1", n)
	}
}

func TestClose(t *testing.T) {
	s := newRemote()
	obj := s.add(1, 2*bs)
	dir := t.TempDir()
	c, err := New(Options{Dir: dir, MaxBytes: 16 * bs, BlockSize: bs}, s.fetch)
	if err != nil {
		t.Fatal(err)
	}
	read(t, c, 1, obj, 0, 2*bs)
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if files := blockFiles(t, dir); len(files) != 0 {
		t.Errorf("block files after Close: %v", files)
	}
	if err := c.ReadAt(t.Context(), 1, 2*bs, make([]byte, 10), 0); !errors.Is(err, ErrClosed) {
		t.Errorf("ReadAt after Close: %v, want ErrClosed", err)
	}
	if err := c.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

// TestEvictedWhileReading holds a block as a reader between lookup and
// read does, evicts it, and checks that its file stays whole until the
// reader lets go, and still counts against the bound meanwhile.
func TestEvictedWhileReading(t *testing.T) {
	s := newRemote()
	objs := map[uint64][]byte{1: s.add(1, bs), 2: s.add(2, bs), 3: s.add(3, bs)}
	dir := t.TempDir()
	c := newCache(t, Options{Dir: dir, MaxBytes: 2 * bs, BlockSize: bs}, s)
	read(t, c, 1, objs[1], 0, 10)

	c.mu.Lock()
	held := c.blocks[1][0]
	held.pins++
	c.mu.Unlock()

	read(t, c, 2, objs[2], 0, 10)
	read(t, c, 3, objs[3], 0, 10) // evicts 1, the least recently used
	if got := dirBytes(t, dir); got > 2*bs {
		t.Errorf("directory holds %d bytes, bound %d", got, 2*bs)
	}
	got, err := os.ReadFile(held.path)
	if err != nil {
		t.Fatalf("block evicted under a reader: %v", err)
	}
	if !bytes.Equal(got, objs[1]) {
		t.Error("block evicted under a reader changed")
	}
	if st := c.Stats(); st.Blocks != 1 || st.Bytes != 2*bs {
		t.Errorf("stats while the evicted block is held = %+v, want 1 block, %d bytes", st, 2*bs)
	}

	c.unpin([]*entry{held})
	if _, err := os.Stat(held.path); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("evicted block outlived its last reader: %v", err)
	}
	if st := c.Stats(); st.Bytes != bs || dirBytes(t, dir) != bs {
		t.Errorf("Stats.Bytes = %d, directory %d bytes, want %d", st.Bytes, dirBytes(t, dir), bs)
	}
}

// TestConcurrentReads runs readers over overlapping ranges of a few keys
// through a cache too small for them, with Forget mixed in, and checks every
// byte read and the bound.
func TestConcurrentReads(t *testing.T) {
	s := newRemote()
	const blockSize = 1024
	objs := make(map[uint64][]byte)
	for key := uint64(1); key <= 4; key++ {
		objs[key] = s.add(key, 20000+int(key)*3333)
	}
	dir := t.TempDir()
	const maxBytes = 8 * blockSize
	c := newCache(t, Options{Dir: dir, MaxBytes: maxBytes, BlockSize: blockSize}, s)

	var wg sync.WaitGroup
	for g := range 6 {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(g), 99))
			p := make([]byte, 5000)
			for i := range 200 {
				key := uint64(1 + rng.IntN(4))
				obj := objs[key]
				if i%50 == 49 {
					c.Forget(key)
				}
				n := 1 + rng.IntN(len(p))
				off := rng.IntN(len(obj) - n + 1)
				if err := c.ReadAt(t.Context(), key, int64(len(obj)), p[:n], int64(off)); err != nil {
					t.Error(err)
					return
				}
				if !bytes.Equal(p[:n], obj[off:off+n]) {
					t.Errorf("key %d [%d, %d): wrong bytes", key, off, off+n)
					return
				}
			}
		})
	}
	wg.Wait()
	got := dirBytes(t, dir)
	if got > maxBytes {
		t.Errorf("directory holds %d bytes, bound %d", got, maxBytes)
	}
	if st := c.Stats(); st.Bytes != got || st.DiskErrors != 0 {
		t.Errorf("stats = %+v, directory %d bytes", st, got)
	}
}

func TestNewRejectsBadOptions(t *testing.T) {
	fetch := newRemote().fetch
	dir := t.TempDir()
	for _, tc := range []struct {
		name  string
		opts  Options
		fetch Fetch
	}{
		{"nil fetch", Options{Dir: dir, MaxBytes: 1 << 30}, nil},
		{"negative block size", Options{Dir: dir, MaxBytes: 1 << 30, BlockSize: -1}, fetch},
		{"huge block size", Options{Dir: dir, MaxBytes: 1 << 40, BlockSize: MaxBlockSize + 1}, fetch},
		{"negative bound", Options{Dir: dir, MaxBytes: -1}, fetch},
		{"bound below one block", Options{Dir: dir, MaxBytes: bs - 1, BlockSize: bs}, fetch},
		{"no directory", Options{MaxBytes: 1 << 30}, fetch},
	} {
		if c, err := New(tc.opts, tc.fetch); err == nil {
			_ = c.Close()
			t.Errorf("%s: New accepted %+v", tc.name, tc.opts)
		}
	}
}

func BenchmarkReadAtHit(b *testing.B) {
	for _, n := range []int{4 << 10, 64 << 10} {
		b.Run(fmt.Sprintf("%dKiB", n>>10), func(b *testing.B) {
			s := newRemote()
			obj := s.add(1, 8<<20)
			c := newCache(b, Options{Dir: b.TempDir(), MaxBytes: 16 << 20}, s)
			read(b, c, 1, obj, 0, len(obj))
			ctx := b.Context()
			p := make([]byte, n)
			off := int64(0)
			b.SetBytes(int64(n))
			for b.Loop() {
				if err := c.ReadAt(ctx, 1, int64(len(obj)), p, off); err != nil {
					b.Fatal(err)
				}
				off = (off + 12345) % int64(len(obj)-n)
			}
			if st := c.Stats(); st.Fetches != 1 {
				b.Fatalf("%d fetches during the benchmark, want 1", st.Fetches)
			}
		})
	}
}
