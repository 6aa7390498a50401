package cas

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"time"

	"github.com/dgraph-io/badger/v4"
)

// ForEachChunk calls fn for every committed chunk, in ID order, from one
// consistent snapshot of the index. fn may call read methods of the store;
// an error from fn stops the walk and is returned.
func (s *Store) ForEachChunk(ctx context.Context, fn func(id ID, loc Location) error) error {
	if err := s.life.enter(); err != nil {
		return err
	}
	defer s.life.leave()
	return s.db.View(func(txn *badger.Txn) error {
		return forEachIndexEntry(ctx, txn, func(id ID, loc Location, derr error) error {
			if derr != nil {
				return fmt.Errorf("%w: index entry of chunk %s: %w", ErrCorrupt, id, derr)
			}
			return fn(id, loc)
		})
	})
}

// PackInfo describes one pack, for gc policy.
type PackInfo struct {
	Number uint64
	// Size is the committed length of the pack file.
	Size int64
	// Records counts the committed records, live or not.
	Records uint64
	// LiveChunks counts the index entries pointing into the pack;
	// LiveBytes is the space their records take (headers included) and
	// LiveRawBytes their decoded size. Size-PackHeaderSize-LiveBytes is
	// what a Repack would reclaim.
	LiveChunks   uint64
	LiveBytes    int64
	LiveRawBytes int64
	// Written is when an index entry last came to point into the pack
	// (zero if unknown, for packs committed before this was recorded): no
	// chunk of the pack was indexed later.
	Written time.Time
	// Active is set on the pack currently receiving appends.
	Active bool
	// Remote is set on packs that live in the store's Backend.
	Remote bool
}

