package cas

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/dgraph-io/badger/v4"
)

// opCond is the precondition of an index change. Every change to the index
// is conditional so that concurrent Sync, DeleteChunks and Repack calls
// compose without locks: a change whose precondition no longer holds is
// skipped, and the pack counters move only with changes actually made.
type opCond uint8

const (
	condAbsent opCond = iota // only if the ID has no entry (Sync, rebuild)
	condAt                   // only if the entry is exactly `at` (Repack)
	condAny                  // whatever the entry is (DeleteChunks)
)

// indexOp sets (set != nil) or deletes (set == nil) one index entry.
type indexOp struct {
	id   ID
	cond opCond
	at   Location
	set  *Location
	// writtenBy, if not 0, further requires that the entry's pack was
	// last written at or before it (Unix ns): gc's safety margin.
	writtenBy int64
}

// packSet records a pack's committed length and record count, absolute
// values so that repeating a half-failed commit is harmless.
type packSet struct {
	num       uint64
	committed int64
	records   uint64
	remote    bool // the pack lives in the Backend (rebuild only)
}

// opsPerTxn keeps each transaction far below badger's size limit.
const opsPerTxn = 1000

// applyIndexOps applies ops in transactions of opsPerTxn, the pack sets in
// the first one, so a pack's committed length is durable no later than the
// first entry pointing into it. Pack live counters change in the same
// transaction as the entries they count. It returns how many ops applied.
func (s *Store) applyIndexOps(ctx context.Context, ops []indexOp, sets []packSet) (int, error) {
	applied := 0
	for start := 0; start < len(ops) || start == 0; start += opsPerTxn {
		part := ops[start:min(start+opsPerTxn, len(ops))]
		var partSets []packSet
		if start == 0 {
			partSets = sets
		}
		if len(part) == 0 && len(partSets) == 0 {
			break
		}
		var n int
		err := s.update(ctx, func(txn *badger.Txn) error {
			var err error
			n, _, err = s.applyTxn(txn, part, partSets)
			return err
		})
		if err != nil {
			return applied, err
		}
		applied += n
	}
	return applied, nil
}

// applyTxn applies ops and sets inside txn and returns how many ops
// applied and the record bytes (header and payload) of the entries it
// deleted.
func (s *Store) applyTxn(txn *badger.Txn, ops []indexOp, sets []packSet) (int, int64, error) {
	now := s.opts.Clock().UnixNano()
	metas := make(map[uint64]*packMeta)
	meta := func(num uint64) (*packMeta, error) {
		if m, ok := metas[num]; ok {
			return m, nil
		}
		m, _, err := readPackMeta(txn, num)
		if err != nil {
			return nil, err
		}
		metas[num] = &m
		return &m, nil
	}
	for _, ps := range sets {
		m, err := meta(ps.num)
		if err != nil {
			return 0, 0, err
		}
		m.Committed, m.Records, m.Remote = ps.committed, ps.records, ps.remote
	}
	applied := 0
	var deleted int64
	for _, op := range ops {
		key := indexKey(op.id)
		var cur *Location
		present := false
		item, err := txn.Get(key)
		switch {
		case err == nil:
			present = true
			var loc Location
			if verr := item.Value(func(v []byte) error {
				var derr error
				loc, derr = decodeIndexValue(v)
				return derr
			}); verr == nil {
				cur = &loc
			} else {
				s.log.Warn("cas: undecodable index entry", "chunk", op.id.String(), "err", verr)
			}
		case errors.Is(err, badger.ErrKeyNotFound):
		default:
			return 0, 0, fmt.Errorf("read index entry of %s: %w", op.id, err)
		}
		switch op.cond {
		case condAbsent:
			if cur != nil {
				continue // already indexed (first occurrence wins)
			}
		case condAt:
			if cur == nil || *cur != op.at {
				continue
			}
		case condAny:
			if !present {
				continue
			}
		}
		if op.writtenBy != 0 {
			if cur == nil {
				continue // undecodable: which pack it is in is unknown
			}
			m, err := meta(cur.Pack)
			if err != nil {
				return 0, 0, err
			}
			if m.Written > op.writtenBy {
				continue
			}
		}
		if cur != nil {
			m, err := meta(cur.Pack)
			if err != nil {
				return 0, 0, err
			}
			s.subLive(m, cur)
		}
		if op.set != nil {
			if err := txn.Set(key, encodeIndexValue(*op.set)); err != nil {
				return 0, 0, fmt.Errorf("set index entry of %s: %w", op.id, err)
			}
			m, err := meta(op.set.Pack)
			if err != nil {
				return 0, 0, err
			}
			m.LiveChunks++
			m.LiveStored += uint64(op.set.StoredLen)
			m.LiveRaw += uint64(op.set.RawLen)
			m.Written = max(m.Written, now)
		} else {
			if err := txn.Delete(key); err != nil {
				return 0, 0, fmt.Errorf("delete index entry of %s: %w", op.id, err)
			}
			if cur != nil {
				deleted += RecordHeaderSize + int64(cur.StoredLen)
			}
		}
		applied++
	}
	nums := make([]uint64, 0, len(metas))
	for num := range metas {
		nums = append(nums, num)
	}
	slices.Sort(nums)
	for _, num := range nums {
		if err := txn.Set(packKey(num), encodePackMeta(*metas[num])); err != nil {
			return 0, 0, fmt.Errorf("set meta of pack %d: %w", num, err)
		}
	}
	return applied, deleted, nil
}

