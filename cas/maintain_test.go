package cas

import (
	"bytes"
	"context"
	"errors"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"
)

// stepClock is a settable clock for pack write times.
type stepClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *stepClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *stepClock) set(t time.Time) {
	c.mu.Lock()
	c.t = t
	c.mu.Unlock()
}

func packOf(t *testing.T, s *Store, num uint64) PackInfo {
	t.Helper()
	packs, err := s.Packs(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range packs {
		if p.Number == num {
			return p
		}
	}
	t.Fatalf("pack %d not listed", num)
	return PackInfo{}
}

func ids(cs []chunk) []ID {
	out := make([]ID, len(cs))
	for i, c := range cs {
		out[i] = c.id
	}
	return out
}

// A pack remembers when an entry last came to point into it, by the
// store's clock; a Repack copy counts as a write of the pack it goes to.
func TestPackWrittenTime(t *testing.T) {
	rng := rand.New(rand.NewPCG(20, 1))
	t0 := time.Date(2025, 5, 1, 10, 0, 0, 0, time.UTC)
	clock := &stepClock{t: t0}
	e := newEnv(t, Options{PackSize: 4 << 10, Clock: clock.Now})
	s, _ := e.open()
	ctx := context.Background()
	first := randomChunk(rng, 1000)
	putAll(t, s, first)
	syncStore(t, s)
	pack := stat(t, s, first.id).Pack
	if got := packOf(t, s, pack).Written; !got.Equal(t0) {
		t.Fatalf("pack written at %v, want %v", got, t0)
	}
	clock.set(t0.Add(time.Hour))
	second := randomChunk(rng, 1000)
	putAll(t, s, second)
	syncStore(t, s)
	if got := packOf(t, s, pack).Written; !got.Equal(t0.Add(time.Hour)) {
		t.Fatalf("pack written at %v after a second chunk, want %v", got, t0.Add(time.Hour))
	}

	clock.set(t0.Add(2 * time.Hour))
	if _, err := s.Repack(ctx, pack, func(ID) bool { return true }); err != nil {
		t.Fatalf("Repack: %v", err)
	}
	moved := stat(t, s, first.id).Pack
	if moved == pack {
		t.Fatal("chunk not moved by Repack")
	}
	if got := packOf(t, s, moved).Written; !got.Equal(t0.Add(2 * time.Hour)) {
		t.Fatalf("repack target written at %v, want %v", got, t0.Add(2*time.Hour))
	}
}

// Version 1 pack values (before the write time) still decode, as written
// at time zero, and are rewritten in the current version.
func TestPackMetaVersion1(t *testing.T) {
	v1 := []byte{0x10}
	for _, f := range []uint64{1000, 3, 2, 500, 900} {
		v1 = append(v1, encodeUvarint(f)...)
	}
	m, err := decodePackMeta(v1)
	want := packMeta{Committed: 1000, Records: 3, LiveChunks: 2, LiveStored: 500, LiveRaw: 900}
	if err != nil || m != want {
		t.Fatalf("decode v1 = %+v, %v; want %+v", m, err, want)
	}
	m.Written = 12345
	m.Remote = true
	enc := encodePackMeta(m)
	if enc[0]>>4 != packValueVersion {
		t.Fatalf("encoded with version %d", enc[0]>>4)
	}
	if got, err := decodePackMeta(enc); err != nil || got != m {
		t.Fatalf("round trip = %+v, %v; want %+v", got, err, m)
	}
}

// DeleteChunksChecked deletes what the check does not keep, and nothing
// written after the cutoff.
func TestDeleteChunksCheckedKeepAndCutoff(t *testing.T) {
	rng := rand.New(rand.NewPCG(21, 1))
	t0 := time.Date(2025, 5, 1, 10, 0, 0, 0, time.UTC)
	clock := &stepClock{t: t0}
	e := newEnv(t, Options{PackSize: 64 << 10, Clock: clock.Now})
	s, _ := e.open()
	ctx := context.Background()
	var old, young []chunk
	for range 6 {
		old = append(old, randomChunk(rng, 500))
	}
	putAll(t, s, old...)
	syncStore(t, s)
	// A new pack, written later.
	s.mu.Lock()
	s.sealActiveLocked()
	s.mu.Unlock()
	clock.set(t0.Add(time.Hour))
	for range 3 {
		young = append(young, randomChunk(rng, 500))
	}
	putAll(t, s, young...)
	syncStore(t, s)

	kept := old[0].id
	stat0 := map[ID]ChunkInfo{}
	for _, c := range old {
		stat0[c.id] = stat(t, s, c.id)
	}
	var calls atomic.Int32
	check := func(_ *badger.Txn, batch []ID) (IDSet, error) {
		calls.Add(1)
		return NewIDSet(kept), nil
	}
	all := append(ids(old), ids(young)...)
	res, err := s.DeleteChunksChecked(ctx, all, t0.Add(30*time.Minute), check)
	if err != nil {
		t.Fatalf("DeleteChunksChecked: %v", err)
	}
	var wantBytes int64
	for _, c := range old[1:] {
		wantBytes += RecordHeaderSize + int64(stat0[c.id].StoredLen)
	}
	if res.Chunks != len(old)-1 || res.Bytes != wantBytes {
		t.Fatalf("deleted %+v, want %d chunks, %d bytes", res, len(old)-1, wantBytes)
	}
	if calls.Load() != 1 {
		t.Fatalf("check ran %d times for one batch without conflicts", calls.Load())
	}
	wantChunk(t, s, old[0])
	for _, c := range old[1:] {
		wantGetErr(t, s, c.id, ErrNotFound)
	}
	for _, c := range young {
		wantChunk(t, s, c)
	}
	// Without a cutoff the young go too, and a check error stops
	// everything.
	boom := errors.New("boom")
	if _, err := s.DeleteChunksChecked(ctx, ids(young), time.Time{}, func(*badger.Txn, []ID) (IDSet, error) { return nil, boom }); !errors.Is(err, boom) {
		t.Fatalf("check error: got %v", err)
	}
	for _, c := range young {
		wantChunk(t, s, c)
	}
	if res, err := s.DeleteChunksChecked(ctx, ids(young), time.Time{}, nil); err != nil || res.Chunks != len(young) {
		t.Fatalf("DeleteChunksChecked without check = %+v, %v", res, err)
	}
	st, err := s.Stats(ctx)
	if err != nil || st.Chunks != 1 {
		t.Fatalf("Stats = %+v, %v; want the one kept chunk", st, err)
	}
}

// fenceKey is a key outside the store's prefixes that the tests' checks
// read, standing for a manifest root record.
var fenceKey = []byte{0x7f, 'f', 'e', 'n', 'c', 'e'}

// A transaction that writes a key the check read, committing while the
// deletion runs, makes the deletion retry with a fresh check, which then
// sees the write.
func TestDeleteChunksCheckedRetriesOnConflict(t *testing.T) {
	rng := rand.New(rand.NewPCG(22, 1))
	e := newEnv(t, Options{})
	s, _ := e.open()
	ctx := context.Background()
	var cs []chunk
	for range 5 {
		cs = append(cs, randomChunk(rng, 300))
	}
	putAll(t, s, cs...)
	syncStore(t, s)
	referenced := cs[2].id

	var calls atomic.Int32
	check := func(txn *badger.Txn, batch []ID) (IDSet, error) {
		calls.Add(1)
		keep := IDSet{}
		item, err := txn.Get(fenceKey)
		switch {
		case err == nil:
			v, err := item.ValueCopy(nil)
			if err != nil {
				return nil, err
			}
			id, err := IDFromBytes(v)
			if err != nil {
				return nil, err
			}
			keep.Insert(id)
		case !errors.Is(err, badger.ErrKeyNotFound):
			return nil, err
		}
		if calls.Load() == 1 {
			// A "commit" lands after this transaction's snapshot and
			// before its own commit.
			if err := e.db.Update(func(w *badger.Txn) error { return w.Set(fenceKey, referenced[:]) }); err != nil {
				return nil, err
			}
		}
		return keep, nil
	}
	res, err := s.DeleteChunksChecked(ctx, ids(cs), time.Time{}, check)
	if err != nil {
		t.Fatalf("DeleteChunksChecked: %v", err)
	}
	if calls.Load() < 2 {
		t.Fatalf("check ran %d times; the conflicting write should have forced a retry", calls.Load())
	}
	if n := res.Chunks; n != len(cs)-1 {
		t.Fatalf("deleted %d, want %d", n, len(cs)-1)
	}
	wantChunk(t, s, cs[2])
}

// The other order: a transaction that read an index entry with HasTxn
// (as a manifest commit re-checks its chunks) fails to commit if the
// entry was deleted meanwhile.
func TestHasTxnConflictsWithDeletion(t *testing.T) {
	rng := rand.New(rand.NewPCG(23, 1))
	e := newEnv(t, Options{})
	s, _ := e.open()
	ctx := context.Background()
	c := randomChunk(rng, 300)
	putAll(t, s, c)
	syncStore(t, s)

	txn := e.db.NewTransaction(true)
	defer txn.Discard()
	ok, err := s.HasTxn(txn, c.id)
	if err != nil || !ok {
		t.Fatalf("HasTxn = %v, %v", ok, err)
	}
	if err := txn.Set([]byte{0x7f, 'v'}, []byte("version")); err != nil {
		t.Fatal(err)
	}
	if res, err := s.DeleteChunksChecked(ctx, []ID{c.id}, time.Time{}, nil); err != nil || res.Chunks != 1 {
		t.Fatalf("DeleteChunksChecked = %+v, %v", res, err)
	}
	if err := txn.Commit(); !errors.Is(err, badger.ErrConflict) {
		t.Fatalf("commit after its chunk was deleted: err = %v, want badger.ErrConflict", err)
	}
}

// Many batches against a steady stream of conflicting writes (a busy
// server's commits, each rewriting a root record the check reads): every
// batch eventually goes through, shrinking if it must, and the checks'
// decisions hold.
func TestDeleteChunksCheckedUnderContention(t *testing.T) {
	rng := rand.New(rand.NewPCG(24, 1))
	e := newEnv(t, Options{PackSize: 256 << 10})
	s, _ := e.open()
	ctx := context.Background()
	var cs []chunk
	for range 2500 {
		cs = append(cs, randomChunk(rng, 64))
	}
	putAll(t, s, cs...)
	syncStore(t, s)
	keep := NewIDSet()
	for i := 0; i < len(cs); i += 7 {
		keep.Insert(cs[i].id)
	}
	stop := make(chan struct{})
	var writer sync.WaitGroup
	writer.Go(func() {
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			_ = e.db.Update(func(txn *badger.Txn) error { return txn.Set(fenceKey, []byte{byte(i)}) })
			time.Sleep(time.Millisecond)
		}
	})
	var calls atomic.Int32
	check := func(txn *badger.Txn, batch []ID) (IDSet, error) {
		calls.Add(1)
		if _, err := txn.Get(fenceKey); err != nil && !errors.Is(err, badger.ErrKeyNotFound) {
			return nil, err
		}
		out := IDSet{}
		for _, id := range batch {
			if keep.Has(id) {
				out.Insert(id)
			}
		}
		return out, nil
	}
	res, err := s.DeleteChunksChecked(ctx, ids(cs), time.Time{}, check)
	close(stop)
	writer.Wait()
	if err != nil {
		t.Fatalf("DeleteChunksChecked under contention: %v", err)
	}
	if n := res.Chunks; n != len(cs)-len(keep) {
		t.Fatalf("deleted %d, want %d", n, len(cs)-len(keep))
	}
	t.Logf("%d checks for %d chunks", calls.Load(), len(cs))
	for _, c := range cs {
		has, err := s.Has(ctx, []ID{c.id})
		if err != nil {
			t.Fatal(err)
		}
		if has[0] != keep.Has(c.id) {
			t.Fatalf("chunk %s present=%v, kept=%v", c.id.Short(), has[0], keep.Has(c.id))
		}
	}
}

