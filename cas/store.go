package cas

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/klauspost/compress/zstd"
	"github.com/zeebo/blake3"
	"golang.org/x/sync/errgroup"

	"github.com/quic-s/quics/internal/atomicfile"
)

// Defaults and bounds of Options.
const (
	DefaultPackSize     = 32 << 20
	MinPackSize         = 1 << 10
	MaxPackSize         = 1 << 30
	DefaultMaxOpenPacks = 64
)

// Options tune a Store. The zero value is what the server uses.
type Options struct {
	// PackSize is the size at which the active pack is sealed and a new one
	// started (default DefaultPackSize). A pack exceeds it by at most one
	// record: a record never spans packs.
	PackSize int64
	// MaxChunkSize bounds the chunks Put accepts (default and at most
	// MaxChunkSizeLimit). Callers pass their chunker's maximum.
	MaxChunkSize int
	// CompressionLevel is the zstd level for new chunks (default
	// zstd.SpeedFastest, which keeps Put well above network speed).
	CompressionLevel zstd.EncoderLevel
	// DisableCompression stores every chunk raw.
	DisableCompression bool
	// MaxOpenPacks bounds the read handles kept open for Get (default
	// DefaultMaxOpenPacks).
	MaxOpenPacks int
	// Logger receives recovery and repair notices; nil discards them.
	Logger *slog.Logger
	// Clock stamps packs' last-write times, which gc's safety margin is
	// measured against; nil means time.Now. Tests inject a fake.
	Clock func() time.Time
	// Backend, if set, is where sealed packs go: each is uploaded once it
	// is sealed and durable, then its local file is deleted (see Backend).
	Backend Backend
	// RemoteCache, if set, serves reads of remote packs (Backend only);
	// without it every read is a ranged read of the backend.
	RemoteCache RangeCache
}

