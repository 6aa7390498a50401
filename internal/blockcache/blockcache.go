// Package blockcache keeps recently read parts of remote objects on local
// disk, so that ranged reads of an object store cost a few large GETs
// instead of one small GET per read. quics uses it for sealed pack files
// in an S3-backed chunk store: packs are immutable and named by a uint64,
// and restoring a file reads many neighboring records of the same packs.
//
// # Blocks
//
// An object is cut into aligned blocks of [Options.BlockSize] bytes; the last
// block of an object is short unless the size is a multiple of the block
// size. [Cache.ReadAt] serves the blocks it finds on disk and fetches the
// others, one Fetch call for each run of consecutive missing blocks, so a
// 100-byte read costs a whole block on a miss and nothing on the next read
// nearby. The caller says how big the object is; the cache never asks.
//
// # Sharing fetches
//
// While a block is being fetched it has a flight. A reader that needs a
// block already in flight waits for it and copies its bytes from memory
// instead of fetching again. A reader claims every missing block of its
// range and fetches all of them before it waits for anyone else's, so two
// readers with overlapping ranges cannot wait on each other. When the owner
// of a flight gives up because its own context ended, the readers waiting
// on it fetch for themselves; any other Fetch error reaches every reader
// that waited, and is then forgotten: the next read fetches again.
//
// # Bound and eviction
//
// The bytes of all block files, counting files still being written, stay
// at or under [Options.MaxBytes]: room is made by evicting the least
// recently used blocks before a block is written. A read larger than the
// bound still works; only the blocks at its end that fit are kept, because
// the next read of a sequential restore starts there. A block that a reader
// is reading when it is evicted stays on disk until that reader is done,
// and still counts against the bound until then.
//
// # On disk
//
// Each block is a file in [Options.Dir] named
// <key as 16 hex digits>-<block index in hex>-<generation in hex>.blk. It is
// written to a temporary file (".blk-tmp-*") and renamed into place, and
// only then entered in the index, so a reader never sees a torn block. The
// generation makes every file name unique, so removing an evicted file can
// never remove a newer copy of the same block. A block file whose length is
// not the length the block must have is treated as a miss and refetched.
// Contents are not checksummed: callers verify what they read (cas checks
// every chunk's hash) and can [Cache.Forget] an object that failed.
//
// # Restart
//
// [New] removes the block and temporary files a previous process left in
// Dir instead of reusing them: the cache cannot tell whether an object
// number still names the same bytes (another bucket, a reused number, a
// different block size), and serving stale bytes is worse than a cold cache.
// Other files in Dir are left alone. [Cache.Close] removes the block files.
// One process at a time may use a Dir.
package blockcache

import (
	"container/list"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
)

const (
	// DefaultBlockSize is the block size when Options.BlockSize is 0.
	DefaultBlockSize = 1 << 20
	// MaxBlockSize bounds Options.BlockSize: every miss fetches and holds
	// at least one block in memory, and packs are about 32 MiB.
	MaxBlockSize = 64 << 20

	blockSuffix = ".blk"
	tmpPrefix   = ".blk-tmp-"
)

// ErrClosed is returned by ReadAt after Close.
var ErrClosed = errors.New("blockcache: closed")

// errNotTried completes the flights of blocks whose run came after a run
// that failed: their waiters fetch for themselves.
var errNotTried = errors.New("fetch not attempted after an earlier run failed")

// Fetch reads len(p) bytes of object key at off from the remote store, like
// io.ReaderAt: it returns n < len(p) only with an error (io.EOF or
// io.ErrUnexpectedEOF at the end of the object), and may return io.EOF
// with n == len(p) when the range ends the object.
type Fetch func(ctx context.Context, key uint64, p []byte, off int64) (int, error)