// A Repack that moves a chunk and removes its pack between a reader's
// lookup and its read: the reader follows the chunk, even when it moves
// twice in that window, and a chunk deleted in the window reads as
// ErrNotFound, never ErrMissing.
func TestReadFollowsChunkMovedUnderIt(t *testing.T) {
	rng := rand.New(rand.NewPCG(25, 1))
	e := newEnv(t, Options{PackSize: 4 << 10})
	s, _ := e.open()
	ctx := context.Background()
	var cs []chunk
	for range 8 {
		cs = append(cs, textChunk(rng, 1500))
	}
	putAll(t, s, cs...)
	syncStore(t, s)

	repackOf := func(id ID) {
		pack := stat(t, s, id).Pack
		rep, err := s.Repack(ctx, pack, func(ID) bool { return true })
		if err != nil || !rep.Removed {
			t.Errorf("Repack %d: %+v, %v", pack, rep, err)
		}
	}
	for _, moves := range []int{1, 2, maxRelocations} {
		c := cs[moves]
		before := stat(t, s, c.id).Pack
		left := moves
		s.afterLocate = func(id ID) {
			if id != c.id || left == 0 {
				return
			}
			left--
			repackOf(id)
		}
		got, err := s.Get(ctx, c.id)
		if err != nil || !bytes.Equal(got, c.data) {
			t.Fatalf("Get with %d moves under it: %v", moves, err)
		}
		if stat(t, s, c.id).Pack == before {
			t.Fatalf("chunk did not move (%d moves)", moves)
		}
		left = moves
		st, err := s.GetStored(ctx, c.id)
		if err != nil {
			t.Fatalf("GetStored with %d moves under it: %v", moves, err)
		}
		if data, err := st.Decode(c.id); err != nil || !bytes.Equal(data, c.data) {
			t.Fatalf("GetStored bytes: %v", err)
		}
	}

	// Deleted, and its pack removed, under the reader.
	c := cs[0]
	s.afterLocate = func(id ID) {
		if id != c.id {
			return
		}
		s.afterLocate = nil
		pack := stat(t, s, id).Pack
		if err := s.DeleteChunks(ctx, []ID{id}); err != nil {
			t.Error(err)
		}
		// Move the other chunks of the pack away so it can go.
		if _, err := s.Repack(ctx, pack, func(ID) bool { return true }); err != nil {
			t.Errorf("Repack %d: %v", pack, err)
		}
	}
	if _, err := s.Get(ctx, c.id); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Get of a chunk deleted under the reader: %v, want ErrNotFound", err)
	}
	s.afterLocate = nil
	for _, c := range cs[1:] {
		wantChunk(t, s, c)
	}
}

