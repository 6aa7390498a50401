package cas

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"

	"github.com/dgraph-io/badger/v4"

	"github.com/quic-s/quics/internal/atomicfile"
)

// OpenReport says what Open found and repaired. Callers log it; a report
// with problems still comes with a working store.
type OpenReport struct {
	// Packs is the number of packs the index knows.
	Packs int
	// TornTails lists packs cut back to their committed length: the bytes
	// were written but never committed (a crash, or a failed fsync).
	TornTails []PackBytes
	// TornBytes is the total of TornTails.
	TornBytes int64
	// RemovedPacks lists pack files that held nothing committed (created,
	// then a crash before their first Sync) and were deleted.
	RemovedPacks []PackBytes
	// ShortPacks lists packs shorter than their committed length: the end
	// of the file was lost. Chunks there read as ErrMissing; Check lists them.
	ShortPacks []ShortPack
	// MissingPacks lists packs the index knows whose file is gone.
	MissingPacks []uint64
	// UnindexedPacks lists pack files kept although badger does not know
	// them, because the index needs rebuilding (see NeedsRebuild).
	UnindexedPacks []uint64
	// StrayFiles are files under packs/ that are not packs; left alone.
	StrayFiles []string
	// NeedsRebuild is set when pack files exist but the index is missing
	// (a fresh database) or was being rebuilt when the process stopped.
	// Run RebuildIndex; until then those chunks read as ErrNotFound.
	NeedsRebuild bool
}

// PackBytes is a byte count about one pack.
type PackBytes struct {
	Pack  uint64
	Bytes int64
}

// ShortPack is a pack file shorter than its committed length.
type ShortPack struct {
	Pack      uint64
	Committed int64
	Size      int64
}

// Clean reports whether Open found nothing to repair or report.
func (r OpenReport) Clean() bool {
	return len(r.TornTails) == 0 && len(r.RemovedPacks) == 0 && len(r.ShortPacks) == 0 &&
		len(r.MissingPacks) == 0 && len(r.UnindexedPacks) == 0 && len(r.StrayFiles) == 0 && !r.NeedsRebuild
}

// Open opens (creating if needed) the store in dir with its index in db,
// which must commit durably (kv.Open sets SyncWrites). It recovers from a
// crash: bytes past a pack's committed length are truncated, pack files
// holding nothing committed are deleted. Damage it cannot repair (short or
// missing packs) is reported, not fatal.
func Open(ctx context.Context, dir string, db *badger.DB, opts Options) (*Store, OpenReport, error) {
	var rep OpenReport
	opts, err := opts.withDefaults()
	if err != nil {
		return nil, rep, err
	}
	if err := os.MkdirAll(filepath.Join(dir, packsDirName), 0o755); err != nil {
		return nil, rep, fmt.Errorf("cas: create %s: %w", dir, err)
	}
	// Make the directories themselves durable before anything is
	// committed that lives in them.
	for _, d := range []string{filepath.Dir(dir), dir} {
		if err := atomicfile.SyncDir(d); err != nil {
			return nil, rep, fmt.Errorf("cas: fsync %s: %w", d, err)
		}
	}
	c, err := newCodecs(opts.CompressionLevel, opts.DisableCompression)
	if err != nil {
		return nil, rep, err
	}
	s := &Store{
		dir:      dir,
		db:       db,
		opts:     opts,
		log:      opts.Logger,
		codecs:   c,
		files:    newFileCache(dir, opts.MaxOpenPacks),
		fsync:    (*os.File).Sync,
		pending:  make(map[ID]*pendingChunk),
		inflight: make(map[ID]chan struct{}),
		syncSem:  make(chan struct{}, 1),
	}
	if opts.Backend != nil {
		s.remote = &remoteState{
			backend: opts.Backend, cache: opts.RemoteCache, packs: make(map[uint64]int64),
			wake: make(chan struct{}, 1), done: make(chan struct{}),
		}
	}
	if err := s.recover(ctx, &rep); err != nil {
		s.releaseFiles()
		return nil, rep, err
	}
	if s.remote != nil {
		upCtx, stop := context.WithCancel(context.Background())
		s.remote.stop = stop
		go s.uploadLoop(upCtx)
	}
	return s, rep, nil
}