// Options configure a Cache.
type Options struct {
	// Dir holds the block files. It is created if missing; block files
	// left in it by an earlier process are removed (see the package doc).
	// Not needed when MaxBytes is 0.
	Dir string
	// MaxBytes bounds the bytes of block files in Dir. 0 disables caching:
	// every ReadAt is one Fetch of exactly the bytes asked for. Otherwise
	// it must be at least BlockSize.
	MaxBytes int64
	// BlockSize is the unit of caching and fetching; 0 means
	// DefaultBlockSize.
	BlockSize int64
}

// Stats are counters since New, and the cache's current size.
type Stats struct {
	Hits         int64 // blocks served from disk
	Misses       int64 // blocks not on disk when read: fetched, or taken from another reader's fetch
	Fetches      int64 // calls to Fetch
	FetchedBytes int64 // bytes returned by Fetch
	Bytes        int64 // bytes of block files in Dir, including ones being written or still being read after eviction
	Blocks       int64 // blocks in the index
	DiskErrors   int64 // block files that could not be written, read back whole, or removed
}

// Cache is a bounded on-disk cache of blocks of remote objects. It is safe
// for concurrent use.
type Cache struct {
	dir       string
	maxBytes  int64
	blockSize int64
	fetch     Fetch

	hits, misses, fetches, fetchedBytes, diskErrors atomic.Int64

	mu      sync.Mutex
	closed  bool
	bytes   int64                       // reserved or on disk, see Stats.Bytes
	blocks  map[uint64]map[int64]*entry // by key, then block index
	count   int64                       // entries in blocks
	lru     list.List                   // of *entry; most recently used at the front
	flights map[blockID]*flight
	gen     uint64 // last generation given to a block file
}

type blockID struct {
	key uint64
	idx int64
}

// entry is a block file on disk. Its fields are guarded by Cache.mu.
type entry struct {
	id   blockID
	path string
	size int64
	elem *list.Element
	// pins counts readers between looking the entry up and closing its
	// file; evicted is set once the entry has left the index. The file is
	// removed when both hold: evicted and no pins.
	pins    int
	evicted bool
}

// flight is a fetch in progress of one block. data, err and abandoned are
// written before done is closed and only read after; forgotten is guarded
// by Cache.mu.
type flight struct {
	id   blockID
	done chan struct{}

	data      []byte // the block's bytes
	err       error
	abandoned bool // the owner's context ended: waiters fetch for themselves

	forgotten bool // Forget or Close ran meanwhile: do not cache data
}

// New returns a cache that fetches missing blocks with fetch.
func New(opts Options, fetch Fetch) (*Cache, error) {
	if fetch == nil {
		return nil, errors.New("blockcache: nil fetch func")
	}
	bs := opts.BlockSize
	if bs == 0 {
		bs = DefaultBlockSize
	}
	if bs < 0 || bs > MaxBlockSize {
		return nil, fmt.Errorf("blockcache: block size %d outside [1, %d]", opts.BlockSize, MaxBlockSize)
	}
	if opts.MaxBytes < 0 {
		return nil, fmt.Errorf("blockcache: negative MaxBytes %d", opts.MaxBytes)
	}
	c := &Cache{
		dir:       opts.Dir,
		maxBytes:  opts.MaxBytes,
		blockSize: bs,
		fetch:     fetch,
		blocks:    make(map[uint64]map[int64]*entry),
		flights:   make(map[blockID]*flight),
	}
	if c.maxBytes == 0 {
		return c, nil
	}
	// A bound below one block would silently cache nothing but short last
	// blocks; say so instead.
	if c.maxBytes < bs {
		return nil, fmt.Errorf("blockcache: MaxBytes %d is smaller than one block (%d bytes)", c.maxBytes, bs)
	}
	if c.dir == "" {
		return nil, errors.New("blockcache: no cache directory")
	}
	if err := os.MkdirAll(c.dir, 0o700); err != nil {
		return nil, fmt.Errorf("blockcache: create cache directory: %w", err)
	}
	if err := wipe(c.dir); err != nil {
		return nil, fmt.Errorf("blockcache: clear cache directory %s: %w", c.dir, err)
	}
	return c, nil
}

