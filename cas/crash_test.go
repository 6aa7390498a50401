package cas

import (
	"context"
	"errors"
	"math/rand/v2"
	"os"
	"slices"
	"sync"
	"testing"
)

// (1) Garbage or half a record after the committed end of a pack: Open
// truncates it, reports it, and every synced chunk stays readable.
func TestOpenTruncatesTornTail(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 1))
	c := testCodecs(t)
	tests := []struct {
		name string
		tail []byte
	}{
		{"garbage", randomChunk(rng, 1000).data},
		{"half a record", encodeChunk(c, textChunk(rng, 3000).data)[:500]},
		{"whole uncommitted record", encodeChunk(c, randomChunk(rng, 200).data)},
		{"one byte", []byte{0x11}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, Options{})
			s, _ := e.open()
			chunks := []chunk{textChunk(rng, 5000), randomChunk(rng, 5000), textChunk(rng, 100)}
			putAll(t, s, chunks...)
			syncStore(t, s)
			pack := stat(t, s, chunks[0].id).Pack
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			path := packPath(e.dir, pack)
			committed := fileSize(t, path)
			f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := f.Write(tc.tail); err != nil {
				t.Fatal(err)
			}
			_ = f.Close()

			s, rep := e.open()
			if rep.TornBytes != int64(len(tc.tail)) || len(rep.TornTails) != 1 || rep.TornTails[0] != (PackBytes{pack, int64(len(tc.tail))}) {
				t.Fatalf("OpenReport = %+v, want %d torn bytes in pack %d", rep, len(tc.tail), pack)
			}
			if got := fileSize(t, path); got != committed {
				t.Fatalf("pack is %d bytes after Open, want the committed %d", got, committed)
			}
			for _, c := range chunks {
				wantChunk(t, s, c)
			}
			// The store keeps appending to the same, repaired pack.
			more := randomChunk(rng, 300)
			putAll(t, s, more)
			syncStore(t, s)
			if stat(t, s, more.id).Pack != pack {
				t.Fatalf("new chunk went to pack %d, want the reused pack %d", stat(t, s, more.id).Pack, pack)
			}
			if rep, err := s.Check(context.Background(), true); err != nil || !rep.OK() {
				t.Fatalf("Check after repair: %v %+v", err, rep.Problems)
			}
		})
	}
}