func (o Options) withDefaults() (Options, error) {
	if o.PackSize == 0 {
		o.PackSize = DefaultPackSize
	}
	if o.PackSize < MinPackSize || o.PackSize > MaxPackSize {
		return o, fmt.Errorf("cas: PackSize %d outside [%d, %d]", o.PackSize, MinPackSize, MaxPackSize)
	}
	if o.MaxChunkSize == 0 {
		o.MaxChunkSize = MaxChunkSizeLimit
	}
	if o.MaxChunkSize < 0 || o.MaxChunkSize > MaxChunkSizeLimit {
		return o, fmt.Errorf("cas: MaxChunkSize %d outside [1, %d]", o.MaxChunkSize, MaxChunkSizeLimit)
	}
	if o.CompressionLevel == 0 {
		o.CompressionLevel = zstd.SpeedFastest
	}
	if o.MaxOpenPacks <= 0 {
		o.MaxOpenPacks = DefaultMaxOpenPacks
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Clock == nil {
		o.Clock = time.Now
	}
	return o, nil
}

// Store is a content-addressed chunk store: pack files under one directory
// and an index in a badger database shared with package manifest. All
// methods are safe for concurrent use.
type Store struct {
	dir    string
	db     *badger.DB
	opts   Options
	log    *slog.Logger
	codecs *codecs
	files  *fileCache
	life   lifecycle
	remote *remoteState // nil without a Backend

	// fsync makes a file durable; tests replace it to model a failing or
	// slow disk.
	fsync func(*os.File) error
	// afterLocate, if set, runs between a read's index lookup and its
	// pack read; tests use it to move the chunk in that window.
	afterLocate func(ID)

	// mu is the append lock. It guards the writers, the pending and
	// in-flight sets and the sequence counters. Hashing, compression, fsync
	// and badger commits all happen outside it.
	mu        sync.Mutex
	active    *packWriter
	sealed    []*packWriter // rotated out with bytes not yet committed
	pending   map[ID]*pendingChunk
	order     []*pendingChunk // pending in append order
	inflight  map[ID]chan struct{}
	nextPack  uint64
	appendSeq uint64 // records appended since Open
	failed    error  // sticky: see ErrFailed

	// syncSem admits one sync round at a time; callers queued behind a
	// round share the next one (group commit).
	syncSem    chan struct{}
	syncedSeq  uint64        // appendSeq covered by the last round; guarded by syncSem
	syncRounds atomic.Uint64 // rounds that fsynced something

	// gcMu serializes whole-store maintenance: Check, RebuildIndex,
	// Repack and RemovePack.
	gcMu sync.Mutex

	// deletions are the IDs of DeleteChunksChecked transactions in
	// flight; Has and Put wait for them (see deletionSet).
	deletions deletionSet
}

// pendingChunk is a record appended to a pack whose index entry is not yet
// committed.
type pendingChunk struct {
	id  ID
	loc Location
}

// Close commits what was Put before it (like Sync), waits for running calls
// and releases every file. It does not close the badger database, which
// belongs to the caller.
func (s *Store) Close() error {
	if err := s.life.enter(); err != nil {
		return nil // already closed
	}
	err := s.sync(context.Background())
	s.life.leave()
	s.stopUploads()
	s.life.close()
	s.releaseFiles()
	return err
}

// abandon drops the store without committing anything, as a crash would.
// Tests use it; bytes written but not committed stay in the pack files.
func (s *Store) abandon() {
	s.stopUploads()
	s.life.close()
	s.releaseFiles()
}

// stopUploads ends the upload loop; an upload in progress is abandoned and
// redone after the next Open.
func (s *Store) stopUploads() {
	if s.remote == nil || s.remote.stop == nil {
		return
	}
	s.remote.stop()
	<-s.remote.done
	s.remote.stop = nil
}

func (s *Store) releaseFiles() {
	s.mu.Lock()
	for _, w := range s.writersLocked() {
		_ = w.f.Close()
	}
	s.active, s.sealed = nil, nil
	s.mu.Unlock()
	s.files.close()
	s.codecs.dec.Close()
	if s.remote != nil && s.remote.cache != nil {
		_ = s.remote.cache.Close()
	}
}

// Put stores data under id after checking that id is its BLAKE3-256 hash
// (ErrHashMismatch otherwise; nothing is stored). stored is false when the
// chunk was already present or pending, in which case nothing is written.
// A chunk is durable only after a Sync that starts after Put returns.
func (s *Store) Put(ctx context.Context, id ID, data []byte) (stored bool, err error) {
	if err := s.life.enter(); err != nil {
		return false, err
	}
	defer s.life.leave()
	if err := ctx.Err(); err != nil {
		return false, err
	}
	if len(data) > s.opts.MaxChunkSize {
		return false, fmt.Errorf("%w: chunk %s has %d bytes, limit %d", ErrTooLarge, id, len(data), s.opts.MaxChunkSize)
	}
	if got := Sum(data); got != id {
		return false, fmt.Errorf("%w: chunk offered as %s hashes to %s", ErrHashMismatch, id, got)
	}
	return s.putVerified(ctx, id, data, nil)
}

// PutReader stores exactly size bytes read from r under id. The size is
// checked against MaxChunkSize before anything is allocated, and the hash
// is computed as the bytes arrive; a wrong digest is an error at the end,
// never a stored chunk. r is not read past size.
func (s *Store) PutReader(ctx context.Context, id ID, r io.Reader, size int64) (bool, error) {
	if err := s.life.enter(); err != nil {
		return false, err
	}
	defer s.life.leave()
	if size < 0 || size > int64(s.opts.MaxChunkSize) {
		return false, fmt.Errorf("%w: chunk %s announced with %d bytes, limit %d", ErrTooLarge, id, size, s.opts.MaxChunkSize)
	}
	buf := getBuf(int(size))
	defer func() { putBuf(buf) }()
	data := buf[:size]
	h := blake3.New()
	const piece = 64 << 10
	for off := 0; off < len(data); {
		if err := ctx.Err(); err != nil {
			return false, err
		}
		end := min(off+piece, len(data))
		n, err := io.ReadFull(r, data[off:end])
		_, _ = h.Write(data[off : off+n])
		off += n
		if err != nil {
			return false, fmt.Errorf("cas: chunk %s: read %d of %d bytes: %w", id, off, size, err)
		}
	}
	var got ID
	h.Sum(got[:0])
	if got != id {
		return false, fmt.Errorf("%w: chunk received as %s hashes to %s", ErrHashMismatch, id, got)
	}
	return s.putVerified(ctx, id, data, nil)
}

// PutStored stores a chunk that arrives in stored form (see Stored), as
// sent by a client that ran Compress on it, without compressing it again:
// a zstd form is kept as it is (or raw, when it is not smaller), a raw
// form stays raw. The payload is decoded and hashed first: a wrong digest
// is ErrHashMismatch.
func (s *Store) PutStored(ctx context.Context, id ID, st Stored) (bool, error) {
	return s.PutStoredFunc(ctx, id, st, nil)
}

// PutStoredFunc is PutStored that also hands the decoded chunk, once it
// hashes to id, to verified (when not nil) before storing it, whether or
// not the store has it already: a caller hashing a whole file as its
// chunks arrive gets each chunk's bytes without decoding them twice. The
// bytes are valid only during the call.
func (s *Store) PutStoredFunc(ctx context.Context, id ID, st Stored, verified func(id ID, data []byte)) (bool, error) {
	if err := s.life.enter(); err != nil {
		return false, err
	}
	defer s.life.leave()
	if st.RawLen < 0 || st.RawLen > s.opts.MaxChunkSize || len(st.Data) > MaxChunkSizeLimit {
		return false, fmt.Errorf("%w: chunk %s has %d bytes, limit %d", ErrTooLarge, id, st.RawLen, s.opts.MaxChunkSize)
	}
	data, err := s.codecs.decodeAny(st.Codec, st.Data, uint32(st.RawLen))
	if err != nil {
		return false, fmt.Errorf("cas: chunk %s: %w", id, err)
	}
	if got := Sum(data); got != id {
		return false, fmt.Errorf("%w: chunk offered as %s hashes to %s", ErrHashMismatch, id, got)
	}
	if verified != nil {
		verified(id, data)
	}
	switch {
	case st.Codec == CodecZstd && len(st.Data) < st.RawLen:
		return s.putVerified(ctx, id, data, &st)
	case st.Codec == CodecRaw:
		// The sender ran Compress, which found no gain (or compression
		// off): trying again here would cost a second zstd pass for
		// nothing.
		return s.putVerified(ctx, id, data, &Stored{Codec: CodecRaw, Data: data, RawLen: len(data)})
	}
	return s.putVerified(ctx, id, data, nil)
}

// putVerified stores data, already known to hash to id, unless the store
// has it. pre, if not nil, is a valid compressed form to store as is.
func (s *Store) putVerified(ctx context.Context, id ID, data []byte, pre *Stored) (bool, error) {
	done, dup, err := s.reserve(ctx, id)
	if err != nil || dup {
		return false, err
	}
	present, err := s.indexHas(id)
	if err != nil || present {
		s.finishFlight(id, done)
		return false, err
	}

	buf := getBuf(RecordHeaderSize + len(data) + encodeSlack(len(data)))[:RecordHeaderSize]
	var codec Codec
	if pre != nil {
		codec = pre.Codec
		buf = append(buf, pre.Data...)
	} else {
		var payload []byte
		codec, payload = s.codecs.encode(buf, data)
		if n := RecordHeaderSize + len(payload); n <= cap(buf) && len(payload) > 0 && &buf[:n][RecordHeaderSize] == &payload[0] {
			buf = buf[:n] // encoded in place, the usual case
		} else {
			buf = append(buf, payload...)
		}
	}
	putRecordHeader(buf, codec, id, uint32(len(data)), buf[RecordHeaderSize:])
	err = s.appendChunk(id, buf, done)
	putBuf(buf)
	if err != nil {
		return false, err
	}
	return true, nil
}

// reserve claims id for this Put. dup is true when the chunk is pending or
// was being stored by another Put that has since appended it. Otherwise the
// caller owns the returned channel and must pass it to appendChunk or
// finishFlight. Waiting for a concurrent Put of the same chunk keeps the
// Sync contract: when Put returns, the record is appended.
func (s *Store) reserve(ctx context.Context, id ID) (done chan struct{}, dup bool, err error) {
	for {
		s.mu.Lock()
		if s.failed != nil {
			err := s.failed
			s.mu.Unlock()
			return nil, false, err
		}
		if _, ok := s.pending[id]; ok {
			s.mu.Unlock()
			return nil, true, nil
		}
		wait, busy := s.inflight[id]
		if !busy {
			done := make(chan struct{})
			s.inflight[id] = done
			s.mu.Unlock()
			return done, false, nil
		}
		s.mu.Unlock()
		select {
		case <-wait:
		case <-ctx.Done():
			return nil, false, ctx.Err()
		}
	}
}

func (s *Store) finishFlight(id ID, done chan struct{}) {
	s.mu.Lock()
	delete(s.inflight, id)
	s.mu.Unlock()
	close(done)
}

// appendChunk appends a complete record and makes it pending, atomically
// with releasing the in-flight claim.
func (s *Store) appendChunk(id ID, rec []byte, done chan struct{}) error {
	s.mu.Lock()
	delete(s.inflight, id)
	w, off, kick, err := s.appendLocked(rec)
	if err == nil {
		h, _ := parseRecordHeader(rec) // just built
		p := &pendingChunk{id: id, loc: Location{Pack: w.num, Offset: off, StoredLen: h.StoredLen, RawLen: h.RawLen, Codec: h.Codec}}
		s.pending[id] = p
		s.order = append(s.order, p)
	}
	s.mu.Unlock()
	close(done)
	kick.start()
	return err
}

// writebackBytes is how much a pack grows between early writeback hints.
const writebackBytes = 1 << 20

// writeback is a range of a pack to start writing to disk early.
type writeback struct {
	f      *os.File
	off, n int64
}

func (wb writeback) start() {
	if wb.n > 0 {
		startWriteback(wb.f, wb.off, wb.n)
	}
}

// appendLocked writes one record to the active pack, rotating first when
// the record would take the pack past PackSize. The returned writeback is
// to be started after releasing s.mu.
func (s *Store) appendLocked(rec []byte) (*packWriter, int64, writeback, error) {
	if s.failed != nil {
		return nil, 0, writeback{}, s.failed
	}
	w := s.active
	if w != nil && w.size > PackHeaderSize && w.size+int64(len(rec)) > s.opts.PackSize {
		s.sealActiveLocked()
		w = nil
	}
	if w == nil {
		var err error
		if w, err = s.newPackLocked(); err != nil {
			return nil, 0, writeback{}, err
		}
		s.active = w
	}
	off := w.size
	// A failed or short write leaves bytes past w.size that the next
	// record overwrites and that no commit ever covers.
	if _, err := w.f.WriteAt(rec, off); err != nil {
		return nil, 0, writeback{}, fmt.Errorf("cas: append to pack %d at %d: %w", w.num, off, err)
	}
	w.size += int64(len(rec))
	w.records++
	s.appendSeq++
	var kick writeback
	if w.size-w.kicked >= writebackBytes {
		kick = writeback{f: w.f, off: w.kicked, n: w.size - w.kicked}
		w.kicked = w.size
	}
	return w, off, kick, nil
}

// writersLocked lists the packs open for writing: sealed ones waiting for
// their final sync, then the active one.
func (s *Store) writersLocked() []*packWriter {
	ws := make([]*packWriter, 0, len(s.sealed)+1)
	ws = append(ws, s.sealed...)
	if s.active != nil {
		ws = append(ws, s.active)
	}
	return ws
}

// sealActiveLocked stops appending to the active pack. Its bytes are made
// durable by the next sync round, which then closes it.
func (s *Store) sealActiveLocked() {
	w := s.active
	if w == nil {
		return
	}
	s.active = nil
	w.sealed = true
	if w.size > w.synced || w.newFile {
		s.sealed = append(s.sealed, w)
		return
	}
	_ = w.f.Close()
	s.remote.kick()
}

// newPackLocked allocates the next pack number, persisting the counter
// first so a number is never reused even if the file is lost in a crash.
func (s *Store) newPackLocked() (*packWriter, error) {
	num := s.nextPack
	if err := s.db.Update(func(txn *badger.Txn) error {
		return txn.Set(metaKey(metaNextPack), encodeUvarint(num+1))
	}); err != nil {
		return nil, fmt.Errorf("cas: persist next pack number %d: %w", num+1, err)
	}
	s.nextPack = num + 1
	return createPack(s.dir, num)
}

// Sync makes every Put that returned before Sync was called durable: it
// fsyncs the packs they went to (and the directories of new packs), then
// commits their index entries and the packs' committed lengths to badger.
// Concurrent callers share fsyncs: one round covers everyone queued.
func (s *Store) Sync(ctx context.Context) error {
	if err := s.life.enter(); err != nil {
		return err
	}
	defer s.life.leave()
	return s.sync(ctx)
}

// SyncChunks makes ids durable if any of them is a Put not yet synced,
// and costs no fsync otherwise: a commit that names chunks synced long
// ago (most of them, since uploads sync at their end) need not wait for
// a round that other sessions' uploads started.
func (s *Store) SyncChunks(ctx context.Context, ids []ID) error {
	if err := s.life.enter(); err != nil {
		return err
	}
	defer s.life.leave()
	s.mu.Lock()
	pending := false
	for _, id := range ids {
		if _, ok := s.pending[id]; ok {
			pending = true
			break
		}
	}
	failed := s.failed
	s.mu.Unlock()
	if failed != nil {
		return failed
	}
	if !pending {
		return nil
	}
	return s.sync(ctx)
}

func (s *Store) sync(ctx context.Context) error {
	s.mu.Lock()
	target, failed := s.appendSeq, s.failed
	s.mu.Unlock()
	if failed != nil {
		return failed
	}
	select {
	case s.syncSem <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	}
	defer func() { <-s.syncSem }()
	if s.syncedSeq >= target {
		return nil // a round that started after our Puts covered them
	}
	return s.syncRound(ctx)
}

// writerSnap is what one sync round commits for one pack.
type writerSnap struct {
	w       *packWriter
	size    int64
	records uint64
	newFile bool
}

// syncRound runs one group commit. The caller holds syncSem.
func (s *Store) syncRound(ctx context.Context) error {
	s.mu.Lock()
	seq := s.appendSeq
	var snaps []writerSnap
	for _, w := range s.writersLocked() {
		if w.size > w.synced || w.newFile {
			snaps = append(snaps, writerSnap{w: w, size: w.size, records: w.records, newFile: w.newFile})
		}
	}
	batch := s.order[:len(s.order):len(s.order)]
	s.mu.Unlock()
	if len(snaps) == 0 && len(batch) == 0 {
		s.syncedSeq = seq
		return nil
	}
	s.syncRounds.Add(1)

	if err := s.fsyncWriters(ctx, snaps); err != nil {
		// After a failed fsync the kernel may have dropped the dirty
		// pages; nothing past the committed lengths can be trusted.
		s.mu.Lock()
		if s.failed == nil {
			s.failed = fmt.Errorf("%w: %w", ErrFailed, err)
		}
		failed := s.failed
		s.mu.Unlock()
		return failed
	}

	ops := make([]indexOp, len(batch))
	for i, p := range batch {
		ops[i] = indexOp{id: p.id, cond: condAbsent, set: &batch[i].loc}
	}
	sets := make([]packSet, len(snaps))
	for i, sn := range snaps {
		sets[i] = packSet{num: sn.w.num, committed: sn.size, records: sn.records}
	}
	if _, err := s.applyIndexOps(ctx, ops, sets); err != nil {
		return fmt.Errorf("cas: commit %d chunks: %w", len(batch), err)
	}

	s.mu.Lock()
	for _, sn := range snaps {
		sn.w.synced = sn.size
		sn.w.newFile = false
	}
	kept := s.sealed[:0]
	for _, w := range s.sealed {
		if w.size > w.synced || w.newFile {
			kept = append(kept, w)
		} else {
			_ = w.f.Close()
			s.remote.kick()
		}
	}
	clear(s.sealed[len(kept):])
	s.sealed = kept
	for _, p := range batch {
		delete(s.pending, p.id)
	}
	if len(s.pending) == 0 && len(batch) > 4096 {
		// A Go map keeps its buckets after deletes: let a burst's go.
		s.pending = make(map[ID]*pendingChunk)
	}
	rest := make([]*pendingChunk, len(s.order)-len(batch))
	copy(rest, s.order[len(batch):])
	s.order = rest
	s.mu.Unlock()
	s.syncedSeq = seq
	return nil
}

func (s *Store) fsyncWriters(ctx context.Context, snaps []writerSnap) error {
	g, _ := errgroup.WithContext(ctx)
	g.SetLimit(4)
	for _, sn := range snaps {
		g.Go(func() error {
			if err := s.fsync(sn.w.f); err != nil {
				return fmt.Errorf("fsync pack %d: %w", sn.w.num, err)
			}
			if sn.newFile {
				shard := filepath.Dir(packPath(s.dir, sn.w.num))
				if err := atomicfile.SyncDir(shard); err != nil {
					return fmt.Errorf("fsync %s: %w", shard, err)
				}
				if err := atomicfile.SyncDir(filepath.Dir(shard)); err != nil {
					return fmt.Errorf("fsync %s: %w", filepath.Dir(shard), err)
				}
			}
			return nil
		})
	}
	return g.Wait()
}

// Has reports, for each id, whether the store has the chunk: committed, or
// put by this process and not yet synced. A manifest commit must rely on
// HasTxn instead, which sees committed chunks only.
func (s *Store) Has(ctx context.Context, ids []ID) ([]bool, error) {
	if err := s.life.enter(); err != nil {
		return nil, err
	}
	defer s.life.leave()
	out := make([]bool, len(ids))
	s.mu.Lock()
	for i, id := range ids {
		_, out[i] = s.pending[id]
	}
	s.mu.Unlock()
	s.deletions.await(ids)
	err := s.db.View(func(txn *badger.Txn) error {
		for i, id := range ids {
			if out[i] {
				continue
			}
			if i%256 == 0 {
				if err := ctx.Err(); err != nil {
					return err
				}
			}
			ok, err := s.HasTxn(txn, id)
			if err != nil {
				return err
			}
			out[i] = ok
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// HasTxn reports whether the chunk is committed, inside the caller's
// transaction. A manifest commit calls it for every chunk of a new version
// in the same transaction that writes the version: if gc deletes the entry
// concurrently, badger's conflict detection makes one of them retry.
func (s *Store) HasTxn(txn *badger.Txn, id ID) (bool, error) {
	_, err := txn.Get(indexKey(id))
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, badger.ErrKeyNotFound):
		return false, nil
	default:
		return false, fmt.Errorf("cas: look up chunk %s: %w", id, err)
	}
}

func (s *Store) indexHas(id ID) (bool, error) {
	s.deletions.await([]ID{id})
	var ok bool
	err := s.db.View(func(txn *badger.Txn) error {
		var err error
		ok, err = s.HasTxn(txn, id)
		return err
	})
	return ok, err
}

// ChunkInfo describes where a chunk is stored.
type ChunkInfo struct {
	Location
	// Durable is false for a chunk put but not yet synced.
	Durable bool
}

// Stat returns where the chunk is stored, or ErrNotFound.
func (s *Store) Stat(ctx context.Context, id ID) (ChunkInfo, error) {
	if err := s.life.enter(); err != nil {
		return ChunkInfo{}, err
	}
	defer s.life.leave()
	if err := ctx.Err(); err != nil {
		return ChunkInfo{}, err
	}
	loc, durable, err := s.locate(id)
	return ChunkInfo{Location: loc, Durable: durable}, err
}

// StatMany is Stat for many chunks, looked up in one index transaction:
// found[i] tells whether ids[i] is stored, and infos[i] where.
func (s *Store) StatMany(ctx context.Context, ids []ID) (infos []ChunkInfo, found []bool, err error) {
	if err := s.life.enter(); err != nil {
		return nil, nil, err
	}
	defer s.life.leave()
	infos, found = make([]ChunkInfo, len(ids)), make([]bool, len(ids))
	s.mu.Lock()
	for i, id := range ids {
		var p *pendingChunk
		if p, found[i] = s.pending[id]; found[i] {
			infos[i].Location = p.loc
		}
	}
	s.mu.Unlock()
	err = s.db.View(func(txn *badger.Txn) error {
		for i, id := range ids {
			if found[i] {
				continue
			}
			if i%256 == 0 {
				if err := ctx.Err(); err != nil {
					return err
				}
			}
			loc, err := indexedTxn(txn, id)
			if errors.Is(err, ErrNotFound) {
				continue
			}
			if err != nil {
				return err
			}
			infos[i].Location = loc
			infos[i].Durable, found[i] = true, true
		}
		return nil
	})
	if err != nil {
		return nil, nil, err
	}
	return infos, found, nil
}

// locate finds a chunk among the pending ones, then in the index.
func (s *Store) locate(id ID) (loc Location, durable bool, err error) {
	s.mu.Lock()
	p, ok := s.pending[id]
	s.mu.Unlock()
	if ok {
		return p.loc, false, nil
	}
	err = s.db.View(func(txn *badger.Txn) (err error) {
		loc, err = indexedTxn(txn, id)
		return err
	})
	return loc, err == nil, err
}

// indexedTxn reads the index entry of id inside txn: ErrNotFound when
// there is none, ErrCorrupt when it does not decode.
func indexedTxn(txn *badger.Txn, id ID) (Location, error) {
	item, err := txn.Get(indexKey(id))
	if errors.Is(err, badger.ErrKeyNotFound) {
		return Location{}, fmt.Errorf("%w: %s", ErrNotFound, id)
	}
	if err != nil {
		return Location{}, fmt.Errorf("cas: look up chunk %s: %w", id, err)
	}
	var loc Location
	err = item.Value(func(v []byte) (err error) {
		loc, err = decodeIndexValue(v)
		return err
	})
	switch {
	case errors.Is(err, ErrInvalidRecord):
		return Location{}, fmt.Errorf("%w: index entry of chunk %s: %w", ErrCorrupt, id, err)
	case err != nil:
		return Location{}, fmt.Errorf("cas: look up chunk %s: %w", id, err)
	}
	return loc, nil
}

// Get returns the chunk's bytes after checking the record's CRC and the
// decoded bytes' hash: corrupt data is ErrCorrupt, bytes the index expects
// but the disk lacks are ErrMissing, an unknown ID is ErrNotFound. Pending
// (unsynced) chunks are read back from their pack file.
func (s *Store) Get(ctx context.Context, id ID) ([]byte, error) {
	if err := s.life.enter(); err != nil {
		return nil, err
	}
	defer s.life.leave()
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	rec, loc, err := s.fetch(ctx, id, false)
	if err != nil {
		return nil, err
	}
	payload := rec[RecordHeaderSize:]
	data, err := s.codecs.decode(loc.Codec, payload, loc.RawLen)
	if loc.Codec != CodecRaw {
		putBuf(rec)
	}
	if err != nil {
		return nil, fmt.Errorf("cas: chunk %s in pack %d at %d: %w", id, loc.Pack, loc.Offset, err)
	}
	if got := Sum(data); got != id {
		return nil, fmt.Errorf("%w: chunk %s in pack %d at %d hashes to %s", ErrCorrupt, id, loc.Pack, loc.Offset, got)
	}
	return data, nil
}

// AppendUnhashed appends the chunk's bytes to dst, like Get but without
// hashing them: the record's CRC is checked, not that the bytes hash to
// id. It is for a caller that hashes what it reads anyway (a whole-content
// check) and would otherwise pay a second BLAKE3 pass over every chunk;
// such a caller that finds a mismatch uses Get to tell a damaged chunk
// from a wrong list. A reader done with each chunk before it needs the
// next reuses one buffer instead of allocating (and faulting in) fresh
// memory for every chunk.
func (s *Store) AppendUnhashed(ctx context.Context, id ID, dst []byte) ([]byte, error) {
	if err := s.life.enter(); err != nil {
		return dst, err
	}
	defer s.life.leave()
	if err := ctx.Err(); err != nil {
		return dst, err
	}
	rec, loc, err := s.fetch(ctx, id, true)
	if err != nil {
		return dst, err
	}
	defer putBuf(rec)
	out, err := s.codecs.decodeAppend(dst, loc.Codec, rec[RecordHeaderSize:], loc.RawLen)
	if err != nil {
		return dst, fmt.Errorf("cas: chunk %s in pack %d at %d: %w", id, loc.Pack, loc.Offset, err)
	}
	return out, nil
}

// GetStored returns the chunk in stored form, checking the record's CRC but
// not decoding it: the receiver decodes and verifies the hash (Stored.Decode).
func (s *Store) GetStored(ctx context.Context, id ID) (Stored, error) {
	if err := s.life.enter(); err != nil {
		return Stored{}, err
	}
	defer s.life.leave()
	if err := ctx.Err(); err != nil {
		return Stored{}, err
	}
	rec, loc, err := s.fetch(ctx, id, false)
	if err != nil {
		return Stored{}, err
	}
	return Stored{Codec: loc.Codec, Data: rec[RecordHeaderSize:], RawLen: int(loc.RawLen)}, nil
}

// maxRelocations bounds how often fetch follows a chunk that maintenance
// moved while it was being read. One move per Repack, and gc repacks a
// pack at most once per run, so a few are plenty.
const maxRelocations = 4

// fetch locates a chunk and reads its whole record, checking the header
// against the index entry and the CRC. The record is pooled if pooled or
// compressed (the caller returns it with putBuf); otherwise a raw chunk's
// record is freshly allocated, its payload handed out.
func (s *Store) fetch(ctx context.Context, id ID, pooled bool) ([]byte, Location, error) {
	loc, _, err := s.locate(id)
	for attempt := 0; ; attempt++ {
		if err != nil {
			return nil, loc, err
		}
		if s.afterLocate != nil {
			s.afterLocate(id)
		}
		rec, rerr := s.readRecord(ctx, id, loc, pooled)
		if rerr == nil {
			return rec, loc, nil
		}
		// A Repack may have moved the chunk and removed its pack between
		// locate and read: follow it while it keeps moving. A chunk that
		// did not move really is missing; one deleted meanwhile is
		// ErrNotFound, as if the lookup had come a moment later.
		if attempt == maxRelocations || !errors.Is(rerr, ErrMissing) {
			return nil, loc, rerr
		}
		again, _, lerr := s.locate(id)
		if lerr == nil && again == loc {
			return nil, loc, rerr
		}
		loc, err = again, lerr
	}
}

// readRecord reads and checks the record the index says holds id.
func (s *Store) readRecord(ctx context.Context, id ID, loc Location, pooled bool) ([]byte, error) {
	n := RecordHeaderSize + int(loc.StoredLen) // StoredLen bounded by decodeIndexValue
	var rec []byte
	if loc.Codec == CodecRaw && !pooled {
		rec = make([]byte, n)
	} else {
		rec = getBuf(n)[:n]
	}
	err := s.readPackBytes(ctx, id, loc, rec)
	if err == nil {
		err = checkRecord(id, loc, rec)
	}
	if errors.Is(err, ErrCorrupt) && s.remote != nil && s.remote.cache != nil {
		if _, remote := s.remote.size(loc.Pack); remote {
			// The block cache keeps no checksums of its own: drop the
			// pack's blocks and read them from the backend once more.
			s.remote.cache.Forget(loc.Pack)
			if err = s.readPackBytes(ctx, id, loc, rec); err == nil {
				err = checkRecord(id, loc, rec)
			}
		}
	}
	switch {
	case err == nil:
		return rec, nil
	case errors.Is(err, ErrCorrupt):
		return nil, err
	case errors.Is(err, ErrNoObject):
		return nil, fmt.Errorf("%w: chunk %s: %w", ErrMissing, id, err)
	case errors.Is(err, io.ErrUnexpectedEOF):
		return nil, fmt.Errorf("%w: chunk %s: pack %d ends before its record at %d+%d", ErrMissing, id, loc.Pack, loc.Offset, n)
	}
	return nil, fmt.Errorf("cas: chunk %s: read pack %d at %d: %w", id, loc.Pack, loc.Offset, err)
}

// checkRecord checks a record read for id against its index entry and its
// CRC.
func checkRecord(id ID, loc Location, rec []byte) error {
	h, err := parseRecordHeader(rec)
	if err != nil {
		return fmt.Errorf("%w: chunk %s: pack %d at %d: %w", ErrCorrupt, id, loc.Pack, loc.Offset, err)
	}
	if h.ID != id || h.Codec != loc.Codec || h.StoredLen != loc.StoredLen || h.RawLen != loc.RawLen {
		return fmt.Errorf("%w: chunk %s: pack %d at %d holds a record for %s (%s, %d/%d bytes), index says %s %d/%d",
			ErrCorrupt, id, loc.Pack, loc.Offset, h.ID.Short(), h.Codec, h.StoredLen, h.RawLen, loc.Codec, loc.StoredLen, loc.RawLen)
	}
	if !recordCRCValid(h, rec) {
		return fmt.Errorf("%w: chunk %s: CRC mismatch in pack %d at %d", ErrCorrupt, id, loc.Pack, loc.Offset)
	}
	return nil
}

// readPackBytes reads a record's bytes from its pack, local or remote.
func (s *Store) readPackBytes(ctx context.Context, id ID, loc Location, rec []byte) error {
	if size, ok := s.remote.size(loc.Pack); ok {
		return s.readRemote(ctx, loc.Pack, size, rec, loc.Offset)
	}
	cf, err := s.files.acquire(loc.Pack)
	if err != nil {
		if isNotExist(err) {
			// Uploaded between the lookup and the open: the remote flag
			// is set before the local file goes.
			if size, ok := s.remote.size(loc.Pack); ok {
				return s.readRemote(ctx, loc.Pack, size, rec, loc.Offset)
			}
			return fmt.Errorf("%w: chunk %s: pack %d file is gone", ErrMissing, id, loc.Pack)
		}
		return fmt.Errorf("cas: chunk %s: open pack %d: %w", id, loc.Pack, err)
	}
	defer s.files.release(cf)
	return readFull(cf.f, rec, loc.Offset)
}

// lifecycle lets Close wait for calls in progress and refuse new ones.
type lifecycle struct {
	mu     sync.Mutex
	idle   *sync.Cond
	active int
	closed bool
}

func (l *lifecycle) enter() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return ErrClosed
	}
	l.active++
	return nil
}

func (l *lifecycle) leave() {
	l.mu.Lock()
	l.active--
	if l.active == 0 && l.idle != nil {
		l.idle.Broadcast()
	}
	l.mu.Unlock()
}

func (l *lifecycle) close() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.closed = true
	if l.idle == nil {
		l.idle = sync.NewCond(&l.mu)
	}
	for l.active > 0 {
		l.idle.Wait()
	}
}