// wipe removes the block and temporary files of an earlier process.
func wipe(dir string) error {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	var errs []error
	for _, de := range ents {
		name := de.Name()
		ours := strings.HasSuffix(name, blockSuffix) || strings.HasPrefix(name, tmpPrefix)
		if !ours || !de.Type().IsRegular() {
			continue
		}
		if err := os.Remove(filepath.Join(dir, name)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// ReadAt fills p with bytes [off, off+len(p)) of object key, whose total
// size is size. Reading past size fails with io.ErrUnexpectedEOF and
// fetches nothing.
func (c *Cache) ReadAt(ctx context.Context, key uint64, size int64, p []byte, off int64) error {
	r := &reader{c: c, key: key, size: size, p: p, off: off}
	if err := checkRange(size, off, int64(len(p))); err != nil {
		return r.wrap(err)
	}
	if len(p) == 0 {
		return nil
	}
	if err := ctx.Err(); err != nil {
		return r.wrap(err)
	}
	if c.maxBytes == 0 {
		return r.passThrough(ctx)
	}
	first, last := off/c.blockSize, (off+int64(len(p))-1)/c.blockSize
	todo := make([]int64, 0, last-first+1)
	for idx := first; idx <= last; idx++ {
		todo = append(todo, idx)
	}
	for len(todo) > 0 {
		if err := ctx.Err(); err != nil {
			return r.wrap(err)
		}
		var err error
		if todo, err = r.round(ctx, todo); err != nil {
			return err
		}
	}
	return nil
}

func checkRange(size, off, n int64) error {
	switch {
	case size < 0:
		return fmt.Errorf("negative object size %d", size)
	case off < 0:
		return errors.New("negative offset")
	case off > size || n > size-off:
		return fmt.Errorf("range ends past the object's %d bytes: %w", size, io.ErrUnexpectedEOF)
	}
	return nil
}

// Forget drops every block of key, cached or being fetched, for example
// because the object was deleted. Readers already reading it still get
// their bytes.
func (c *Cache) Forget(key uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, e := range c.blocks[key] {
		_ = c.evictLocked(e) // counted in DiskErrors
	}
	for id, f := range c.flights {
		if id.key == key {
			f.forgotten = true
			delete(c.flights, id)
		}
	}
}

// Stats returns the counters and the current size.
func (c *Cache) Stats() Stats {
	c.mu.Lock()
	bytes, blocks := c.bytes, c.count
	c.mu.Unlock()
	return Stats{
		Hits:         c.hits.Load(),
		Misses:       c.misses.Load(),
		Fetches:      c.fetches.Load(),
		FetchedBytes: c.fetchedBytes.Load(),
		Bytes:        bytes,
		Blocks:       blocks,
		DiskErrors:   c.diskErrors.Load(),
	}
}

// Close makes later reads fail with ErrClosed and removes the block files.
// Files that reads in progress still use are removed when those reads end.
func (c *Cache) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return nil
	}
	c.closed = true
	var errs []error
	for e := c.lru.Front(); e != nil; {
		next := e.Next()
		if err := c.evictLocked(e.Value.(*entry)); err != nil {
			errs = append(errs, err)
		}
		e = next
	}
	for id, f := range c.flights {
		f.forgotten = true
		delete(c.flights, id)
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("blockcache: close: %w", err)
	}
	return nil
}

// reader is one ReadAt call.
type reader struct {
	c    *Cache
	key  uint64
	size int64
	p    []byte
	off  int64
}

func (r *reader) wrap(err error) error {
	return fmt.Errorf("blockcache: read key %d offset %d length %d: %w", r.key, r.off, len(r.p), err)
}

// blockLen is the length block idx of the object must have.
func (r *reader) blockLen(idx int64) int64 {
	return min(r.c.blockSize, r.size-idx*r.c.blockSize)
}

// span returns the part of p that block idx covers and where that part
// starts inside the block.
func (r *reader) span(idx int64) (dst []byte, within int64) {
	start := idx * r.c.blockSize
	lo := max(r.off, start)
	hi := min(r.off+int64(len(r.p)), start+r.blockLen(idx))
	return r.p[lo-r.off : hi-r.off], lo - start
}

func (r *reader) passThrough(ctx context.Context) error {
	r.c.mu.Lock()
	closed := r.c.closed
	r.c.mu.Unlock()
	if closed {
		return r.wrap(ErrClosed)
	}
	n, err := r.c.fetch(ctx, r.key, r.p, r.off)
	r.c.countFetch(n, len(r.p))
	if err := fetchResult(n, len(r.p), err); err != nil {
		return r.wrap(fmt.Errorf("fetch bytes [%d, %d): %w", r.off, r.off+int64(len(r.p)), err))
	}
	return nil
}

// round serves the blocks in todo (ascending) that it can and returns the
// ones to try again: a block file that turned out bad, or a flight whose
// owner gave up.
func (r *reader) round(ctx context.Context, todo []int64) (again []int64, err error) {
	c := r.c
	var hits []*entry
	var joined, claimed []*flight

	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil, r.wrap(ErrClosed)
	}
	for _, idx := range todo {
		id := blockID{r.key, idx}
		if e := c.blocks[r.key][idx]; e != nil {
			if e.size == r.blockLen(idx) {
				e.pins++
				c.lru.MoveToFront(e.elem)
				hits = append(hits, e)
				continue
			}
			// The caller's size disagrees with the cached block: the
			// caller knows the object, the cache only remembers it.
			_ = c.evictLocked(e)
		}
		if f := c.flights[id]; f != nil {
			joined = append(joined, f)
			continue
		}
		f := &flight{id: id, done: make(chan struct{})}
		c.flights[id] = f
		claimed = append(claimed, f)
	}
	c.mu.Unlock()
	c.misses.Add(int64(len(joined) + len(claimed)))

	// Fetch our claims before reading or waiting on anything, so readers
	// waiting on them are released as early as possible.
	if err := r.fetchClaims(ctx, claimed); err != nil {
		c.unpin(hits)
		return nil, r.wrap(err)
	}

	for _, e := range hits {
		dst, within := r.span(e.id.idx)
		ok := c.readBlock(e, dst, within)
		c.mu.Lock()
		c.unpinLocked(e, !ok)
		c.mu.Unlock()
		if ok {
			c.hits.Add(1)
		} else {
			again = append(again, e.id.idx)
		}
	}

	for _, f := range joined {
		select {
		case <-f.done:
		case <-ctx.Done():
			// Waiting holds nothing: the owner finishes without us.
			return nil, r.wrap(ctx.Err())
		}
		switch {
		case f.abandoned:
			again = append(again, f.id.idx)
		case f.err != nil:
			return nil, r.wrap(f.err)
		case int64(len(f.data)) != r.blockLen(f.id.idx):
			// The owner was told another object size; fetch with ours.
			again = append(again, f.id.idx)
		default:
			dst, within := r.span(f.id.idx)
			copy(dst, f.data[within:])
		}
	}
	slices.Sort(again)
	return again, nil
}

