package gc

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/dgraph-io/badger/v4"

	"github.com/quic-s/quics/cas"
	"github.com/quic-s/quics/manifest"
)

// fakeStore is an in-memory chunk store: an index of locations and packs
// with sizes and write times. Records are laid out back to back.
type fakeStore struct {
	mu      sync.Mutex
	entries map[cas.ID]cas.Location
	packs   map[uint64]*fakePack
	active  uint64 // 0: none
	next    uint64
	// beforeCheck runs at each DeleteChunksChecked batch, before the
	// check: a test's stand-in for something concurrent.
	beforeCheck func()
	checks      int
	removed     []uint64
	repacked    []uint64
}

type fakePack struct {
	size    int64
	written time.Time
}

func newFakeStore() *fakeStore {
	return &fakeStore{entries: map[cas.ID]cas.Location{}, packs: map[uint64]*fakePack{}, next: 1}
}

// addPack creates a pack written at w holding chunks of the given stored
// sizes, and returns its number.
func (s *fakeStore) addPack(w time.Time, chunks map[cas.ID]uint32) uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	num := s.next
	s.next++
	p := &fakePack{size: cas.PackHeaderSize, written: w}
	for _, id := range slices.SortedFunc(maps.Keys(chunks), cas.ID.Compare) {
		loc := cas.Location{Pack: num, Offset: p.size, StoredLen: chunks[id], RawLen: chunks[id]}
		s.entries[id] = loc
		p.size += recordBytes(loc)
	}
	s.packs[num] = p
	return num
}

func (s *fakeStore) has(id cas.ID) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, ok := s.entries[id]
	return ok
}

func (s *fakeStore) clone() *fakeStore {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := newFakeStore()
	maps.Copy(c.entries, s.entries)
	for n, p := range s.packs {
		cp := *p
		c.packs[n] = &cp
	}
	c.active, c.next = s.active, s.next
	return c
}

func (s *fakeStore) Stats(context.Context) (cas.Stats, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := cas.Stats{Chunks: uint64(len(s.entries)), Packs: len(s.packs)}
	for _, p := range s.packs {
		st.PackBytes += p.size
	}
	return st, nil
}

func (s *fakeStore) Packs(context.Context) ([]cas.PackInfo, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	live := map[uint64]*cas.PackInfo{}
	for num, p := range s.packs {
		live[num] = &cas.PackInfo{Number: num, Size: p.size, Written: p.written, Active: num == s.active}
	}
	for _, loc := range s.entries {
		pi := live[loc.Pack]
		pi.LiveChunks++
		pi.LiveBytes += recordBytes(loc)
		pi.LiveRawBytes += int64(loc.RawLen)
	}
	var out []cas.PackInfo
	for _, num := range slices.Sorted(maps.Keys(live)) {
		out = append(out, *live[num])
	}
	return out, nil
}

func (s *fakeStore) ForEachChunk(ctx context.Context, fn func(cas.ID, cas.Location) error) error {
	s.mu.Lock()
	snap := maps.Clone(s.entries)
	s.mu.Unlock()
	for _, id := range slices.SortedFunc(maps.Keys(snap), cas.ID.Compare) {
		if err := fn(id, snap[id]); err != nil {
			return err
		}
	}
	return nil
}

