package cas

import (
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"os"
	"slices"
	"sort"

	"github.com/dgraph-io/badger/v4"
)

// ProblemKind classifies what Check found.
type ProblemKind uint8

// Problem kinds.
const (
	// ProblemPackMissing: the index knows a pack whose file is gone.
	ProblemPackMissing ProblemKind = iota + 1
	// ProblemPackShort: a pack file is shorter than its committed length.
	ProblemPackShort
	// ProblemPackUnknown: a pack file badger does not know (the next Open
	// deletes it, unless the index needs rebuilding).
	ProblemPackUnknown
	// ProblemPackHeader: a pack's header is damaged or names another pack.
	ProblemPackHeader
	// ProblemCorruptRegion: committed bytes that are not valid records
	// (CRC or, with readData, hash mismatch, or broken framing).
	ProblemCorruptRegion
	// ProblemBadEntry: an index entry that does not lead to a valid record
	// of its chunk; the chunk cannot be read (Problem.ID names it).
	ProblemBadEntry
	// ProblemCounters: a pack's live counters disagree with the index.
	ProblemCounters
)

func (k ProblemKind) String() string {
	switch k {
	case ProblemPackMissing:
		return "pack-missing"
	case ProblemPackShort:
		return "pack-short"
	case ProblemPackUnknown:
		return "pack-unknown"
	case ProblemPackHeader:
		return "pack-header"
	case ProblemCorruptRegion:
		return "corrupt-region"
	case ProblemBadEntry:
		return "bad-entry"
	case ProblemCounters:
		return "counters"
	default:
		return fmt.Sprintf("problem(%d)", uint8(k))
	}
}

// Problem is one finding of Check.
type Problem struct {
	Kind   ProblemKind
	Pack   uint64
	Offset int64 // in the pack, when about a region or a record
	Length int64 // of a corrupt region
	ID     ID    // the chunk, for ProblemBadEntry
	Detail string
}

func (p Problem) String() string {
	s := fmt.Sprintf("%s: pack %d", p.Kind, p.Pack)
	if p.Offset != 0 || p.Length != 0 {
		s += fmt.Sprintf(" at %d", p.Offset)
	}
	if p.Length != 0 {
		s += fmt.Sprintf("+%d", p.Length)
	}
	if !p.ID.IsZero() {
		s += " chunk " + p.ID.String()
	}
	if p.Detail != "" {
		s += ": " + p.Detail
	}
	return s
}

// CheckReport is the result of Check.
type CheckReport struct {
	Packs        int
	Chunks       uint64 // index entries
	Records      uint64 // valid records found in the packs
	ScannedBytes int64
	// OrphanRecords are valid records no index entry points at: duplicates
	// from races, copies left by Repack, chunks deleted by gc. Not errors;
	// a Repack reclaims them.
	OrphanRecords uint64
	OrphanBytes   int64
	Problems      []Problem
}

// OK reports whether Check found no problem.
func (r CheckReport) OK() bool { return len(r.Problems) == 0 }

// Affected lists the chunks that cannot be read, for re-upload or repair.
func (r CheckReport) Affected() []ID {
	var ids []ID
	for _, p := range r.Problems {
		if p.Kind == ProblemBadEntry {
			ids = append(ids, p.ID)
		}
	}
	return ids
}

// recSummary is what Check remembers of a valid record: 16 bytes, so a
// TB store's 16M records fit in a few hundred MB.
type recSummary struct {
	off uint32 // PackSize is at most 1 GiB, so offsets fit
	tag uint64 // first 8 bytes of the ID
}

func idTag(id ID) uint64 { return binary.LittleEndian.Uint64(id[:8]) }