// fetchClaims fetches the claimed blocks (ascending), one Fetch per run of
// consecutive blocks, and completes every flight whatever happens.
func (r *reader) fetchClaims(ctx context.Context, claimed []*flight) error {
	for len(claimed) > 0 {
		n := 1
		for n < len(claimed) && claimed[n].id.idx == claimed[n-1].id.idx+1 {
			n++
		}
		if err := r.fetchRun(ctx, claimed[:n]); err != nil {
			r.c.fail(claimed[n:], errNotTried, true)
			return err
		}
		claimed = claimed[n:]
	}
	return nil
}

// fetchRun fetches a run of consecutive blocks with one Fetch, hands the
// bytes to the run's flights and to p, and caches what fits.
func (r *reader) fetchRun(ctx context.Context, run []*flight) error {
	c := r.c
	bs := c.blockSize
	first := run[0].id.idx
	start := first * bs
	end := min((run[len(run)-1].id.idx+1)*bs, r.size)
	buf := make([]byte, end-start)

	completed := false
	defer func() {
		// Only reached with completed false if fetch panicked: release
		// the waiters before the panic goes on.
		if !completed {
			c.fail(run, errors.New("fetch panicked"), true)
		}
	}()
	n, ferr := c.fetch(ctx, r.key, buf, start)
	c.countFetch(n, len(buf))
	if ferr = fetchResult(n, len(buf), ferr); ferr != nil {
		completed = true
		ferr = fmt.Errorf("fetch bytes [%d, %d): %w", start, end, ferr)
		// Waiters should not inherit the end of our context, only a
		// failure of the store itself.
		c.fail(run, ferr, ctx.Err() != nil)
		return ferr
	}
	for _, f := range run {
		lo := (f.id.idx - first) * bs
		f.data = buf[lo:min(lo+bs, int64(len(buf)))]
		close(f.done)
	}
	completed = true
	for _, f := range run {
		dst, within := r.span(f.id.idx)
		copy(dst, f.data[within:])
	}
	c.store(run)
	return nil
}