// Packs lists the committed packs in number order.
func (s *Store) Packs(ctx context.Context) ([]PackInfo, error) {
	if err := s.life.enter(); err != nil {
		return nil, err
	}
	defer s.life.leave()
	s.mu.Lock()
	active := uint64(0)
	if s.active != nil {
		active = s.active.num
	}
	s.mu.Unlock()
	var out []PackInfo
	err := s.db.View(func(txn *badger.Txn) error {
		return forEachPackMeta(txn, func(num uint64, m packMeta) error {
			if err := ctx.Err(); err != nil {
				return err
			}
			out = append(out, PackInfo{
				Number: num, Size: m.Committed, Records: m.Records,
				LiveChunks: m.LiveChunks, LiveBytes: m.liveBytes(), LiveRawBytes: int64(m.LiveRaw),
				Written: unixNanoTime(m.Written), Active: num == active, Remote: m.Remote,
			})
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("cas: list packs: %w", err)
	}
	return out, nil
}

// Stats summarizes the store.
type Stats struct {
	Chunks      uint64 // committed chunks
	Pending     int    // chunks put but not yet synced
	Packs       int
	PackBytes   int64 // committed length of all packs
	StoredBytes int64 // payload bytes of the committed chunks
	RawBytes    int64 // their decoded size
	// RemotePacks and RemoteBytes are the packs (and their committed
	// length) that live in the Backend; the rest are local files.
	RemotePacks int
	RemoteBytes int64
}

// Stats adds up the pack counters: it costs one read per pack, not per chunk.
func (s *Store) Stats(ctx context.Context) (Stats, error) {
	if err := s.life.enter(); err != nil {
		return Stats{}, err
	}
	defer s.life.leave()
	var st Stats
	s.mu.Lock()
	st.Pending = len(s.pending)
	s.mu.Unlock()
	err := s.db.View(func(txn *badger.Txn) error {
		return forEachPackMeta(txn, func(_ uint64, m packMeta) error {
			if err := ctx.Err(); err != nil {
				return err
			}
			st.Packs++
			st.PackBytes += m.Committed
			st.Chunks += m.LiveChunks
			st.StoredBytes += int64(m.LiveStored)
			st.RawBytes += int64(m.LiveRaw)
			if m.Remote {
				st.RemotePacks++
				st.RemoteBytes += m.Committed
			}
			return nil
		})
	})
	if err != nil {
		return Stats{}, fmt.Errorf("cas: stats: %w", err)
	}
	return st, nil
}

// DeleteChunks removes the index entries of ids; IDs without an entry are
// ignored. Their bytes stay in the packs until a Repack. It affects
// committed chunks only: a chunk put but not yet synced is committed by the
// next Sync. Deciding what may be deleted (reachability, a safety margin
// for uploads in flight) is the caller's job.
func (s *Store) DeleteChunks(ctx context.Context, ids []ID) error {
	if err := s.life.enter(); err != nil {
		return err
	}
	defer s.life.leave()
	ops := make([]indexOp, len(ids))
	for i, id := range ids {
		ops[i] = indexOp{id: id, cond: condAny}
	}
	if _, err := s.applyIndexOps(ctx, ops, nil); err != nil {
		return fmt.Errorf("cas: delete %d chunks: %w", len(ids), err)
	}
	return nil
}

// DeleteCheck decides, inside a deletion transaction, which chunks of a
// batch must stay (see DeleteChunksChecked). It reads what it needs
// through txn so that badger's conflict detection covers it, and must not
// write. It may run more than once for a batch: each attempt sees a newer
// snapshot. It must not call Has or Put for the batch's chunks, which wait
// for the deletion to end.
type DeleteCheck func(txn *badger.Txn, batch []ID) (keep IDSet, err error)

// deleteAttempts bounds the conflicts one deletion batch may meet before
// DeleteChunksChecked gives up; each conflict also halves the batch, so
// the transaction gets shorter and easier to slip between commits.
const deleteAttempts = 64

// minDeleteBatch is the smallest batch a conflict shrinks a deletion to.
const minDeleteBatch = 16

// DeleteResult says what DeleteChunksChecked deleted.
type DeleteResult struct {
	Chunks int
	// Bytes is the space the deleted entries' records take in their
	// packs, headers included: what Repack or RemovePack can reclaim.
	Bytes int64
}

// DeleteChunksChecked removes the index entries of ids, in batches, each
// in one transaction that first runs check (if not nil) and then deletes
// only the chunks check does not keep and whose pack was last written no
// later than writtenBy (a zero writtenBy skips that test). IDs without an
// entry are ignored; their bytes stay in the packs until a Repack.
//
// Everything check reads is part of the transaction, so a concurrent
// transaction that writes one of those keys before this one commits makes
// it fail with badger.ErrConflict; the batch is then retried (smaller,
// with check run again on a newer snapshot). In the other order, a
// concurrent transaction that read one of the deleted entries (a manifest
// commit re-checking its chunks with HasTxn) is the one that conflicts.
// Package gc builds its fence against concurrent commits on this.
func (s *Store) DeleteChunksChecked(ctx context.Context, ids []ID, writtenBy time.Time, check DeleteCheck) (DeleteResult, error) {
	var res DeleteResult
	if err := s.life.enter(); err != nil {
		return res, err
	}
	defer s.life.leave()
	var by int64
	if !writtenBy.IsZero() {
		by = max(writtenBy.UnixNano(), 1)
	}
	size := opsPerTxn
	for rest := ids; len(rest) > 0; {
		batch := rest[:min(size, len(rest))]
		n, bytes, err := s.deleteBatch(ctx, batch, by, check)
		if errors.Is(err, errShrinkBatch) {
			size = max(size/2, minDeleteBatch)
			continue
		}
		if err != nil {
			return res, fmt.Errorf("cas: delete %d chunks: %w", len(ids), err)
		}
		res.Chunks += n
		res.Bytes += bytes
		rest = rest[len(batch):]
	}
	return res, nil
}

// errShrinkBatch asks DeleteChunksChecked to retry with a smaller batch.
var errShrinkBatch = errors.New("cas: deletion batch keeps conflicting")

// deleteBatch runs one deletion transaction, retrying conflicts with
// backoff; after a few in a row it returns errShrinkBatch so the caller
// can shrink the batch.
func (s *Store) deleteBatch(ctx context.Context, batch []ID, writtenBy int64, check DeleteCheck) (int, int64, error) {
	for attempt := 1; ; attempt++ {
		var n int
		var bytes int64
		s.deletions.add(batch)
		err := s.db.Update(func(txn *badger.Txn) error {
			var keep IDSet
			if check != nil {
				var err error
				if keep, err = check(txn, batch); err != nil {
					return err
				}
			}
			ops := make([]indexOp, 0, len(batch))
			for _, id := range batch {
				if !keep.Has(id) {
					ops = append(ops, indexOp{id: id, cond: condAny, writtenBy: writtenBy})
				}
			}
			var err error
			n, bytes, err = s.applyTxn(txn, ops, nil)
			return err
		})
		s.deletions.remove(batch)
		if !errors.Is(err, badger.ErrConflict) {
			return n, bytes, err
		}
		if attempt >= deleteAttempts {
			return 0, 0, fmt.Errorf("%d conflicting transactions in a row: %w", attempt, err)
		}
		if attempt%4 == 0 && len(batch) > minDeleteBatch {
			return 0, 0, errShrinkBatch
		}
		sleep := time.Duration(attempt)*time.Millisecond/2 + rand.N(time.Millisecond)
		t := time.NewTimer(sleep)
		select {
		case <-ctx.Done():
			t.Stop()
			return 0, 0, ctx.Err()
		case <-t.C:
		}
	}
}

// deletionSet tracks the IDs of deletion transactions in flight.
//
// A caller that pins a chunk and then asks Has (or Puts it) relies on one
// of two things: the deletion's check saw the pin and kept the chunk, or
// the lookup sees the chunk already gone and it is uploaded again. Only
// the window between the check and the commit of a deletion escapes both,
// so Has and Put wait for a deletion of the same ID to finish before they
// read the index. The wait is one transaction long; lookups of other IDs
// do not wait.
type deletionSet struct {
	mu      sync.Mutex
	cond    *sync.Cond
	ids     map[ID]int
	waiting int // callers in await, for tests
}

func (d *deletionSet) add(ids []ID) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.ids == nil {
		d.ids = make(map[ID]int)
		d.cond = sync.NewCond(&d.mu)
	}
	for _, id := range ids {
		d.ids[id]++
	}
}

func (d *deletionSet) remove(ids []ID) {
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, id := range ids {
		if d.ids[id] <= 1 {
			delete(d.ids, id)
		} else {
			d.ids[id]--
		}
	}
	d.cond.Broadcast()
}

// await returns once no deletion in flight concerns any of ids.
func (d *deletionSet) await(ids []ID) {
	d.mu.Lock()
	defer d.mu.Unlock()
	for len(d.ids) > 0 && slices.ContainsFunc(ids, func(id ID) bool { return d.ids[id] > 0 }) {
		d.waiting++
		d.cond.Wait()
		d.waiting--
	}
}

// RepackReport says what a Repack did.
type RepackReport struct {
	Pack           uint64
	Kept           int   // records copied to the active pack and repointed
	KeptBytes      int64 // their record bytes
	Dropped        int   // live records keep rejected: their entries were deleted
	Orphans        int   // records no entry pointed at
	Moved          int   // changes skipped because the entry changed meanwhile (copies stay as orphans)
	ReclaimedBytes int64 // size of the removed pack minus KeptBytes
	BadRegions     []Region
	Removed        bool // the old pack file is gone
}

// Region is a stretch of a pack that held no valid record.
type Region struct {
	Pack   uint64
	Offset int64
	Length int64
	Reason string
}

// Repack rewrites pack num without its dead records: every record the index
// still points at and keep accepts is copied (as is, without recompressing)
// to the active pack; after a Sync their entries are repointed, each only if
// it still points at the old record, and the entries of live records keep
// rejects are deleted. Then, if no entry points into the old pack any more,
// its file is removed. If corrupt regions hid live records, the pack is
// kept and ErrPackInUse is returned with the report.
func (s *Store) Repack(ctx context.Context, num uint64, keep func(ID) bool) (RepackReport, error) {
	rep := RepackReport{Pack: num}
	if err := s.life.enter(); err != nil {
		return rep, err
	}
	defer s.life.leave()
	s.gcMu.Lock()
	defer s.gcMu.Unlock()

	meta, err := s.quiescePack(ctx, num)
	if err != nil {
		return rep, err
	}
	r, release, err := s.openPackReader(ctx, num)
	if err != nil {
		return rep, fmt.Errorf("%w: repack pack %d: %w", ErrMissing, num, err)
	}
	defer release()

	// Collect the live records in batches: look their entries up, copy the
	// kept ones, remember the index changes to make once the copies are
	// durable.
	var ops []indexOp
	type liveRec struct {
		loc Location
		rec []byte
	}
	var batch []liveRec
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		err := s.db.View(func(txn *badger.Txn) error {
			for _, lr := range batch {
				id := recordID(lr.rec)
				cur, ok, err := getIndexEntry(txn, id)
				if err != nil {
					return err
				}
				if !ok || cur != lr.loc {
					rep.Orphans++
					continue
				}
				if !keep(id) {
					rep.Dropped++
					ops = append(ops, indexOp{id: id, cond: condAt, at: lr.loc})
					continue
				}
				newLoc, err := s.appendCopy(lr.rec, lr.loc)
				if err != nil {
					return err
				}
				rep.Kept++
				rep.KeptBytes += int64(len(lr.rec))
				ops = append(ops, indexOp{id: id, cond: condAt, at: lr.loc, set: &newLoc})
			}
			return nil
		})
		batch = batch[:0]
		return err
	}
	var batchBytes int
	err = scanPack(ctx, r, PackHeaderSize, meta.Committed, s.codecs, false,
		func(r scannedRecord) error {
			rec := make([]byte, RecordHeaderSize+len(r.payload))
			putRecordHeader(rec, r.h.Codec, r.h.ID, r.h.RawLen, r.payload)
			copy(rec[RecordHeaderSize:], r.payload)
			batch = append(batch, liveRec{loc: Location{Pack: num, Offset: r.off, StoredLen: r.h.StoredLen, RawLen: r.h.RawLen, Codec: r.h.Codec}, rec: rec})
			batchBytes += len(rec)
			if len(batch) >= 256 || batchBytes >= 8<<20 {
				batchBytes = 0
				return flush()
			}
			return nil
		},
		func(b badRegion) error {
			rep.BadRegions = append(rep.BadRegions, Region{Pack: num, Offset: b.off, Length: b.length, Reason: b.reason.Error()})
			return nil
		})
	if err == nil {
		err = flush()
	}
	if err != nil {
		return rep, fmt.Errorf("cas: repack pack %d: %w", num, err)
	}
	if err := s.sync(ctx); err != nil {
		return rep, fmt.Errorf("cas: repack pack %d: sync copies: %w", num, err)
	}
	applied, err := s.applyIndexOps(ctx, ops, nil)
	if err != nil {
		return rep, fmt.Errorf("cas: repack pack %d: repoint entries: %w", num, err)
	}
	rep.Moved = len(ops) - applied
	removed, err := s.removeIfDead(ctx, num)
	if err != nil {
		return rep, fmt.Errorf("cas: repack pack %d: %w", num, err)
	}
	rep.Removed = removed
	if !removed {
		return rep, fmt.Errorf("%w: pack %d kept after repack: entries still point into it (%d damaged regions)", ErrPackInUse, num, len(rep.BadRegions))
	}
	rep.ReclaimedBytes = meta.Committed - rep.KeptBytes
	return rep, nil
}

// recordID returns the ID in a record's header.
func recordID(rec []byte) ID { return ID(rec[recOffID:recOffStored]) }

// appendCopy appends an existing record to the active pack. The copy is not
// pending: Repack repoints its entry itself after the next sync round.
func (s *Store) appendCopy(rec []byte, old Location) (Location, error) {
	s.mu.Lock()
	w, off, kick, err := s.appendLocked(rec)
	s.mu.Unlock()
	if err != nil {
		return Location{}, err
	}
	kick.start()
	loc := old
	loc.Pack, loc.Offset = w.num, off
	return loc, nil
}

// quiescePack makes sure pack num receives no more appends and that every
// record in it is committed, then returns its metadata.
func (s *Store) quiescePack(ctx context.Context, num uint64) (packMeta, error) {
	s.mu.Lock()
	if s.active != nil && s.active.num == num {
		s.sealActiveLocked()
	}
	s.mu.Unlock()
	if err := s.sync(ctx); err != nil {
		return packMeta{}, fmt.Errorf("cas: sync before touching pack %d: %w", num, err)
	}
	var m packMeta
	var found bool
	err := s.db.View(func(txn *badger.Txn) error {
		var err error
		m, found, err = readPackMeta(txn, num)
		return err
	})
	if err != nil {
		return m, fmt.Errorf("cas: pack %d: %w", num, err)
	}
	if !found {
		return m, fmt.Errorf("%w: %d", ErrPackNotFound, num)
	}
	return m, nil
}

// RemovePack deletes pack num if no index entry points into it; otherwise
// it returns ErrPackInUse and changes nothing.
func (s *Store) RemovePack(ctx context.Context, num uint64) error {
	if err := s.life.enter(); err != nil {
		return err
	}
	defer s.life.leave()
	s.gcMu.Lock()
	defer s.gcMu.Unlock()
	if _, err := s.quiescePack(ctx, num); err != nil {
		return err
	}
	removed, err := s.removeIfDead(ctx, num)
	if err != nil {
		return fmt.Errorf("cas: remove pack %d: %w", num, err)
	}
	if !removed {
		return fmt.Errorf("%w: pack %d", ErrPackInUse, num)
	}
	return nil
}

// removeIfDead deletes the metadata of a pack with no live chunks and then
// its file. The metadata goes first: a crash in between leaves a file
// badger does not know, which the next Open deletes.
func (s *Store) removeIfDead(ctx context.Context, num uint64) (bool, error) {
	dead, remote := false, false
	err := s.update(ctx, func(txn *badger.Txn) error {
		m, found, err := readPackMeta(txn, num)
		if err != nil {
			return err
		}
		if !found {
			return fmt.Errorf("%w: %d", ErrPackNotFound, num)
		}
		if dead = m.LiveChunks == 0; !dead {
			return nil
		}
		remote = m.Remote
		return txn.Delete(packKey(num))
	})
	if err != nil || !dead {
		return false, err
	}
	if remote {
		s.remote.drop(num)
		// A failure leaves an object the index does not know; the next
		// Open deletes it.
		if err := s.remote.backend.Delete(ctx, num); err != nil {
			s.log.Warn("cas: delete remote pack failed; the next start retries", "pack", num, "err", err)
		}
	}
	s.files.forget(num)
	if err := removePackFile(s.dir, num); err != nil {
		return false, err
	}
	// A reader that looked the pack up before the removal may have cached
	// a fresh handle meanwhile; drop it so the space is really freed.
	s.files.forget(num)
	return true, nil
}

// unixNanoTime is the time of a stored Unix-nanosecond stamp, zero for 0.
func unixNanoTime(ns int64) time.Time {
	if ns == 0 {
		return time.Time{}
	}
	return time.Unix(0, ns)
}

// getIndexEntry reads one entry inside txn.
func getIndexEntry(txn *badger.Txn, id ID) (Location, bool, error) {
	item, err := txn.Get(indexKey(id))
	if err != nil {
		if errors.Is(err, badger.ErrKeyNotFound) {
			return Location{}, false, nil
		}
		return Location{}, false, fmt.Errorf("read index entry of %s: %w", id, err)
	}
	var loc Location
	err = item.Value(func(v []byte) error {
		var derr error
		loc, derr = decodeIndexValue(v)
		return derr
	})
	if err != nil {
		return Location{}, false, fmt.Errorf("index entry of %s: %w", id, err)
	}
	return loc, true, nil
}