// (2) A crash after Put but before Sync: the unsynced chunks are gone after
// reopening, the synced ones are intact, and a pack created after the last
// commit is removed.
func TestCrashLosesOnlyUnsynced(t *testing.T) {
	rng := rand.New(rand.NewPCG(2, 2))
	e := newEnv(t, Options{PackSize: 8 << 10})
	s, _ := e.open()
	var synced, unsynced []chunk
	for range 6 {
		synced = append(synced, randomChunk(rng, 1500))
	}
	putAll(t, s, synced...)
	syncStore(t, s)
	before, err := s.Stats(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	// Enough unsynced data to fill the active pack and start new ones.
	for range 12 {
		unsynced = append(unsynced, randomChunk(rng, 1500))
	}
	putAll(t, s, unsynced...)
	for _, c := range unsynced {
		wantChunk(t, s, c) // readable before the crash, from the page cache
	}
	s.abandon()

	s, rep := e.open()
	if rep.TornBytes == 0 || len(rep.RemovedPacks) == 0 {
		t.Fatalf("OpenReport = %+v, want torn bytes in the active pack and removed new packs", rep)
	}
	for _, p := range rep.RemovedPacks {
		if _, err := os.Stat(packPath(e.dir, p.Pack)); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("removed pack %d still on disk: %v", p.Pack, err)
		}
	}
	for _, c := range synced {
		wantChunk(t, s, c)
	}
	for _, c := range unsynced {
		wantGetErr(t, s, c.id, ErrNotFound)
	}
	after, err := s.Stats(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if after.Chunks != before.Chunks || after.PackBytes != before.PackBytes {
		t.Fatalf("Stats after crash = %+v, before the unsynced puts %+v", after, before)
	}
	// Pack numbers are never reused: new packs get numbers past the lost ones.
	c := randomChunk(rng, 7000)
	putAll(t, s, c)
	syncStore(t, s)
	for _, p := range rep.RemovedPacks {
		if stat(t, s, c.id).Pack <= p.Pack {
			t.Fatalf("new chunk in pack %d, not past removed pack %d", stat(t, s, c.id).Pack, p.Pack)
		}
	}
	if rep, err := s.Check(context.Background(), true); err != nil || !rep.OK() {
		t.Fatalf("Check: %v %+v", err, rep.Problems)
	}
}

// (3) A flipped bit inside a stored record is ErrCorrupt on Get and a
// problem for Check; a flip with a recomputed CRC is caught by the hash
// (Get always, Check only with readData).
func TestCorruptRecord(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 3))
	tests := []struct {
		name          string
		chunk         chunk
		fixCRC        bool
		flipAt        func(loc Location) int64
		checkFinds    bool // Check without readData
		wantRegionErr bool
	}{
		{"zstd payload", textChunk(rng, 8000), false, func(l Location) int64 { return l.Offset + RecordHeaderSize + int64(l.StoredLen)/2 }, true, true},
		{"raw payload", randomChunk(rng, 8000), false, func(l Location) int64 { return l.Offset + RecordHeaderSize + 17 }, true, true},
		{"header id", randomChunk(rng, 100), false, func(l Location) int64 { return l.Offset + recOffID + 3 }, true, true},
		{"raw payload, CRC fixed", randomChunk(rng, 8000), true, func(l Location) int64 { return l.Offset + RecordHeaderSize + 99 }, false, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, Options{})
			s, _ := e.open()
			others := []chunk{randomChunk(rng, 3000), textChunk(rng, 3000)}
			putAll(t, s, others[0], tc.chunk, others[1])
			syncStore(t, s)
			loc := stat(t, s, tc.chunk.id).Location
			path := packPath(e.dir, loc.Pack)
			off := tc.flipAt(loc)
			b := readAt(t, path, off, 1)
			patchFile(t, path, off, []byte{b[0] ^ 0x04})
			if tc.fixCRC {
				rec := readAt(t, path, loc.Offset, int(RecordHeaderSize+loc.StoredLen))
				putRecordHeader(rec, loc.Codec, tc.chunk.id, loc.RawLen, rec[RecordHeaderSize:])
				patchFile(t, path, loc.Offset, rec[:RecordHeaderSize])
			}

			wantGetErr(t, s, tc.chunk.id, ErrCorrupt)
			if _, err := s.GetStored(context.Background(), tc.chunk.id); !tc.fixCRC && !errors.Is(err, ErrCorrupt) {
				t.Fatalf("GetStored: err = %v, want ErrCorrupt", err)
			}
			for _, c := range others {
				wantChunk(t, s, c)
			}
			for _, readData := range []bool{false, true} {
				rep, err := s.Check(context.Background(), readData)
				if err != nil {
					t.Fatal(err)
				}
				found := slices.Contains(rep.Affected(), tc.chunk.id)
				if want := tc.checkFinds || readData; found != want {
					t.Fatalf("Check(readData=%v) affected = %v, want %s listed: %v; problems %v", readData, rep.Affected(), tc.chunk.id.Short(), want, rep.Problems)
				}
				if len(rep.Affected()) > 1 {
					t.Fatalf("Check(readData=%v) lists intact chunks: %v", readData, rep.Problems)
				}
				if regions := problemsOf(rep, ProblemCorruptRegion); (len(regions) > 0) != (tc.wantRegionErr || readData) {
					t.Fatalf("Check(readData=%v) corrupt regions = %v", readData, regions)
				}
			}
		})
	}
}

