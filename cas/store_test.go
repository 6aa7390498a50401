package cas

import (
	"bytes"
	"context"
	"errors"
	"math/rand/v2"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/dgraph-io/badger/v4"
)

// Syncs queued behind a running round share the next one: with round one
// held inside fsync, any number of callers whose Puts returned meanwhile
// cost exactly one more round.
func TestGroupCommit(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 1))
	e := newEnv(t, Options{})
	s, _ := e.open()
	entered := make(chan struct{})
	release := make(chan struct{})
	var fsyncs atomic.Int32
	s.fsync = func(f *os.File) error {
		if fsyncs.Add(1) == 1 {
			close(entered)
			<-release
		}
		return f.Sync()
	}
	first := randomChunk(rng, 1000)
	putAll(t, s, first)
	firstDone := make(chan error)
	go func() { firstDone <- s.Sync(context.Background()) }()
	<-entered

	const callers = 8
	chunks := make([]chunk, callers)
	for i := range chunks {
		chunks[i] = randomChunk(rng, 1000)
	}
	putAll(t, s, chunks...)
	var wg sync.WaitGroup
	errs := make([]error, callers)
	for i := range callers {
		wg.Go(func() { errs[i] = s.Sync(context.Background()) })
	}
	close(release)
	if err := <-firstDone; err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if got := s.syncRounds.Load(); got != 2 {
		t.Fatalf("%d sync rounds for %d callers queued behind one, want 2", got, callers)
	}
	if got := fsyncs.Load(); got != 2 {
		t.Fatalf("%d pack fsyncs, want 2", got)
	}
	for _, c := range append(chunks, first) {
		if !stat(t, s, c.id).Durable {
			t.Fatalf("chunk %s not durable after Sync returned", c.id.Short())
		}
	}
	// Nothing new: Sync does not fsync again.
	syncStore(t, s)
	if got := s.syncRounds.Load(); got != 2 {
		t.Fatalf("idle Sync ran a round (%d)", got)
	}
}

// SyncChunks runs a round only for chunks still pending: chunks synced
// earlier cost nothing, even while other Puts wait for their round.
func TestSyncChunksOnlyWhenPending(t *testing.T) {
	rng := rand.New(rand.NewPCG(2, 2))
	e := newEnv(t, Options{})
	s, _ := e.open()
	ctx := context.Background()
	old, fresh := randomChunk(rng, 1000), randomChunk(rng, 1000)
	putAll(t, s, old)
	syncStore(t, s)
	rounds := s.syncRounds.Load()
	putAll(t, s, fresh)

	if err := s.SyncChunks(ctx, []ID{old.id}); err != nil {
		t.Fatal(err)
	}
	if got := s.syncRounds.Load(); got != rounds {
		t.Fatalf("SyncChunks of a synced chunk ran %d rounds", got-rounds)
	}
	if stat(t, s, fresh.id).Durable {
		t.Fatal("another Put became durable without a round")
	}
	if err := s.SyncChunks(ctx, []ID{old.id, fresh.id}); err != nil {
		t.Fatal(err)
	}
	if got := s.syncRounds.Load(); got != rounds+1 {
		t.Fatalf("SyncChunks of a pending chunk ran %d rounds, want 1", got-rounds)
	}
	if !stat(t, s, fresh.id).Durable {
		t.Fatal("pending chunk not durable after SyncChunks")
	}
	// An unknown chunk is not pending: no round, no error (the commit's
	// own check reports it missing).
	if err := s.SyncChunks(ctx, []ID{randomChunk(rng, 10).id}); err != nil {
		t.Fatal(err)
	}
	if got := s.syncRounds.Load(); got != rounds+1 {
		t.Fatalf("SyncChunks of an unknown chunk ran a round")
	}
}