// Readers hammering live chunks while their packs are repacked again and
// again and dead packs removed never see ErrMissing or wrong bytes.
func TestReadersDuringRepackAndRemove(t *testing.T) {
	rng := rand.New(rand.NewPCG(26, 1))
	e := newEnv(t, Options{PackSize: 4 << 10, MaxOpenPacks: 4})
	s, _ := e.open()
	ctx := context.Background()
	var live, dead []chunk
	for i := range 40 {
		c := randomChunk(rng, 700)
		if i%3 == 0 {
			dead = append(dead, c)
		} else {
			live = append(live, c)
		}
		putAll(t, s, c)
	}
	syncStore(t, s)
	if err := s.DeleteChunks(ctx, ids(dead)); err != nil {
		t.Fatal(err)
	}

	stop := make(chan struct{})
	var readers sync.WaitGroup
	var reads atomic.Int64
	for w := range 3 {
		readers.Go(func() {
			r := rand.New(rand.NewPCG(uint64(w), 99))
			for {
				select {
				case <-stop:
					return
				default:
				}
				c := live[r.IntN(len(live))]
				var got []byte
				var err error
				if w == 0 {
					var st Stored
					if st, err = s.GetStored(ctx, c.id); err == nil {
						got, err = st.Decode(c.id)
					}
				} else {
					got, err = s.Get(ctx, c.id)
				}
				if err != nil || !bytes.Equal(got, c.data) {
					t.Errorf("read of live chunk %s during maintenance: %v", c.id.Short(), err)
					return
				}
				reads.Add(1)
			}
		})
	}
	for round := range 6 {
		packs, err := s.Packs(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range packs {
			if p.Active {
				continue
			}
			if p.LiveChunks == 0 {
				if err := s.RemovePack(ctx, p.Number); err != nil {
					t.Errorf("round %d: RemovePack %d: %v", round, p.Number, err)
				}
				continue
			}
			if _, err := s.Repack(ctx, p.Number, func(ID) bool { return true }); err != nil {
				t.Errorf("round %d: Repack %d: %v", round, p.Number, err)
			}
		}
	}
	close(stop)
	readers.Wait()
	if reads.Load() == 0 {
		t.Fatal("no reads happened")
	}
	rep, err := s.Check(ctx, true)
	if err != nil || !rep.OK() {
		t.Fatalf("Check after maintenance: %+v, %v", rep.Problems, err)
	}
	for _, c := range live {
		wantChunk(t, s, c)
	}
}

// Has and Put of a chunk whose deletion is in flight (its check done, its
// commit not yet) wait for the deletion and see the chunk gone: a caller
// that pinned the chunk after the check either finds it gone and uploads
// it, or is seen by the check.
func TestLookupsWaitForDeletionInFlight(t *testing.T) {
	rng := rand.New(rand.NewPCG(27, 1))
	e := newEnv(t, Options{})
	s, _ := e.open()
	ctx := context.Background()
	victim, other := randomChunk(rng, 300), randomChunk(rng, 300)
	putAll(t, s, victim, other)
	syncStore(t, s)

	hasDone := make(chan bool, 1)
	putDone := make(chan bool, 1)
	check := func(_ *badger.Txn, batch []ID) (IDSet, error) {
		go func() {
			has, err := s.Has(ctx, []ID{victim.id})
			if err != nil {
				t.Error(err)
			}
			hasDone <- has[0]
		}()
		go func() {
			stored, err := s.Put(ctx, victim.id, victim.data)
			if err != nil {
				t.Error(err)
			}
			putDone <- stored
		}()
		// Lookups of other chunks do not wait.
		if has, err := s.Has(ctx, []ID{other.id}); err != nil || !has[0] {
			t.Errorf("Has of another chunk during the deletion: %v, %v", has, err)
		}
		for {
			s.deletions.mu.Lock()
			n := s.deletions.waiting
			s.deletions.mu.Unlock()
			if n == 2 {
				return nil, nil
			}
			time.Sleep(time.Millisecond)
		}
	}
	res, err := s.DeleteChunksChecked(ctx, []ID{victim.id}, time.Time{}, check)
	if err != nil || res.Chunks != 1 {
		t.Fatalf("DeleteChunksChecked = %+v, %v", res, err)
	}
	if <-hasDone {
		t.Fatal("Has during the deletion reported the chunk present")
	}
	if !<-putDone {
		t.Fatal("Put during the deletion did not store the chunk again")
	}
	syncStore(t, s)
	wantChunk(t, s, victim)
}