// fetchResult turns what Fetch returned into an error, or nil when the
// whole buffer was filled.
func fetchResult(n, want int, err error) error {
	full := n == want
	switch {
	case n < 0 || n > want:
		return fmt.Errorf("fetch returned %d bytes for a %d-byte buffer", n, want)
	case full && (err == nil || errors.Is(err, io.EOF)):
		return nil
	case err == nil || errors.Is(err, io.EOF):
		return fmt.Errorf("object ended after %d of %d bytes: %w", n, want, io.ErrUnexpectedEOF)
	default:
		return err
	}
}

func (c *Cache) countFetch(n, want int) {
	c.fetches.Add(1)
	if n > 0 {
		c.fetchedBytes.Add(int64(min(n, want)))
	}
}

// fail completes flights with err. It unlists them first, so that no new
// reader joins a failed fetch: errors are never cached.
func (c *Cache) fail(flights []*flight, err error, abandoned bool) {
	c.mu.Lock()
	for _, f := range flights {
		if c.flights[f.id] == f {
			delete(c.flights, f.id)
		}
	}
	c.mu.Unlock()
	for _, f := range flights {
		f.err, f.abandoned = err, abandoned
		close(f.done)
	}
}

// store caches the fetched blocks of run that fit, and unlists the run's
// flights. Until its block is in the index a flight stays listed, so
// readers arriving meanwhile take its bytes instead of fetching again.
func (c *Cache) store(run []*flight) {
	// Keep the tail of a run larger than the bound: a sequential reader
	// continues there.
	from, total := len(run), int64(0)
	for from > 0 && total+int64(len(run[from-1].data)) <= c.maxBytes {
		from--
		total += int64(len(run[from].data))
	}
	c.mu.Lock()
	for _, f := range run[:from] {
		c.unlistLocked(f)
	}
	c.mu.Unlock()

	for _, f := range run[from:] {
		e := c.reserve(f)
		if e != nil {
			if err := writeBlock(c.dir, e.path, f.data); err != nil {
				c.diskErrors.Add(1)
				c.mu.Lock()
				c.bytes -= e.size
				c.unlistLocked(f)
				c.mu.Unlock()
				continue
			}
		}
		c.mu.Lock()
		c.unlistLocked(f)
		if e != nil {
			if c.closed || f.forgotten {
				_ = c.removeLocked(e)
			} else {
				c.insertLocked(e)
			}
		}
		c.mu.Unlock()
	}
}