// After a failed fsync nothing more is accepted, nothing unsynced is
// indexed, and a reopen recovers the last committed state.
func TestFsyncFailureIsSticky(t *testing.T) {
	rng := rand.New(rand.NewPCG(2, 2))
	e := newEnv(t, Options{})
	s, _ := e.open()
	good := randomChunk(rng, 2000)
	putAll(t, s, good)
	syncStore(t, s)

	diskErr := errors.New("injected EIO")
	s.fsync = func(*os.File) error { return diskErr }
	lost := randomChunk(rng, 2000)
	putAll(t, s, lost)
	err := s.Sync(context.Background())
	if !errors.Is(err, ErrFailed) || !errors.Is(err, diskErr) {
		t.Fatalf("Sync with failing fsync: err = %v, want ErrFailed wrapping the disk error", err)
	}
	other := randomChunk(rng, 100)
	if _, err := s.Put(context.Background(), other.id, other.data); !errors.Is(err, ErrFailed) {
		t.Fatalf("Put after failed fsync: err = %v, want ErrFailed", err)
	}
	if err := s.Sync(context.Background()); !errors.Is(err, ErrFailed) {
		t.Fatalf("second Sync: err = %v, want ErrFailed", err)
	}
	if ok, err := s.indexHas(lost.id); err != nil || ok {
		t.Fatalf("chunk of the failed sync is indexed: %v, %v", ok, err)
	}
	s.abandon()

	s, rep := e.open()
	if rep.TornBytes == 0 {
		t.Fatalf("OpenReport = %+v, want the unsynced record truncated", rep)
	}
	wantChunk(t, s, good)
	wantGetErr(t, s, lost.id, ErrNotFound)
}

func TestReopenReusesLastPack(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 3))
	e := newEnv(t, Options{PackSize: 64 << 10})
	s, _ := e.open()
	a := randomChunk(rng, 1000)
	putAll(t, s, a)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s, rep := e.open()
	if !rep.Clean() {
		t.Fatalf("OpenReport = %+v", rep)
	}
	b := randomChunk(rng, 1000)
	putAll(t, s, b)
	syncStore(t, s)
	if pa, pb := stat(t, s, a.id).Pack, stat(t, s, b.id).Pack; pa != pb {
		t.Fatalf("after reopen the chunk went to pack %d, not the unfilled pack %d", pb, pa)
	}
	packs, err := s.Packs(context.Background())
	if err != nil || len(packs) != 1 || packs[0].Records != 2 || !packs[0].Active {
		t.Fatalf("Packs = %+v, %v; want one active pack with 2 records", packs, err)
	}
}

func TestPutStoredKeepsClientCompression(t *testing.T) {
	rng := rand.New(rand.NewPCG(4, 4))
	e := newEnv(t, Options{})
	s, _ := e.open()
	ctx := context.Background()
	text := textChunk(rng, 20000)
	st, err := Compress(text.data)
	if err != nil || st.Codec != CodecZstd {
		t.Fatalf("Compress: %v, codec %s", err, st.Codec)
	}
	if stored, err := s.PutStored(ctx, text.id, st); err != nil || !stored {
		t.Fatalf("PutStored = %v, %v", stored, err)
	}
	got, err := s.GetStored(ctx, text.id)
	if err != nil || !bytes.Equal(got.Data, st.Data) || got.Codec != CodecZstd {
		t.Fatalf("GetStored returned a different stored form: %v", err)
	}
	wantChunk(t, s, text)

	wrong := st
	wrong.RawLen--
	other := textChunk(rng, 5000)
	if _, err := s.PutStored(ctx, other.id, Stored{Codec: CodecRaw, Data: text.data, RawLen: len(text.data)}); !errors.Is(err, ErrHashMismatch) {
		t.Fatalf("PutStored under a wrong id: err = %v, want ErrHashMismatch", err)
	}
	if _, err := s.PutStored(ctx, text.id, wrong); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("PutStored with a wrong raw length: err = %v, want ErrCorrupt", err)
	}
	// A zstd form that is not smaller than the chunk is accepted and
	// stored raw.
	rnd := randomChunk(rng, 3000)
	big := testCodecs(t).enc.EncodeAll(rnd.data, nil)
	if len(big) < len(rnd.data) {
		t.Fatal("random data compressed")
	}
	if stored, err := s.PutStored(ctx, rnd.id, Stored{Codec: CodecZstd, Data: big, RawLen: len(rnd.data)}); err != nil || !stored {
		t.Fatalf("PutStored of an expanded zstd form = %v, %v", stored, err)
	}
	if info := stat(t, s, rnd.id); info.Codec != CodecRaw {
		t.Fatalf("expanded form stored as %s, want raw", info.Codec)
	}
	if _, err := s.PutStored(ctx, rnd.id, Stored{Codec: CodecRaw, Data: rnd.data, RawLen: MaxChunkSizeLimit + 1}); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("PutStored claiming a huge chunk: err = %v, want ErrTooLarge", err)
	}
	// A raw form is the sender's verdict that compression does not pay:
	// kept raw, not compressed a second time.
	plain := textChunk(rng, 6000)
	if stored, err := s.PutStored(ctx, plain.id, Stored{Codec: CodecRaw, Data: plain.data, RawLen: len(plain.data)}); err != nil || !stored {
		t.Fatalf("PutStored of a raw form = %v, %v", stored, err)
	}
	if info := stat(t, s, plain.id); info.Codec != CodecRaw || info.StoredLen != uint32(len(plain.data)) {
		t.Fatalf("raw form stored as %s, %d bytes; want raw, %d", info.Codec, info.StoredLen, len(plain.data))
	}
	wantChunk(t, s, plain)
}