// (4) A pack cut below its committed length: Open reports it, the chunk
// whose bytes are gone reads as ErrMissing, never as wrong bytes, and Check
// names it.
func TestShortPack(t *testing.T) {
	rng := rand.New(rand.NewPCG(4, 4))
	e := newEnv(t, Options{})
	s, _ := e.open()
	first, last := randomChunk(rng, 4000), textChunk(rng, 4000)
	putAll(t, s, first, last)
	syncStore(t, s)
	loc := stat(t, s, last.id).Location
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	cut := loc.Offset + RecordHeaderSize + int64(loc.StoredLen)/2
	if err := os.Truncate(packPath(e.dir, loc.Pack), cut); err != nil {
		t.Fatal(err)
	}

	s, rep := e.open()
	if len(rep.ShortPacks) != 1 || rep.ShortPacks[0].Pack != loc.Pack || rep.ShortPacks[0].Size != cut {
		t.Fatalf("OpenReport = %+v, want pack %d short at %d", rep, loc.Pack, cut)
	}
	wantChunk(t, s, first)
	wantGetErr(t, s, last.id, ErrMissing)
	check, err := s.Check(context.Background(), true)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(check.Affected(), []ID{last.id}) || len(problemsOf(check, ProblemPackShort)) != 1 {
		t.Fatalf("Check problems = %v, want the short pack and chunk %s", check.Problems, last.id.Short())
	}
	// The damaged pack is not appended to.
	c := randomChunk(rng, 100)
	putAll(t, s, c)
	syncStore(t, s)
	if stat(t, s, c.id).Pack == loc.Pack {
		t.Fatal("store appended to a short pack")
	}
}

// (5) The badger database is lost: Open with a fresh one touches no pack
// and asks for a rebuild; RebuildIndex brings every chunk back.
func TestRebuildFromFreshDB(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 5))
	e := newEnv(t, Options{PackSize: 16 << 10})
	s, _ := e.open()
	var chunks []chunk
	for i := range 40 {
		c := randomChunk(rng, 1000+i*10)
		if i%3 == 0 {
			c = textChunk(rng, 2000)
		}
		chunks = append(chunks, c)
	}
	putAll(t, s, chunks...)
	putAll(t, s, chunks[:5]...) // duplicates do not create records
	syncStore(t, s)
	before, _ := s.Stats(context.Background())
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	disk, _, err := listPacks(e.dir)
	if err != nil {
		t.Fatal(err)
	}

	e.freshDB("db2")
	s, rep := e.open()
	if !rep.NeedsRebuild || len(rep.UnindexedPacks) != len(disk) || len(rep.RemovedPacks) != 0 {
		t.Fatalf("OpenReport = %+v, want NeedsRebuild with %d unindexed packs kept", rep, len(disk))
	}
	wantGetErr(t, s, chunks[0].id, ErrNotFound)

	rr, err := s.RebuildIndex(context.Background())
	if err != nil {
		t.Fatalf("RebuildIndex: %v", err)
	}
	if rr.Indexed != uint64(len(chunks)) || rr.Duplicates != 0 || len(rr.BadRegions) != 0 || rr.Packs != len(disk) {
		t.Fatalf("RebuildReport = %+v, want %d chunks from %d packs", rr, len(chunks), len(disk))
	}
	for _, c := range chunks {
		wantChunk(t, s, c)
	}
	after, _ := s.Stats(context.Background())
	if after != before {
		t.Fatalf("Stats after rebuild = %+v, before %+v", after, before)
	}
	if check, err := s.Check(context.Background(), true); err != nil || !check.OK() {
		t.Fatalf("Check after rebuild: %v %v", err, check.Problems)
	}
	// The rebuilt state survives a reopen and needs nothing further.
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s, rep = e.open()
	if !rep.Clean() {
		t.Fatalf("OpenReport after rebuild = %+v", rep)
	}
	wantChunk(t, s, chunks[len(chunks)-1])
}