// Check verifies the index against the packs, from one snapshot of the
// index: every committed pack is scanned (headers and CRCs; with readData
// every chunk is also decoded and hashed), every index entry must point at
// a valid record of its chunk, and pack counters must match the entries.
// Records no entry points at are counted as reclaimable orphans. Check runs
// alongside Puts and Syncs; it excludes Repack, RemovePack and RebuildIndex.
func (s *Store) Check(ctx context.Context, readData bool) (CheckReport, error) {
	var rep CheckReport
	if err := s.life.enter(); err != nil {
		return rep, err
	}
	defer s.life.leave()
	s.gcMu.Lock()
	defer s.gcMu.Unlock()

	txn := s.db.NewTransaction(false)
	defer txn.Discard()
	metas := make(map[uint64]packMeta)
	var nums []uint64
	if err := forEachPackMeta(txn, func(num uint64, m packMeta) error {
		metas[num] = m
		nums = append(nums, num)
		return nil
	}); err != nil {
		return rep, fmt.Errorf("cas: check: %w", err)
	}
	nextPack := uint64(0)
	if item, err := txn.Get(metaKey(metaNextPack)); err == nil {
		_ = item.Value(func(v []byte) error {
			nextPack, _ = decodeUvarint(v)
			return nil
		})
	}
	rep.Packs = len(nums)
	disk, _, err := listPacks(s.dir)
	if err != nil {
		return rep, err
	}
	objs, err := s.listRemote(ctx)
	if err != nil {
		return rep, err
	}
	problem := func(p Problem) { rep.Problems = append(rep.Problems, p) }

	// Pass 1: scan the committed part of every pack. Without readData a
	// remote pack is not downloaded: its object must have the committed
	// length, and entries are checked against that bound only.
	summaries := make(map[uint64][]recSummary, len(nums))
	recBytes := make(map[uint64]int64, len(nums))
	unscanned := make(map[uint64]bool)
	for _, num := range nums {
		m := metas[num]
		var size int64
		var ok bool
		if m.Remote {
			size, ok = objs[num]
		} else {
			var d diskPack
			d, ok = disk[num]
			size = d.size
		}
		if !ok {
			problem(Problem{Kind: ProblemPackMissing, Pack: num, Detail: fmt.Sprintf("committed length %d", m.Committed)})
			continue
		}
		end := m.Committed
		if size < end {
			problem(Problem{Kind: ProblemPackShort, Pack: num, Offset: size, Length: end - size,
				Detail: fmt.Sprintf("file has %d of %d committed bytes", size, end)})
			end = size
		}
		if m.Remote && !readData {
			unscanned[num] = true
			continue
		}
		var sums []recSummary
		err := s.scanPackFile(ctx, num, end, readData, problem, func(r scannedRecord) error {
			sums = append(sums, recSummary{off: uint32(r.off), tag: idTag(r.h.ID)})
			recBytes[num] += r.h.recordLen()
			return nil
		})
		if err != nil {
			return rep, err
		}
		summaries[num] = sums
		rep.Records += uint64(len(sums))
		rep.ScannedBytes += end
	}
	for num := range disk {
		if _, known := metas[num]; !known && num < nextPack && !s.isWriterPack(num) {
			problem(Problem{Kind: ProblemPackUnknown, Pack: num, Detail: fmt.Sprintf("%d bytes not in the index", disk[num].size)})
		}
	}
	for num, size := range objs {
		if _, known := metas[num]; !known && num < nextPack {
			problem(Problem{Kind: ProblemPackUnknown, Pack: num, Detail: fmt.Sprintf("%d bytes in %s not in the index", size, s.remote.backend)})
		}
	}

	// Pass 2: every entry must match a valid record; recount the packs.
	type counts struct{ chunks, stored, raw, confirmedBytes uint64 }
	live := make(map[uint64]*counts)
	confirmed := make(map[uint64]uint64)
	err = forEachIndexEntry(ctx, txn, func(id ID, loc Location, derr error) error {
		rep.Chunks++
		if derr != nil {
			problem(Problem{Kind: ProblemBadEntry, ID: id, Detail: derr.Error()})
			return nil
		}
		c := live[loc.Pack]
		if c == nil {
			c = &counts{}
			live[loc.Pack] = c
		}
		c.chunks++
		c.stored += uint64(loc.StoredLen)
		c.raw += uint64(loc.RawLen)
		if unscanned[loc.Pack] && loc.recordEnd() <= metas[loc.Pack].Committed {
			confirmed[loc.Pack]++
			c.confirmedBytes += uint64(RecordHeaderSize) + uint64(loc.StoredLen)
			return nil
		}
		sums := summaries[loc.Pack]
		i := sort.Search(len(sums), func(i int) bool { return int64(sums[i].off) >= loc.Offset })
		if i < len(sums) && int64(sums[i].off) == loc.Offset && sums[i].tag == idTag(id) {
			confirmed[loc.Pack]++
			c.confirmedBytes += uint64(RecordHeaderSize) + uint64(loc.StoredLen)
			return nil
		}
		problem(Problem{Kind: ProblemBadEntry, Pack: loc.Pack, Offset: loc.Offset, ID: id, Detail: s.diagnose(ctx, id, loc, metas, readData)})
		return nil
	})
	if err != nil {
		return rep, fmt.Errorf("cas: check index: %w", err)
	}
	for _, num := range nums {
		m := metas[num]
		c := live[num]
		if c == nil {
			c = &counts{}
		}
		if m.LiveChunks != c.chunks || m.LiveStored != c.stored || m.LiveRaw != c.raw {
			problem(Problem{Kind: ProblemCounters, Pack: num, Detail: fmt.Sprintf(
				"meta says %d chunks/%d stored/%d raw bytes, index has %d/%d/%d",
				m.LiveChunks, m.LiveStored, m.LiveRaw, c.chunks, c.stored, c.raw)})
		}
		if unscanned[num] {
			continue // records not read: orphans unknown
		}
		rep.OrphanRecords += uint64(len(summaries[num])) - confirmed[num]
		rep.OrphanBytes += recBytes[num] - int64(c.confirmedBytes)
	}
	return rep, nil
}