func TestClosedStore(t *testing.T) {
	e := newEnv(t, Options{})
	s, _ := e.open()
	c := randomChunk(rand.New(rand.NewPCG(5, 5)), 10)
	putAll(t, s, c)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	ctx := context.Background()
	if _, err := s.Put(ctx, c.id, c.data); !errors.Is(err, ErrClosed) {
		t.Errorf("Put: %v", err)
	}
	if _, err := s.Get(ctx, c.id); !errors.Is(err, ErrClosed) {
		t.Errorf("Get: %v", err)
	}
	if err := s.Sync(ctx); !errors.Is(err, ErrClosed) {
		t.Errorf("Sync: %v", err)
	}
	// Close committed the unsynced Put.
	s2, _ := e.open()
	wantChunk(t, s2, c)
}

func TestOptionsValidation(t *testing.T) {
	e := newEnv(t, Options{})
	for _, o := range []Options{{PackSize: 10}, {PackSize: MaxPackSize + 1}, {MaxChunkSize: MaxChunkSizeLimit + 1}, {MaxChunkSize: -1}} {
		if _, _, err := Open(context.Background(), e.dir, e.db, o); err == nil {
			t.Errorf("Open with %+v succeeded", o)
		}
	}
}

func TestCheckCountsOrphansAndCounters(t *testing.T) {
	rng := rand.New(rand.NewPCG(6, 6))
	e := newEnv(t, Options{})
	s, _ := e.open()
	ctx := context.Background()
	a, b := randomChunk(rng, 3000), textChunk(rng, 3000)
	putAll(t, s, a, b)
	syncStore(t, s)
	if err := s.DeleteChunks(ctx, []ID{a.id}); err != nil {
		t.Fatal(err)
	}
	rep, err := s.Check(ctx, true)
	if err != nil || !rep.OK() {
		t.Fatalf("Check: %v %v", err, rep.Problems)
	}
	if rep.Chunks != 1 || rep.Records != 2 || rep.OrphanRecords != 1 || rep.OrphanBytes != RecordHeaderSize+3000 {
		t.Fatalf("CheckReport = %+v, want 1 chunk, 1 orphan of %d bytes", rep, RecordHeaderSize+3000)
	}

	// Damage the counters behind the store's back: Check notices and a
	// rebuild repairs them.
	pack := stat(t, s, b.id).Pack
	if err := e.db.Update(func(txn *badger.Txn) error {
		return txn.Set(packKey(pack), encodePackMeta(packMeta{Committed: fileSize(t, packPath(e.dir, pack)), Records: 2, LiveChunks: 5}))
	}); err != nil {
		t.Fatal(err)
	}
	rep, err = s.Check(ctx, false)
	if err != nil || len(problemsOf(rep, ProblemCounters)) != 1 {
		t.Fatalf("Check with wrong counters: %v %v", err, rep.Problems)
	}
	if _, err := s.RebuildIndex(ctx); err != nil {
		t.Fatal(err)
	}
	if rep, err := s.Check(ctx, false); err != nil || !rep.OK() {
		t.Fatalf("Check after rebuild: %v %v", err, rep.Problems)
	}
}