func (s *fakeStore) DeleteChunksChecked(_ context.Context, ids []cas.ID, writtenBy time.Time, check cas.DeleteCheck) (cas.DeleteResult, error) {
	var res cas.DeleteResult
	if s.beforeCheck != nil {
		s.beforeCheck()
	}
	s.mu.Lock()
	s.checks++
	s.mu.Unlock()
	keep, err := check(nil, ids)
	if err != nil {
		return res, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, id := range ids {
		loc, ok := s.entries[id]
		if !ok || keep.Has(id) {
			continue
		}
		if !writtenBy.IsZero() && s.packs[loc.Pack].written.After(writtenBy) {
			continue
		}
		delete(s.entries, id)
		res.Chunks++
		res.Bytes += recordBytes(loc)
	}
	return res, nil
}

func (s *fakeStore) Repack(_ context.Context, num uint64, keep func(cas.ID) bool) (cas.RepackReport, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	rep := cas.RepackReport{Pack: num}
	old, ok := s.packs[num]
	if !ok {
		return rep, fmt.Errorf("%w: %d", cas.ErrPackNotFound, num)
	}
	if s.active == 0 || s.active == num {
		s.active = s.next
		s.next++
		s.packs[s.active] = &fakePack{size: cas.PackHeaderSize, written: old.written}
	}
	dst := s.packs[s.active]
	for _, id := range slices.SortedFunc(maps.Keys(s.entries), cas.ID.Compare) {
		loc := s.entries[id]
		if loc.Pack != num {
			continue
		}
		if !keep(id) {
			delete(s.entries, id)
			rep.Dropped++
			continue
		}
		n := recordBytes(loc)
		loc.Pack, loc.Offset = s.active, dst.size
		dst.size += n
		s.entries[id] = loc
		rep.Kept++
		rep.KeptBytes += n
	}
	delete(s.packs, num)
	rep.Removed = true
	rep.ReclaimedBytes = old.size - rep.KeptBytes
	s.repacked = append(s.repacked, num)
	return rep, nil
}

func (s *fakeStore) RemovePack(_ context.Context, num uint64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, loc := range s.entries {
		if loc.Pack == num {
			return fmt.Errorf("%w: %d", cas.ErrPackInUse, num)
		}
	}
	delete(s.packs, num)
	if num == s.active {
		s.active = 0
	}
	s.removed = append(s.removed, num)
	return nil
}

// fakeRefs is metadata held in memory. later are versions that "commit"
// after the walk: RefsSince reports those past the watermark.
type fakeRefs struct {
	mu     sync.Mutex
	roots  []manifest.Root
	refs   []manifest.Ref
	lists  map[cas.ID][]manifest.Chunk
	seqs   manifest.Watermark
	later  []manifest.Ref
	fences int
}

func newFakeRefs(roots ...string) *fakeRefs {
	r := &fakeRefs{lists: map[cas.ID][]manifest.Chunk{}, seqs: manifest.Watermark{}}
	for i, name := range roots {
		id := manifest.RootID(i + 1)
		r.roots = append(r.roots, manifest.Root{ID: id, Name: name})
		r.seqs[id] = 0
	}
	return r
}

// content stores a chunk list and returns its hash.
func (r *fakeRefs) content(name string, chunks ...cas.ID) (cas.ID, uint64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	hash := cas.Sum([]byte("content:" + name))
	var size uint64
	list := make([]manifest.Chunk, len(chunks))
	for i, c := range chunks {
		list[i] = manifest.Chunk{ID: c, Size: 100}
		size += 100
	}
	r.lists[hash] = list
	return hash, size
}

// version adds a version of path with the content, now or (later) as a
// commit the walk misses.
func (r *fakeRefs) version(root manifest.RootID, path string, hash cas.ID, size uint64, later bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.seqs[root]++
	ref := manifest.Ref{Root: root, Path: path, Seq: r.seqs[root], Hash: hash, Size: size}
	if later {
		r.later = append(r.later, ref)
		return
	}
	r.refs = append(r.refs, ref)
}

func (r *fakeRefs) candidate(root manifest.RootID, path string, hash cas.ID, size uint64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.refs = append(r.refs, manifest.Ref{Root: root, Path: path, Candidate: true, Hash: hash, Size: size})
}

func (r *fakeRefs) ForEachRef(_ context.Context, fn func(manifest.Ref) error) (manifest.Watermark, error) {
	r.mu.Lock()
	refs := slices.Clone(r.refs)
	wm := manifest.Watermark{}
	for _, ref := range refs {
		if !ref.Candidate {
			wm[ref.Root] = max(wm[ref.Root], ref.Seq)
		}
	}
	r.mu.Unlock()
	for _, ref := range refs {
		if err := fn(ref); err != nil {
			return nil, err
		}
	}
	return wm, nil
}

func (r *fakeRefs) ForEachChunkList(_ context.Context, want func(cas.ID) bool, fn func(cas.ID, []manifest.Chunk) error) error {
	r.mu.Lock()
	lists := maps.Clone(r.lists)
	r.mu.Unlock()
	for _, h := range slices.SortedFunc(maps.Keys(lists), cas.ID.Compare) {
		if want != nil && !want(h) {
			continue
		}
		if err := fn(h, lists[h]); err != nil {
			return err
		}
	}
	return nil
}

func (r *fakeRefs) RefsSince(_ *badger.Txn, wm manifest.Watermark, fn func(manifest.Ref, []manifest.Chunk) error) (manifest.Watermark, error) {
	r.mu.Lock()
	r.fences++
	now := maps.Clone(r.seqs)
	later := slices.Clone(r.later)
	lists := maps.Clone(r.lists)
	r.mu.Unlock()
	for _, ref := range later {
		if ref.Seq > wm[ref.Root] {
			if err := fn(ref, lists[ref.Hash]); err != nil {
				return nil, err
			}
		}
	}
	return now, nil
}

func (r *fakeRefs) ListRoots(context.Context) ([]manifest.Root, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.roots), nil
}

// fakePins is a pin registry with trackers, like the server's.
type fakePins struct {
	mu       sync.Mutex
	pinned   cas.IDSet
	trackers []*fakeTracker
}

type fakeTracker struct {
	p       *fakePins
	seen    cas.IDSet
	stopped bool
}

func newFakePins(ids ...cas.ID) *fakePins { return &fakePins{pinned: cas.NewIDSet(ids...)} }

func (p *fakePins) pin(id cas.ID) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.pinned.Insert(id)
	for _, t := range p.trackers {
		if !t.stopped {
			t.seen.Insert(id)
		}
	}
}

func (p *fakePins) unpin(id cas.ID) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.pinned.Delete(id)
}

func (p *fakePins) Track() PinTracker {
	p.mu.Lock()
	defer p.mu.Unlock()
	t := &fakeTracker{p: p, seen: cas.NewIDSet(p.pinned.List()...)}
	p.trackers = append(p.trackers, t)
	return t
}

func (t *fakeTracker) Pinned(id cas.ID) bool {
	t.p.mu.Lock()
	defer t.p.mu.Unlock()
	return t.seen.Has(id) || t.p.pinned.Has(id)
}

func (t *fakeTracker) Stop() {
	t.p.mu.Lock()
	defer t.p.mu.Unlock()
	t.stopped = true
}

// fixedClock always says the same time.
func fixedClock(t time.Time) func() time.Time { return func() time.Time { return t } }

// chunkID names a test chunk.
func chunkID(name string) cas.ID { return cas.Sum([]byte("chunk:" + name)) }
