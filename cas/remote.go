package cas

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/dgraph-io/badger/v4"
)

// ErrBackendRequired is returned by Open when the index says packs live in
// a Backend but none was given: opening without it would report every
// remote chunk missing.
var ErrBackendRequired = errors.New("cas: packs of this store live in a backend; open it with that backend")

// remoteState is the store's view of its Backend: which packs live there
// (mirroring the Remote flag in badger) and the upload loop.
type remoteState struct {
	backend Backend
	cache   RangeCache

	mu    sync.Mutex
	packs map[uint64]int64 // remote pack → committed length

	// uploadMu makes uploads one at a time, so the background loop and
	// UploadAll never send the same pack twice at once.
	uploadMu sync.Mutex
	wake     chan struct{}
	stop     context.CancelFunc
	done     chan struct{}
}

// RangeCache serves ranged reads of remote packs from a bounded local
// cache (internal/blockcache is the server's); key is the pack number and
// size its committed length. The store closes it.
type RangeCache interface {
	ReadAt(ctx context.Context, key uint64, size int64, p []byte, off int64) error
	Forget(key uint64)
	Close() error
}

func (r *remoteState) size(num uint64) (int64, bool) {
	if r == nil {
		return 0, false
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	n, ok := r.packs[num]
	return n, ok
}

func (r *remoteState) set(num uint64, size int64) {
	r.mu.Lock()
	r.packs[num] = size
	r.mu.Unlock()
}

func (r *remoteState) drop(num uint64) {
	r.mu.Lock()
	delete(r.packs, num)
	r.mu.Unlock()
	if r.cache != nil {
		r.cache.Forget(num)
	}
}

// kick wakes the upload loop without blocking.
func (r *remoteState) kick() {
	if r == nil {
		return
	}
	select {
	case r.wake <- struct{}{}:
	default:
	}
}

// readRemote fills p from remote pack num (committed length size) at off,
// through the block cache when there is one.
func (s *Store) readRemote(ctx context.Context, num uint64, size int64, p []byte, off int64) error {
	if off < 0 || off+int64(len(p)) > size {
		return io.ErrUnexpectedEOF
	}
	if s.remote.cache != nil {
		return s.remote.cache.ReadAt(ctx, num, size, p, off)
	}
	return readFull(remoteReaderAt{ctx: ctx, b: s.remote.backend, num: num}, p, off)
}

// remoteReaderAt reads a remote pack directly, for scans: they read each
// byte once, so caching their blocks would only evict useful ones.
type remoteReaderAt struct {
	ctx context.Context
	b   Backend
	num uint64
}

func (r remoteReaderAt) ReadAt(p []byte, off int64) (int, error) {
	return r.b.ReadAt(r.ctx, r.num, p, off)
}

// openPackReader returns a reader of pack num for a whole-pack scan, local
// or remote, and a func to release it.
func (s *Store) openPackReader(ctx context.Context, num uint64) (io.ReaderAt, func(), error) {
	if _, ok := s.remote.size(num); ok {
		return remoteReaderAt{ctx: ctx, b: s.remote.backend, num: num}, func() {}, nil
	}
	f, err := os.Open(packPath(s.dir, num))
	if err != nil {
		if isNotExist(err) {
			// Uploaded meanwhile: the flag is set before the file goes.
			if _, ok := s.remote.size(num); ok {
				return remoteReaderAt{ctx: ctx, b: s.remote.backend, num: num}, func() {}, nil
			}
		}
		return nil, nil, err
	}
	return f, func() { _ = f.Close() }, nil
}

// listRemote lists the backend's packs.
func (s *Store) listRemote(ctx context.Context) (map[uint64]int64, error) {
	objs := make(map[uint64]int64)
	if s.remote == nil {
		return objs, nil
	}
	err := s.remote.backend.List(ctx, func(num uint64, size int64) error {
		objs[num] = size
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("cas: list packs in %s: %w", s.remote.backend, err)
	}
	return objs, nil
}

// recoverRemote reconciles the index with the backend at Open: remote packs
// must exist with their committed length, local copies of packs already
// remote are leftovers of a finished upload, and objects the index does not
// know (a crash between removing a pack's metadata and its object) are
// deleted. It removes from disk the packs it handled.
func (s *Store) recoverRemote(ctx context.Context, st storeState, disk map[uint64]diskPack, objs map[uint64]int64, rep *OpenReport) error {
	if s.remote == nil {
		for num, m := range st.metas {
			if m.Remote {
				return fmt.Errorf("%w (pack %d is remote)", ErrBackendRequired, num)
			}
		}
		return nil
	}
	next := st.nextPack
	for num, m := range st.metas {
		next = max(next, num+1)
		if !m.Remote {
			continue
		}
		s.remote.packs[num] = m.Committed
		size, ok := objs[num]
		switch {
		case !ok:
			rep.MissingPacks = append(rep.MissingPacks, num)
			s.log.Error("cas: remote pack missing; its chunks are lost", "pack", num, "backend", s.remote.backend.String())
		case size < m.Committed:
			rep.ShortPacks = append(rep.ShortPacks, ShortPack{Pack: num, Committed: m.Committed, Size: size})
			s.log.Error("cas: remote pack shorter than committed", "pack", num, "committed", m.Committed, "size", size)
		}
		if _, local := disk[num]; local {
			if err := removePackFile(s.dir, num); err != nil {
				return err
			}
			delete(disk, num)
		}
	}
	for num, size := range objs {
		if _, known := st.metas[num]; known {
			continue
		}
		if st.rebuilding || num >= next {
			rep.UnindexedPacks = append(rep.UnindexedPacks, num)
			continue
		}
		if err := s.remote.backend.Delete(ctx, num); err != nil {
			return fmt.Errorf("cas: delete unreferenced remote pack %d: %w", num, err)
		}
		rep.RemovedPacks = append(rep.RemovedPacks, PackBytes{Pack: num, Bytes: size})
		s.log.Info("cas: deleted remote pack the index no longer references", "pack", num, "bytes", size)
	}
	return nil
}

// uploadLoop uploads sealed local packs whenever woken, retrying failures
// with backoff until the store closes.
func (s *Store) uploadLoop(ctx context.Context) {
	defer close(s.remote.done)
	backoff := time.Second
	for {
		_, err := s.uploadSealed(ctx)
		switch {
		case ctx.Err() != nil:
			return
		case err != nil:
			s.log.Warn("cas: pack upload failed; retrying", "backend", s.remote.backend.String(), "in", backoff, "err", err)
			select {
			case <-ctx.Done():
				return
			case <-time.After(backoff):
			}
			backoff = min(2*backoff, time.Minute)
			continue
		}
		backoff = time.Second
		select {
		case <-ctx.Done():
			return
		case <-s.remote.wake:
		}
	}
}

// UploadReport says what UploadAll sent.
type UploadReport struct {
	Packs int
	Bytes int64
}

// UploadAll seals the active pack and uploads every local pack to the
// backend, returning once they are all remote. Migration and tests use it;
// the server leaves it to the background loop.
func (s *Store) UploadAll(ctx context.Context) (UploadReport, error) {
	if err := s.life.enter(); err != nil {
		return UploadReport{}, err
	}
	defer s.life.leave()
	if s.remote == nil {
		return UploadReport{}, errors.New("cas: the store has no backend to upload to")
	}
	s.mu.Lock()
	s.sealActiveLocked()
	s.mu.Unlock()
	if err := s.sync(ctx); err != nil {
		return UploadReport{}, err
	}
	return s.uploadSealed(ctx)
}

// uploadSealed uploads the local packs that no longer receive appends, in
// number order.
func (s *Store) uploadSealed(ctx context.Context) (UploadReport, error) {
	var rep UploadReport
	var nums []uint64
	err := s.db.View(func(txn *badger.Txn) error {
		return forEachPackMeta(txn, func(num uint64, m packMeta) error {
			if !m.Remote {
				nums = append(nums, num)
			}
			return nil
		})
	})
	if err != nil {
		return rep, fmt.Errorf("cas: list packs to upload: %w", err)
	}
	slices.Sort(nums)
	for _, num := range nums {
		if s.isWriterPack(num) {
			continue
		}
		n, err := s.uploadPack(ctx, num)
		if err != nil {
			return rep, err
		}
		if n > 0 {
			rep.Packs++
			rep.Bytes += n
		}
	}
	return rep, nil
}

// uploadPack sends pack num's committed bytes to the backend, confirms
// them, marks the pack remote in badger and deletes the local file, in that
// order: the index never calls a pack remote before the backend holds it.
func (s *Store) uploadPack(ctx context.Context, num uint64) (int64, error) {
	s.remote.uploadMu.Lock()
	defer s.remote.uploadMu.Unlock()
	var m packMeta
	var found bool
	err := s.db.View(func(txn *badger.Txn) error {
		var err error
		m, found, err = readPackMeta(txn, num)
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("cas: upload pack %d: %w", num, err)
	}
	if !found || m.Remote || s.isWriterPack(num) {
		return 0, nil
	}
	f, err := os.Open(packPath(s.dir, num))
	if err != nil {
		return 0, fmt.Errorf("cas: upload pack %d: %w", num, err)
	}
	defer f.Close()
	b := s.remote.backend
	if err := b.Put(ctx, num, f, m.Committed); err != nil {
		return 0, fmt.Errorf("cas: upload pack %d to %s: %w", num, b, err)
	}
	if size, err := b.Stat(ctx, num); err != nil {
		return 0, fmt.Errorf("cas: confirm upload of pack %d: %w", num, err)
	} else if size != m.Committed {
		return 0, fmt.Errorf("cas: upload of pack %d: %s holds %d bytes, want %d", num, b, size, m.Committed)
	}

	// The flip excludes Repack, RemovePack and Check, which read the
	// pack's location once and then use it.
	s.gcMu.Lock()
	defer s.gcMu.Unlock()
	gone := false
	err = s.update(ctx, func(txn *badger.Txn) error {
		cur, ok, err := readPackMeta(txn, num)
		if err != nil {
			return err
		}
		if gone = !ok; gone {
			return nil
		}
		if cur.Committed != m.Committed {
			return fmt.Errorf("cas: pack %d grew from %d to %d during its upload", num, m.Committed, cur.Committed)
		}
		cur.Remote = true
		return txn.Set(packKey(num), encodePackMeta(cur))
	})
	if err != nil {
		return 0, fmt.Errorf("cas: mark pack %d remote: %w", num, err)
	}
	if gone {
		// Removed by gc while it was uploading.
		return 0, b.Delete(ctx, num)
	}
	s.remote.set(num, m.Committed)
	s.files.forget(num)
	if err := removePackFile(s.dir, num); err != nil {
		return 0, err
	}
	s.files.forget(num)
	s.log.Info("cas: pack uploaded", "pack", num, "bytes", m.Committed, "backend", b.String())
	return m.Committed, nil
}

// DownloadAll copies every remote pack back into the local directory and
// marks it local, then deletes its object: the way back from a backend.
// It stops the upload loop first, for good: the store should be closed
// and reopened without a backend afterwards. It is resumable: packs
// already local are skipped.
func (s *Store) DownloadAll(ctx context.Context) (UploadReport, error) {
	var rep UploadReport
	if err := s.life.enter(); err != nil {
		return rep, err
	}
	defer s.life.leave()
	if s.remote == nil {
		return rep, errors.New("cas: the store has no backend to download from")
	}
	s.stopUploads()
	var nums []uint64
	err := s.db.View(func(txn *badger.Txn) error {
		return forEachPackMeta(txn, func(num uint64, m packMeta) error {
			if m.Remote {
				nums = append(nums, num)
			}
			return nil
		})
	})
	if err != nil {
		return rep, fmt.Errorf("cas: list remote packs: %w", err)
	}
	slices.Sort(nums)
	for _, num := range nums {
		n, err := s.downloadPack(ctx, num)
		if err != nil {
			return rep, err
		}
		if n > 0 {
			rep.Packs++
			rep.Bytes += n
		}
	}
	return rep, nil
}

// downloadPack makes remote pack num local: the file is written and
// fsynced under a temporary name, renamed into place, and only then is the
// pack marked local and its object deleted.
func (s *Store) downloadPack(ctx context.Context, num uint64) (int64, error) {
	size, ok := s.remote.size(num)
	if !ok {
		return 0, nil
	}
	// The local directory has a DirBackend's layout: its Put writes,
	// fsyncs and renames into place.
	local := DirBackend{Dir: filepath.Join(s.dir, packsDirName)}
	src := remoteReaderAt{ctx: ctx, b: s.remote.backend, num: num}
	if err := local.Put(ctx, num, src, size); err != nil {
		return 0, fmt.Errorf("cas: download pack %d from %s: %w", num, s.remote.backend, err)
	}
	s.gcMu.Lock()
	defer s.gcMu.Unlock()
	err := s.update(ctx, func(txn *badger.Txn) error {
		m, found, err := readPackMeta(txn, num)
		if err != nil || !found {
			return err
		}
		m.Remote = false
		return txn.Set(packKey(num), encodePackMeta(m))
	})
	if err != nil {
		return 0, fmt.Errorf("cas: mark pack %d local: %w", num, err)
	}
	s.remote.drop(num)
	if err := s.remote.backend.Delete(ctx, num); err != nil {
		// The object is now unknown to the index as remote; a later Open
		// with this backend would not delete it (its meta exists), so
		// say so.
		s.log.Warn("cas: pack downloaded but its object could not be deleted", "pack", num, "err", err)
	}
	return size, nil
}