func TestCheckReportsUnknownAndMissingPacks(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 7))
	e := newEnv(t, Options{PackSize: 4 << 10})
	s, _ := e.open()
	ctx := context.Background()
	var chunks []chunk
	for range 6 {
		chunks = append(chunks, randomChunk(rng, 2500))
	}
	putAll(t, s, chunks...)
	syncStore(t, s)
	victim := stat(t, s, chunks[0].id).Pack
	if err := os.Remove(packPath(e.dir, victim)); err != nil {
		t.Fatal(err)
	}
	s.files.forget(victim)
	wantGetErr(t, s, chunks[0].id, ErrMissing)
	rep, err := s.Check(ctx, false)
	if err != nil {
		t.Fatal(err)
	}
	if len(problemsOf(rep, ProblemPackMissing)) != 1 || len(rep.Affected()) != 1 || rep.Affected()[0] != chunks[0].id {
		t.Fatalf("Check problems = %v, want the missing pack and its chunk", rep.Problems)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	_, orep := e.open()
	if len(orep.MissingPacks) != 1 || orep.MissingPacks[0] != victim {
		t.Fatalf("OpenReport = %+v, want pack %d missing", orep, victim)
	}
}

// Gets racing with Repack of the chunks' pack always return the right bytes.
func TestGetDuringRepack(t *testing.T) {
	rng := rand.New(rand.NewPCG(8, 8))
	e := newEnv(t, Options{PackSize: 8 << 10})
	s, _ := e.open()
	ctx := context.Background()
	var chunks []chunk
	for range 12 {
		chunks = append(chunks, randomChunk(rng, 1500))
	}
	putAll(t, s, chunks...)
	syncStore(t, s)
	packs, err := s.Packs(ctx)
	if err != nil || len(packs) < 2 {
		t.Fatalf("Packs = %v, %v", packs, err)
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := range 2 {
		wg.Go(func() {
			for i := w; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				c := chunks[i%len(chunks)]
				got, err := s.Get(ctx, c.id)
				if err != nil || !bytes.Equal(got, c.data) {
					t.Errorf("Get %s during repack: %v", c.id.Short(), err)
					return
				}
			}
		})
	}
	for _, p := range packs[:len(packs)-1] {
		if _, err := s.Repack(ctx, p.Number, func(ID) bool { return true }); err != nil {
			t.Errorf("Repack %d: %v", p.Number, err)
		}
	}
	close(stop)
	wg.Wait()
	for _, c := range chunks {
		wantChunk(t, s, c)
	}
}

// A Repack that cannot see a live record (damaged) keeps the old pack
// rather than lose the chunk's last bytes, and says so.
func TestRepackKeepsPackWithDamage(t *testing.T) {
	rng := rand.New(rand.NewPCG(9, 9))
	e := newEnv(t, Options{PackSize: 16 << 10})
	s, _ := e.open()
	ctx := context.Background()
	var chunks []chunk
	for range 10 {
		chunks = append(chunks, randomChunk(rng, 2000))
	}
	putAll(t, s, chunks...)
	syncStore(t, s)
	victim := chunks[2]
	loc := stat(t, s, victim.id).Location
	patchFile(t, packPath(e.dir, loc.Pack), loc.Offset+RecordHeaderSize+5, []byte{0xff, 0xfe})

	rep, err := s.Repack(ctx, loc.Pack, func(ID) bool { return true })
	if !errors.Is(err, ErrPackInUse) || rep.Removed || len(rep.BadRegions) != 1 {
		t.Fatalf("Repack of a damaged pack = %+v, %v; want ErrPackInUse, pack kept, one bad region", rep, err)
	}
	if _, err := os.Stat(packPath(e.dir, loc.Pack)); err != nil {
		t.Fatalf("damaged pack removed: %v", err)
	}
	for _, c := range chunks {
		if c.id == victim.id {
			wantGetErr(t, s, c.id, ErrCorrupt)
			continue
		}
		wantChunk(t, s, c)
		if stat(t, s, c.id).Pack == loc.Pack {
			t.Fatalf("intact chunk %s not moved out of the damaged pack", c.id.Short())
		}
	}
}