// (6) RebuildIndex skips a damaged record in the middle of a pack and
// resynchronizes on the next valid one.
func TestRebuildSkipsCorruptRecord(t *testing.T) {
	rng := rand.New(rand.NewPCG(6, 6))
	tests := []struct {
		name   string
		damage func(t *testing.T, path string, loc Location)
	}{
		{"garbage stored length", func(t *testing.T, path string, loc Location) {
			patchFile(t, path, loc.Offset+recOffStored, []byte{0x13, 0x37, 0x00, 0x00})
		}},
		{"flipped payload byte", func(t *testing.T, path string, loc Location) {
			patchFile(t, path, loc.Offset+RecordHeaderSize+10, []byte{0xee})
		}},
		{"overwritten header", func(t *testing.T, path string, loc Location) {
			patchFile(t, path, loc.Offset, make([]byte, RecordHeaderSize))
		}},
		{"record zeroed", func(t *testing.T, path string, loc Location) {
			patchFile(t, path, loc.Offset, make([]byte, RecordHeaderSize+loc.StoredLen))
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, Options{})
			s, _ := e.open()
			var chunks []chunk
			for i := range 9 {
				if i%2 == 0 {
					chunks = append(chunks, textChunk(rng, 3000))
				} else {
					chunks = append(chunks, randomChunk(rng, 3000))
				}
			}
			putAll(t, s, chunks...)
			syncStore(t, s)
			victim := chunks[4]
			loc := stat(t, s, victim.id).Location
			tc.damage(t, packPath(e.dir, loc.Pack), loc)

			rr, err := s.RebuildIndex(context.Background())
			if err != nil {
				t.Fatalf("RebuildIndex: %v", err)
			}
			if len(rr.BadRegions) != 1 || rr.BadRegions[0].Offset != loc.Offset || rr.BadRegions[0].Length != RecordHeaderSize+int64(loc.StoredLen) {
				t.Fatalf("bad regions = %+v, want exactly the record at %d+%d", rr.BadRegions, loc.Offset, RecordHeaderSize+loc.StoredLen)
			}
			if rr.Indexed != uint64(len(chunks)-1) {
				t.Fatalf("indexed %d chunks, want %d", rr.Indexed, len(chunks)-1)
			}
			for _, c := range chunks {
				if c.id == victim.id {
					wantGetErr(t, s, c.id, ErrNotFound)
				} else {
					wantChunk(t, s, c)
				}
			}
			check, err := s.Check(context.Background(), true)
			if err != nil {
				t.Fatal(err)
			}
			if len(check.Affected()) != 0 || len(problemsOf(check, ProblemCorruptRegion)) != 1 || len(check.Problems) != 1 {
				t.Fatalf("Check after rebuild = %v, want only the known corrupt region", check.Problems)
			}
		})
	}
}

// A rebuild on a healthy live store reproduces the same index, while Puts
// keep going.
func TestRebuildLiveStore(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 7))
	e := newEnv(t, Options{PackSize: 8 << 10})
	s, _ := e.open()
	var chunks []chunk
	for range 30 {
		chunks = append(chunks, randomChunk(rng, 900))
	}
	putAll(t, s, chunks...)
	syncStore(t, s)
	if err := s.DeleteChunks(context.Background(), []ID{chunks[0].id}); err != nil {
		t.Fatal(err)
	}
	late := make([]chunk, 20)
	for i := range late {
		late[i] = textChunk(rng, 700+i)
	}
	var wg sync.WaitGroup
	wg.Go(func() {
		for _, c := range late {
			if _, err := s.Put(context.Background(), c.id, c.data); err != nil {
				t.Error(err)
			}
		}
	})
	rr, err := s.RebuildIndex(context.Background())
	wg.Wait()
	if err != nil {
		t.Fatal(err)
	}
	if len(rr.BadRegions) != 0 {
		t.Fatalf("bad regions in a healthy store: %+v", rr.BadRegions)
	}
	syncStore(t, s)
	// The deleted chunk's record is still in its pack, so it comes back.
	for _, c := range append(chunks, late...) {
		wantChunk(t, s, c)
	}
	if check, err := s.Check(context.Background(), true); err != nil || !check.OK() {
		t.Fatalf("Check: %v %v", err, check.Problems)
	}
}