// subLive takes one entry out of a pack's live counters. Counters that
// would go negative mean they were wrong already; Check reports that and
// RebuildIndex recomputes them.
func (s *Store) subLive(m *packMeta, loc *Location) {
	if m.LiveChunks == 0 || m.LiveStored < uint64(loc.StoredLen) || m.LiveRaw < uint64(loc.RawLen) {
		s.log.Warn("cas: pack live counters below an entry they count", "pack", loc.Pack)
		m.LiveChunks, m.LiveStored, m.LiveRaw = 0, 0, 0
		return
	}
	m.LiveChunks--
	m.LiveStored -= uint64(loc.StoredLen)
	m.LiveRaw -= uint64(loc.RawLen)
}

// update runs fn in a read-write transaction, retrying on conflicts with
// concurrent transactions (a gc delete against a sync commit, say).
func (s *Store) update(ctx context.Context, fn func(txn *badger.Txn) error) error {
	for attempt := 0; ; attempt++ {
		err := s.db.Update(fn)
		if !errors.Is(err, badger.ErrConflict) || attempt >= 50 {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Duration(attempt+1) * time.Millisecond):
		}
	}
}

// readPackMeta returns a pack's metadata; found is false (and m zero) when
// badger has none.
func readPackMeta(txn *badger.Txn, num uint64) (m packMeta, found bool, err error) {
	item, err := txn.Get(packKey(num))
	if errors.Is(err, badger.ErrKeyNotFound) {
		return m, false, nil
	}
	if err != nil {
		return m, false, fmt.Errorf("read meta of pack %d: %w", num, err)
	}
	err = item.Value(func(v []byte) error {
		var derr error
		m, derr = decodePackMeta(v)
		return derr
	})
	if err != nil {
		return m, false, fmt.Errorf("meta of pack %d: %w", num, err)
	}
	return m, true, nil
}

// forEachPackMeta calls fn for every pack badger knows, in number order.
func forEachPackMeta(txn *badger.Txn, fn func(num uint64, m packMeta) error) error {
	it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte{KeyPrefixPack}, PrefetchValues: true, PrefetchSize: 100})
	defer it.Close()
	for it.Rewind(); it.Valid(); it.Next() {
		item := it.Item()
		num, err := packFromKey(item.Key())
		if err != nil {
			return err
		}
		var m packMeta
		if err := item.Value(func(v []byte) error {
			var derr error
			m, derr = decodePackMeta(v)
			return derr
		}); err != nil {
			return fmt.Errorf("meta of pack %d: %w", num, err)
		}
		if err := fn(num, m); err != nil {
			return err
		}
	}
	return nil
}

// forEachIndexEntry calls fn for every index entry, in ID order. An entry
// whose value does not decode is passed with a non-nil decodeErr.
func forEachIndexEntry(ctx context.Context, txn *badger.Txn, fn func(id ID, loc Location, decodeErr error) error) error {
	it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte{KeyPrefixIndex}, PrefetchValues: true, PrefetchSize: 1000})
	defer it.Close()
	n := 0
	for it.Rewind(); it.Valid(); it.Next() {
		if n++; n%4096 == 0 {
			if err := ctx.Err(); err != nil {
				return err
			}
		}
		item := it.Item()
		id, err := idFromIndexKey(item.Key())
		if err != nil {
			return err
		}
		var loc Location
		derr := item.Value(func(v []byte) error {
			var err error
			loc, err = decodeIndexValue(v)
			return err
		})
		if err := fn(id, loc, derr); err != nil {
			return err
		}
	}
	return nil
}

func encodeUvarint(v uint64) []byte { return binary.AppendUvarint(nil, v) }

func decodeUvarint(b []byte) (uint64, error) {
	v, n := binary.Uvarint(b)
	if n <= 0 || n != len(b) {
		return 0, fmt.Errorf("%w: bad uvarint value %x", ErrInvalidRecord, b)
	}
	return v, nil
}