// AppendUnhashed checks the record's CRC but not the chunk's hash: a record
// rewritten with other bytes and a matching CRC passes it, and only Get
// finds the damage. A record that fails its CRC fails both.
func TestAppendUnhashed(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 5))
	e := newEnv(t, Options{})
	s, _ := e.open()
	ctx := context.Background()
	good, forged, flipped := randomChunk(rng, 3000), randomChunk(rng, 3000), randomChunk(rng, 3000)
	putAll(t, s, good, forged, flipped)
	syncStore(t, s)

	if data, err := s.AppendUnhashed(ctx, good.id, nil); err != nil || !bytes.Equal(data, good.data) {
		t.Fatalf("AppendUnhashed of a good chunk: %v", err)
	}
	text := textChunk(rng, 5000)
	putAll(t, s, text)
	if c := stat(t, s, text.id).Codec; c != CodecZstd {
		t.Fatalf("text chunk stored as %v, want zstd", c)
	}
	prefix := []byte("kept")
	buf, err := s.AppendUnhashed(ctx, good.id, prefix)
	if err == nil {
		buf, err = s.AppendUnhashed(ctx, text.id, buf) // stored compressed
	}
	if want := slices.Concat(prefix, good.data, text.data); err != nil || !bytes.Equal(buf, want) {
		t.Fatalf("AppendUnhashed of a raw and a compressed chunk: %v", err)
	}
	if out, err := s.AppendUnhashed(ctx, Sum([]byte("absent")), buf); !errors.Is(err, ErrNotFound) || len(out) != len(buf) {
		t.Fatalf("AppendUnhashed of an unknown chunk: %d bytes, %v; want dst unchanged and ErrNotFound", len(out), err)
	}

	loc := stat(t, s, forged.id).Location
	rec := make([]byte, RecordHeaderSize+int(loc.StoredLen))
	f, err := os.OpenFile(packPath(e.dir, loc.Pack), os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.ReadAt(rec, loc.Offset); err != nil {
		t.Fatal(err)
	}
	rec[RecordHeaderSize+7] ^= 0x5a
	putRecordHeader(rec, loc.Codec, forged.id, loc.RawLen, rec[RecordHeaderSize:])
	if _, err := f.WriteAt(rec, loc.Offset); err != nil {
		t.Fatal(err)
	}
	if data, err := s.AppendUnhashed(ctx, forged.id, nil); err != nil || bytes.Equal(data, forged.data) || len(data) != len(forged.data) {
		t.Fatalf("AppendUnhashed of a forged record with a valid CRC: %v, want its (other) bytes", err)
	}
	if _, err := s.Get(ctx, forged.id); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("Get of a forged record: %v, want ErrCorrupt", err)
	}

	loc = stat(t, s, flipped.id).Location
	patchFile(t, packPath(e.dir, loc.Pack), loc.Offset+RecordHeaderSize+3, []byte{^flipped.data[3]})
	if _, err := s.AppendUnhashed(ctx, flipped.id, nil); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("AppendUnhashed of a record failing its CRC: %v, want ErrCorrupt", err)
	}
}

// StatMany answers as Stat would for each chunk: synced, pending and
// absent ones in one call.
func TestStatManyMatchesStat(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 7))
	e := newEnv(t, Options{})
	s, _ := e.open()
	ctx := context.Background()
	synced, pending, absent := randomChunk(rng, 3000), randomChunk(rng, 2000), randomChunk(rng, 10)
	putAll(t, s, synced)
	syncStore(t, s)
	putAll(t, s, pending)
	ids := []ID{pending.id, absent.id, synced.id}
	infos, found, err := s.StatMany(ctx, ids)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(found, []bool{true, false, true}) {
		t.Fatalf("found = %v, want [true false true]", found)
	}
	for i, id := range ids {
		if !found[i] {
			continue
		}
		if want := stat(t, s, id); infos[i] != want {
			t.Errorf("StatMany(%s) = %+v, Stat = %+v", id.Short(), infos[i], want)
		}
	}
	if infos[0].Durable || !infos[2].Durable {
		t.Errorf("durable flags %v, %v: want the pending chunk not durable, the synced one durable", infos[0].Durable, infos[2].Durable)
	}
	s.Close()
	if _, _, err := s.StatMany(ctx, ids); !errors.Is(err, ErrClosed) {
		t.Errorf("StatMany after Close: err = %v, want ErrClosed", err)
	}
}