func (s *Store) isWriterPack(num uint64) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.ContainsFunc(s.writersLocked(), func(w *packWriter) bool { return w.num == num })
}

// scanPackFile checks a pack's header and scans [PackHeaderSize, end),
// turning damage into problems.
func (s *Store) scanPackFile(ctx context.Context, num uint64, end int64, readData bool,
	problem func(Problem), onRecord func(scannedRecord) error,
) error {
	f, release, err := s.openPackReader(ctx, num)
	if err != nil {
		problem(Problem{Kind: ProblemPackMissing, Pack: num, Detail: err.Error()})
		return nil
	}
	defer release()
	var hdr [PackHeaderSize]byte
	if err := readFull(f, hdr[:], 0); err != nil {
		problem(Problem{Kind: ProblemPackHeader, Pack: num, Detail: err.Error()})
		return nil
	}
	if got, err := parsePackHeader(hdr[:]); err != nil {
		problem(Problem{Kind: ProblemPackHeader, Pack: num, Detail: err.Error()})
	} else if got != num {
		problem(Problem{Kind: ProblemPackHeader, Pack: num, Detail: fmt.Sprintf("header names pack %d", got)})
	}
	return scanPack(ctx, f, PackHeaderSize, end, s.codecs, readData, onRecord, func(b badRegion) error {
		problem(Problem{Kind: ProblemCorruptRegion, Pack: num, Offset: b.off, Length: b.length, Detail: b.reason.Error()})
		return nil
	})
}

// diagnose says why an entry did not match a scanned record.
func (s *Store) diagnose(ctx context.Context, id ID, loc Location, metas map[uint64]packMeta, readData bool) string {
	m, known := metas[loc.Pack]
	if !known {
		return fmt.Sprintf("entry points into pack %d, which the index does not know", loc.Pack)
	}
	if loc.recordEnd() > m.Committed {
		return fmt.Sprintf("record %d+%d lies past the committed length %d", loc.Offset, loc.recordEnd()-loc.Offset, m.Committed)
	}
	rec, err := s.readRecord(ctx, id, loc, false)
	if err != nil {
		return err.Error()
	}
	if readData {
		h, _ := parseRecordHeader(rec)
		if err := verifyPayload(s.codecs, h, rec[RecordHeaderSize:]); err != nil {
			return err.Error()
		}
	}
	return fmt.Sprintf("%v: record reads back but is not on the pack's record boundaries", ErrCorrupt)
}