// storeState is what badger holds about the store as a whole.
type storeState struct {
	format     []byte
	nextPack   uint64
	rebuilding bool
	metas      map[uint64]packMeta
}

func (s *Store) loadState() (storeState, error) {
	st := storeState{metas: make(map[uint64]packMeta)}
	err := s.db.View(func(txn *badger.Txn) error {
		if item, err := txn.Get(metaKey(metaFormat)); err == nil {
			if st.format, err = item.ValueCopy(nil); err != nil {
				return err
			}
		} else if !errors.Is(err, badger.ErrKeyNotFound) {
			return err
		}
		if item, err := txn.Get(metaKey(metaNextPack)); err == nil {
			v, err := item.ValueCopy(nil)
			if err != nil {
				return err
			}
			if st.nextPack, err = decodeUvarint(v); err != nil {
				return fmt.Errorf("next pack number: %w", err)
			}
		} else if !errors.Is(err, badger.ErrKeyNotFound) {
			return err
		}
		if _, err := txn.Get(metaKey(metaRebuild)); err == nil {
			st.rebuilding = true
		} else if !errors.Is(err, badger.ErrKeyNotFound) {
			return err
		}
		return forEachPackMeta(txn, func(num uint64, m packMeta) error {
			st.metas[num] = m
			return nil
		})
	})
	if err != nil {
		return st, fmt.Errorf("cas: read store state: %w", err)
	}
	return st, nil
}

func (s *Store) recover(ctx context.Context, rep *OpenReport) error {
	st, err := s.loadState()
	if err != nil {
		return err
	}
	disk, stray, err := listPacks(s.dir)
	if err != nil {
		return err
	}
	objs, err := s.listRemote(ctx)
	if err != nil {
		return err
	}
	rep.StrayFiles = stray
	for _, p := range stray {
		s.log.Warn("cas: stray file among packs, left alone", "path", p)
	}

	switch {
	case st.format == nil:
		// A new store, or packs whose index was lost with the database.
		st.rebuilding = len(disk) > 0 || len(objs) > 0
		if err := s.db.Update(func(txn *badger.Txn) error {
			if st.rebuilding {
				if err := txn.Set(metaKey(metaRebuild), []byte{1}); err != nil {
					return err
				}
			}
			return txn.Set(metaKey(metaFormat), []byte{storeFormatVersion})
		}); err != nil {
			return fmt.Errorf("cas: initialize store meta: %w", err)
		}
	case len(st.format) != 1 || st.format[0] != storeFormatVersion:
		return fmt.Errorf("cas: store format %x not supported (want %d)", st.format, storeFormatVersion)
	}
	rep.NeedsRebuild = st.rebuilding
	rep.Packs = len(st.metas)
	if err := s.recoverRemote(ctx, st, disk, objs, rep); err != nil {
		return err
	}

	next := max(st.nextPack, 1)
	for num, m := range st.metas {
		next = max(next, num+1)
		if m.Remote {
			continue
		}
		d, ok := disk[num]
		switch {
		case !ok:
			rep.MissingPacks = append(rep.MissingPacks, num)
			s.log.Error("cas: pack file missing; its chunks are lost", "pack", num, "committed", m.Committed)
		case d.size > m.Committed:
			if err := ctx.Err(); err != nil {
				return err
			}
			if err := truncatePack(s.dir, num, m.Committed); err != nil {
				return err
			}
			torn := d.size - m.Committed
			rep.TornTails = append(rep.TornTails, PackBytes{Pack: num, Bytes: torn})
			rep.TornBytes += torn
			s.log.Info("cas: torn tail reclaimed", "pack", num, "bytes", torn)
		case d.size < m.Committed:
			rep.ShortPacks = append(rep.ShortPacks, ShortPack{Pack: num, Committed: m.Committed, Size: d.size})
			s.log.Error("cas: pack shorter than committed; chunks at its end are lost", "pack", num, "committed", m.Committed, "size", d.size)
		}
	}
	// A pack file badger does not know was created but never committed:
	// entries are committed only with (or after) their pack's metadata.
	for num, d := range disk {
		next = max(next, num+1)
		if _, known := st.metas[num]; known {
			continue
		}
		if st.rebuilding {
			rep.UnindexedPacks = append(rep.UnindexedPacks, num)
			continue
		}
		if err := removePackFile(s.dir, num); err != nil {
			return err
		}
		rep.RemovedPacks = append(rep.RemovedPacks, PackBytes{Pack: num, Bytes: d.size})
		s.log.Info("cas: removed pack that held nothing committed", "pack", num, "bytes", d.size)
	}
	sortReport(rep)

	if next != st.nextPack {
		if err := s.db.Update(func(txn *badger.Txn) error {
			return txn.Set(metaKey(metaNextPack), encodeUvarint(next))
		}); err != nil {
			return fmt.Errorf("cas: persist next pack number: %w", err)
		}
	}
	s.nextPack = next
	s.reuseLastPack(st, disk, next, rep)
	return nil
}