func (c *Cache) unlistLocked(f *flight) {
	if c.flights[f.id] == f {
		delete(c.flights, f.id)
	}
}

// reserve makes room for f's block, evicting least recently used blocks,
// and returns the entry to write, or nil when the block is not to be
// cached.
func (c *Cache) reserve(f *flight) *entry {
	size := int64(len(f.data))
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed || f.forgotten {
		return nil
	}
	for c.bytes+size > c.maxBytes {
		back := c.lru.Back()
		if back == nil {
			// What is left is being written or read; skip caching
			// rather than exceed the bound.
			return nil
		}
		_ = c.evictLocked(back.Value.(*entry))
	}
	c.bytes += size
	c.gen++
	name := fmt.Sprintf("%016x-%x-%x%s", f.id.key, f.id.idx, c.gen, blockSuffix)
	return &entry{id: f.id, path: filepath.Join(c.dir, name), size: size}
}

// writeBlock writes data to path through a temporary file, so that path
// never holds a partial block.
func writeBlock(dir, path string, data []byte) (err error) {
	f, err := os.CreateTemp(dir, tmpPrefix+"*")
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			_ = f.Close()
			_ = os.Remove(f.Name())
		}
	}()
	if _, err = f.Write(data); err != nil {
		return err
	}
	if err = f.Close(); err != nil {
		return err
	}
	return os.Rename(f.Name(), path)
}

func (c *Cache) insertLocked(e *entry) {
	byIdx := c.blocks[e.id.key]
	if byIdx == nil {
		byIdx = make(map[int64]*entry)
		c.blocks[e.id.key] = byIdx
	}
	if old := byIdx[e.id.idx]; old != nil {
		_ = c.evictLocked(old)
	}
	byIdx[e.id.idx] = e
	e.elem = c.lru.PushFront(e)
	c.count++
}

// evictLocked takes e out of the index. Its file goes now, or when its
// last reader unpins it.
func (c *Cache) evictLocked(e *entry) error {
	if e.evicted {
		return nil
	}
	e.evicted = true
	c.lru.Remove(e.elem)
	byIdx := c.blocks[e.id.key]
	delete(byIdx, e.id.idx)
	if len(byIdx) == 0 {
		delete(c.blocks, e.id.key)
	}
	c.count--
	if e.pins > 0 {
		return nil
	}
	return c.removeLocked(e)
}

// removeLocked deletes e's file and stops counting its bytes.
func (c *Cache) removeLocked(e *entry) error {
	c.bytes -= e.size
	if err := os.Remove(e.path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		c.diskErrors.Add(1)
		return err
	}
	return nil
}

// unpinLocked ends a read of e; bad says its file was not whole, so the
// block must be fetched again.
func (c *Cache) unpinLocked(e *entry, bad bool) {
	e.pins--
	if bad && !e.evicted {
		_ = c.evictLocked(e)
		return
	}
	if e.evicted && e.pins == 0 {
		_ = c.removeLocked(e)
	}
}

func (c *Cache) unpin(es []*entry) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, e := range es {
		c.unpinLocked(e, false)
	}
}

// readBlock reads dst from e's file at within. It reports false when the
// file is missing, unreadable or not exactly e.size bytes long: a crash, a
// full disk or someone else may have damaged it, and it is then a miss.
func (c *Cache) readBlock(e *entry, dst []byte, within int64) bool {
	f, err := os.Open(e.path)
	if err != nil {
		c.diskErrors.Add(1)
		return false
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil || fi.Size() != e.size {
		c.diskErrors.Add(1)
		return false
	}
	if n, err := f.ReadAt(dst, within); n != len(dst) || (err != nil && !errors.Is(err, io.EOF)) {
		c.diskErrors.Add(1)
		return false
	}
	return true
}