// RebuildReport is the result of RebuildIndex.
type RebuildReport struct {
	Packs      int
	Records    uint64 // valid records found
	Indexed    uint64 // entries written
	Duplicates uint64 // records of chunks already indexed from an earlier pack or offset
	// BadRegions were skipped; a region at a pack's end is cut off by the
	// next Open (the committed length stops at the last valid record).
	BadRegions   []Region
	SkippedBytes int64
}

// RebuildIndex recreates the index and pack metadata from the pack files:
// it drops every index entry, scans all packs in number order, verifies
// each record (CRC, then decode and hash) and indexes the first occurrence
// of every chunk. Damaged stretches are skipped and reported; scanning
// resumes at the next valid record (see doc.go, "Recovery"). Puts may run
// meanwhile; syncs wait until the rebuild is done, and chunks not yet
// re-indexed read as ErrNotFound until their pack is scanned. Do not run gc
// (DeleteChunks) concurrently: a chunk deleted before its pack is scanned
// comes back.
func (s *Store) RebuildIndex(ctx context.Context) (RebuildReport, error) {
	var rep RebuildReport
	if err := s.life.enter(); err != nil {
		return rep, err
	}
	defer s.life.leave()
	s.gcMu.Lock()
	defer s.gcMu.Unlock()
	select {
	case s.syncSem <- struct{}{}:
	case <-ctx.Done():
		return rep, ctx.Err()
	}
	defer func() { <-s.syncSem }()
	if err := s.syncRound(ctx); err != nil {
		return rep, fmt.Errorf("cas: rebuild: sync pending chunks: %w", err)
	}

	if err := s.db.Update(func(txn *badger.Txn) error {
		return txn.Set(metaKey(metaRebuild), []byte{1})
	}); err != nil {
		return rep, fmt.Errorf("cas: rebuild: mark start: %w", err)
	}
	for _, prefix := range []byte{KeyPrefixIndex, KeyPrefixPack} {
		if err := s.deletePrefix(ctx, prefix); err != nil {
			return rep, fmt.Errorf("cas: rebuild: drop index: %w", err)
		}
	}
	disk, _, err := listPacks(s.dir)
	if err != nil {
		return rep, err
	}
	objs, err := s.listRemote(ctx)
	if err != nil {
		return rep, err
	}
	nums := make([]uint64, 0, len(disk)+len(objs))
	for num := range disk {
		nums = append(nums, num)
	}
	for num := range objs {
		if _, local := disk[num]; !local {
			nums = append(nums, num)
		}
	}
	slices.Sort(nums)
	if s.remote != nil {
		s.remote.mu.Lock()
		clear(s.remote.packs)
		s.remote.mu.Unlock()
	}
	next := uint64(1)
	for _, num := range nums {
		next = max(next, num+1)
		// A pack both local and remote is indexed as local (an upload
		// not yet marked, or its leftover): the uploader sends it again.
		d, local := disk[num]
		// A pack being written is indexed up to what is already durable;
		// later syncs commit the rest. One never synced is left to them.
		end, writing := s.writerSynced(num)
		switch {
		case writing && end < PackHeaderSize:
			continue
		case writing:
		case local:
			end = d.size
		default:
			end = objs[num]
		}
		if err := s.rebuildPack(ctx, num, end, writing, !local && !writing, &rep); err != nil {
			return rep, err
		}
		rep.Packs++
	}
	s.remote.kick()

	s.mu.Lock()
	next = max(next, s.nextPack)
	s.nextPack = next
	s.mu.Unlock()
	if err := s.db.Update(func(txn *badger.Txn) error {
		if err := txn.Set(metaKey(metaNextPack), encodeUvarint(next)); err != nil {
			return err
		}
		return txn.Delete(metaKey(metaRebuild))
	}); err != nil {
		return rep, fmt.Errorf("cas: rebuild: mark done: %w", err)
	}
	return rep, nil
}