// reuseLastPack continues appending to the newest pack when it is healthy
// and not full, so restarts do not leave a trail of small packs.
func (s *Store) reuseLastPack(st storeState, disk map[uint64]diskPack, next uint64, rep *OpenReport) {
	if st.rebuilding || next < 2 {
		return
	}
	last := next - 1
	m, known := st.metas[last]
	d, onDisk := disk[last]
	if !known || m.Remote || !onDisk || d.size < m.Committed || m.Committed < PackHeaderSize ||
		m.Committed+RecordHeaderSize >= s.opts.PackSize || slices.Contains(rep.MissingPacks, last) {
		return
	}
	w, err := reopenPack(s.dir, last, m)
	if err != nil {
		s.log.Warn("cas: not reusing last pack", "pack", last, "err", err)
		return
	}
	s.active = w
}

func sortReport(rep *OpenReport) {
	byPack := func(a, b PackBytes) int { return cmp.Compare(a.Pack, b.Pack) }
	slices.SortFunc(rep.TornTails, byPack)
	slices.SortFunc(rep.RemovedPacks, byPack)
	slices.SortFunc(rep.ShortPacks, func(a, b ShortPack) int { return cmp.Compare(a.Pack, b.Pack) })
	slices.Sort(rep.MissingPacks)
	slices.Sort(rep.UnindexedPacks)
	slices.Sort(rep.StrayFiles)
}

// truncatePack cuts a pack back to size and makes that durable.
func truncatePack(dir string, num uint64, size int64) error {
	p := packPath(dir, num)
	f, err := os.OpenFile(p, os.O_RDWR, 0)
	if err != nil {
		return fmt.Errorf("cas: open pack %d to truncate: %w", num, err)
	}
	defer f.Close()
	if err := f.Truncate(size); err != nil {
		return fmt.Errorf("cas: truncate pack %d to %d: %w", num, size, err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("cas: fsync truncated pack %d: %w", num, err)
	}
	return nil
}

// removePackFile deletes a pack file and makes the removal durable.
func removePackFile(dir string, num uint64) error {
	p := packPath(dir, num)
	if err := os.Remove(p); err != nil && !isNotExist(err) {
		return fmt.Errorf("cas: remove pack %d: %w", num, err)
	}
	if err := atomicfile.SyncDir(filepath.Dir(p)); err != nil {
		return fmt.Errorf("cas: fsync dir of pack %d: %w", num, err)
	}
	return nil
}