// deletePrefix deletes every key under prefix, in bounded transactions.
// (badger's DropPrefix would block every writer of the shared database
// and fail their commits meanwhile.)
func (s *Store) deletePrefix(ctx context.Context, prefix byte) error {
	for {
		var keys [][]byte
		err := s.db.View(func(txn *badger.Txn) error {
			it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte{prefix}})
			defer it.Close()
			for it.Rewind(); it.Valid() && len(keys) < opsPerTxn; it.Next() {
				keys = append(keys, it.Item().KeyCopy(nil))
			}
			return nil
		})
		if err != nil || len(keys) == 0 {
			return err
		}
		if err := s.update(ctx, func(txn *badger.Txn) error {
			for _, k := range keys {
				if err := txn.Delete(k); err != nil {
					return err
				}
			}
			return nil
		}); err != nil {
			return err
		}
	}
}

// writerSynced returns the synced length of pack num if it is still open
// for writing.
func (s *Store) writerSynced(num uint64) (int64, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, w := range s.writersLocked() {
		if w.num == num {
			return w.synced, true
		}
	}
	return 0, false
}

// rebuildPack indexes one pack's valid records up to end.
func (s *Store) rebuildPack(ctx context.Context, num uint64, end int64, writing, remote bool, rep *RebuildReport) error {
	var f io.ReaderAt
	if remote {
		f = remoteReaderAt{ctx: ctx, b: s.remote.backend, num: num}
	} else {
		lf, err := os.Open(packPath(s.dir, num))
		if err != nil {
			return fmt.Errorf("cas: rebuild: open pack %d: %w", num, err)
		}
		defer lf.Close()
		if !writing {
			// Never index bytes that might not be durable.
			if err := s.fsync(lf); err != nil {
				return fmt.Errorf("cas: rebuild: fsync pack %d: %w", num, err)
			}
		}
		f = lf
	}
	var hdr [PackHeaderSize]byte
	if err := readFull(f, hdr[:], 0); err != nil {
		rep.BadRegions = append(rep.BadRegions, Region{Pack: num, Offset: 0, Length: end, Reason: "no pack header: " + err.Error()})
		rep.SkippedBytes += end
		return s.commitRebuiltPack(ctx, num, end, 0, nil, remote, rep)
	}
	if got, err := parsePackHeader(hdr[:]); err != nil || got != num {
		reason := fmt.Sprintf("pack header names pack %d", got)
		if err != nil {
			reason = err.Error()
		}
		rep.BadRegions = append(rep.BadRegions, Region{Pack: num, Offset: 0, Length: PackHeaderSize, Reason: reason})
	}
	var ops []indexOp
	lastEnd := int64(PackHeaderSize)
	err := scanPack(ctx, f, PackHeaderSize, end, s.codecs, true,
		func(r scannedRecord) error {
			loc := Location{Pack: num, Offset: r.off, StoredLen: r.h.StoredLen, RawLen: r.h.RawLen, Codec: r.h.Codec}
			ops = append(ops, indexOp{id: r.h.ID, cond: condAbsent, set: &loc})
			lastEnd = r.off + r.h.recordLen()
			return nil
		},
		func(b badRegion) error {
			rep.BadRegions = append(rep.BadRegions, Region{Pack: num, Offset: b.off, Length: b.length, Reason: b.reason.Error()})
			rep.SkippedBytes += b.length
			s.log.Warn("cas: rebuild skipped damaged bytes", "pack", num, "offset", b.off, "length", b.length, "reason", b.reason)
			return nil
		})
	if err != nil {
		return fmt.Errorf("cas: rebuild: scan pack %d: %w", num, err)
	}
	committed := lastEnd
	if writing {
		committed = end
	}
	return s.commitRebuiltPack(ctx, num, committed, uint64(len(ops)), ops, remote, rep)
}

func (s *Store) commitRebuiltPack(ctx context.Context, num uint64, committed int64, records uint64, ops []indexOp, remote bool, rep *RebuildReport) error {
	committed = max(committed, PackHeaderSize)
	applied, err := s.applyIndexOps(ctx, ops, []packSet{{num: num, committed: committed, records: records, remote: remote}})
	if err != nil {
		return fmt.Errorf("cas: rebuild: index pack %d: %w", num, err)
	}
	if remote {
		s.remote.set(num, committed)
	}
	rep.Records += records
	rep.Indexed += uint64(applied)
	rep.Duplicates += uint64(len(ops) - applied)
	return nil
}
