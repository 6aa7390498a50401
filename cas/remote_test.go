package cas

import (
	"bytes"
	"context"
	"errors"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"

	"github.com/quic-s/quics/internal/blockcache"
)

// flakyBackend is a DirBackend whose Puts can be made to fail: the failing
// disk or network at the system's edge.
type flakyBackend struct {
	DirBackend
	failPuts atomic.Int32
	puts     atomic.Int32
}

var errInjected = errors.New("injected backend failure")

func (f *flakyBackend) Put(ctx context.Context, num uint64, r io.ReaderAt, size int64) error {
	f.puts.Add(1)
	if f.failPuts.Load() > 0 {
		f.failPuts.Add(-1)
		return errInjected
	}
	return f.DirBackend.Put(ctx, num, r, size)
}

func newRemoteEnv(t *testing.T) (*env, *flakyBackend) {
	t.Helper()
	b := &flakyBackend{DirBackend: DirBackend{Dir: filepath.Join(t.TempDir(), "bucket")}}
	e := newEnv(t, Options{PackSize: 16 << 10, MaxChunkSize: 64 << 10, Backend: b})
	return e, b
}

// fill puts n random chunks of 4 KiB and syncs, spanning several packs.
func fill(t *testing.T, s *Store, seed uint64, n int) []chunk {
	t.Helper()
	rng := rand.New(rand.NewPCG(seed, 7))
	var cs []chunk
	for range n {
		cs = append(cs, randomChunk(rng, 4<<10))
	}
	putAll(t, s, cs...)
	syncStore(t, s)
	return cs
}

func remotePacks(t *testing.T, s *Store) (remote, local int) {
	t.Helper()
	packs, err := s.Packs(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range packs {
		if p.Remote {
			remote++
		} else {
			local++
		}
	}
	return remote, local
}

func TestUploadMovesPacksAndReadsFollow(t *testing.T) {
	e, b := newRemoteEnv(t)
	s, _ := e.open()
	cs := fill(t, s, 1, 20)
	rep, err := s.UploadAll(context.Background())
	if err != nil {
		t.Fatalf("UploadAll: %v", err)
	}
	if rep.Packs == 0 || rep.Bytes == 0 {
		t.Fatalf("UploadAll sent nothing: %+v", rep)
	}
	remote, local := remotePacks(t, s)
	if local != 0 || remote == 0 {
		t.Fatalf("after UploadAll: %d remote, %d local packs", remote, local)
	}
	disk, _, err := listPacks(e.dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(disk) != 0 {
		t.Fatalf("local pack files left after upload: %v", disk)
	}
	for _, c := range cs {
		wantChunk(t, s, c)
	}
	st, err := s.Stats(context.Background())
	if err != nil || st.RemotePacks != remote || st.RemoteBytes == 0 {
		t.Fatalf("Stats = %+v, %v", st, err)
	}
	// Nothing more to send: a second UploadAll makes no Put.
	before := b.puts.Load()
	if rep, err := s.UploadAll(context.Background()); err != nil || rep.Packs != 0 {
		t.Fatalf("second UploadAll = %+v, %v", rep, err)
	}
	if b.puts.Load() != before {
		t.Fatalf("second UploadAll made %d Puts", b.puts.Load()-before)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s2, rep2 := e.open()
	if !rep2.Clean() {
		t.Fatalf("reopen report: %+v", rep2)
	}
	for _, c := range cs {
		wantChunk(t, s2, c)
	}
}

// The background loop uploads sealed packs without being asked; the
// active pack stays local.
func TestUploadLoopSendsSealedPacks(t *testing.T) {
	e, _ := newRemoteEnv(t)
	s, _ := e.open()
	fill(t, s, 2, 20)
	deadline := time.Now().Add(20 * time.Second)
	for {
		remote, local := remotePacks(t, s)
		if remote > 0 && local == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("upload loop: %d remote, %d local packs after 20 s", remote, local)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// A failing upload keeps the local pack and its chunks readable; the
// pack goes once the backend works again.
func TestUploadFailureKeepsLocalCopy(t *testing.T) {
	e, b := newRemoteEnv(t)
	s, _ := e.open()
	b.failPuts.Store(1 << 20)
	cs := fill(t, s, 3, 10)
	if _, err := s.UploadAll(context.Background()); !errors.Is(err, errInjected) {
		t.Fatalf("UploadAll with a failing backend: %v", err)
	}
	if remote, _ := remotePacks(t, s); remote != 0 {
		t.Fatalf("%d packs marked remote although every Put failed", remote)
	}
	for _, c := range cs {
		wantChunk(t, s, c)
	}
	b.failPuts.Store(0)
	if _, err := s.UploadAll(context.Background()); err != nil {
		t.Fatalf("UploadAll after recovery: %v", err)
	}
	if _, local := remotePacks(t, s); local != 0 {
		t.Fatalf("%d local packs after a successful UploadAll", local)
	}
	for _, c := range cs {
		wantChunk(t, s, c)
	}
}

// Crash states between the upload steps reopen cleanly.
func TestOpenReconcilesBackend(t *testing.T) {
	e, b := newRemoteEnv(t)
	s, _ := e.open()
	cs := fill(t, s, 4, 20)
	if _, err := s.UploadAll(context.Background()); err != nil {
		t.Fatal(err)
	}
	packs, err := s.Packs(context.Background())
	if err != nil || len(packs) < 3 {
		t.Fatalf("Packs = %d, %v", len(packs), err)
	}
	leftover := packs[0].Number
	s.abandon()

	// A local copy of a pack already marked remote (crash before the
	// local delete) is removed; an object the index does not know (crash
	// between deleting a pack's meta and its object) is deleted.
	data, err := os.ReadFile(filepath.Join(b.Dir, filepath.FromSlash(PackObjectName(leftover))))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Dir(packPath(e.dir, leftover)), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(packPath(e.dir, leftover), data, 0o644); err != nil {
		t.Fatal(err)
	}
	orphan := packs[len(packs)-1].Number - 1 // a number already allocated
	if err := b.DirBackend.Put(context.Background(), 1000+orphan, bytes.NewReader(data), int64(len(data))); err != nil {
		t.Fatal(err)
	}
	stale := packs[1].Number
	if err := e.db.Update(func(txn *badger.Txn) error { return txn.Delete(packKey(stale)) }); err != nil {
		t.Fatal(err)
	}
	s2, rep := e.open()
	if _, err := os.Stat(packPath(e.dir, leftover)); !os.IsNotExist(err) {
		t.Fatalf("local leftover of remote pack %d still there: %v", leftover, err)
	}
	if _, err := b.Stat(context.Background(), stale); !errors.Is(err, ErrNoObject) {
		t.Fatalf("object of pack %d, unknown to the index, survived Open: %v (report %+v)", stale, err, rep)
	}
	if len(rep.RemovedPacks) != 1 || rep.RemovedPacks[0].Pack != stale {
		t.Fatalf("RemovedPacks = %+v, want pack %d", rep.RemovedPacks, stale)
	}
	// A number past the counter is never deleted: it is not ours to judge.
	if _, err := b.Stat(context.Background(), 1000+orphan); err != nil {
		t.Fatalf("object past the pack counter was deleted: %v", err)
	}
	for _, c := range cs {
		if info, err := s2.Stat(context.Background(), c.id); err == nil && info.Pack != stale {
			wantChunk(t, s2, c)
		}
	}
}

// A pack missing from the backend is reported and its chunks read as
// ErrMissing; Check names it.
func TestMissingRemotePack(t *testing.T) {
	e, b := newRemoteEnv(t)
	s, _ := e.open()
	cs := fill(t, s, 5, 10)
	if _, err := s.UploadAll(context.Background()); err != nil {
		t.Fatal(err)
	}
	lost := stat(t, s, cs[0].id).Pack
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := b.Delete(context.Background(), lost); err != nil {
		t.Fatal(err)
	}
	s2, rep := e.open()
	if len(rep.MissingPacks) != 1 || rep.MissingPacks[0] != lost {
		t.Fatalf("MissingPacks = %v, want [%d]", rep.MissingPacks, lost)
	}
	wantGetErr(t, s2, cs[0].id, ErrMissing)
	crep, err := s2.Check(context.Background(), false)
	if err != nil {
		t.Fatal(err)
	}
	if got := problemsOf(crep, ProblemPackMissing); len(got) != 1 || got[0].Pack != lost {
		t.Fatalf("Check problems = %v", crep.Problems)
	}
}

// Check reads remote packs only with readData, and then finds damage.
func TestCheckRemote(t *testing.T) {
	e, b := newRemoteEnv(t)
	s, _ := e.open()
	cs := fill(t, s, 6, 20)
	if _, err := s.UploadAll(context.Background()); err != nil {
		t.Fatal(err)
	}
	for _, readData := range []bool{false, true} {
		rep, err := s.Check(context.Background(), readData)
		if err != nil || !rep.OK() {
			t.Fatalf("Check(readData=%v) = %v, %v", readData, rep.Problems, err)
		}
		if rep.Chunks != uint64(len(cs)) {
			t.Fatalf("Check(readData=%v) counted %d chunks, want %d", readData, rep.Chunks, len(cs))
		}
	}
	loc := stat(t, s, cs[3].id).Location
	patchFile(t, filepath.Join(b.Dir, filepath.FromSlash(PackObjectName(loc.Pack))), loc.Offset+RecordHeaderSize+10, []byte{0xde, 0xad})
	rep, err := s.Check(context.Background(), true)
	if err != nil {
		t.Fatal(err)
	}
	if len(problemsOf(rep, ProblemCorruptRegion)) == 0 {
		t.Fatalf("Check --read-data missed a damaged remote record: %v", rep.Problems)
	}
}

// Repack and RemovePack work on remote packs and delete their objects.
func TestRepackRemote(t *testing.T) {
	e, b := newRemoteEnv(t)
	s, _ := e.open()
	cs := fill(t, s, 7, 20)
	if _, err := s.UploadAll(context.Background()); err != nil {
		t.Fatal(err)
	}
	num := stat(t, s, cs[0].id).Pack
	drop := cs[0]
	if _, err := s.Repack(context.Background(), num, func(id ID) bool { return id != drop.id }); err != nil {
		t.Fatalf("Repack of remote pack %d: %v", num, err)
	}
	if _, err := b.Stat(context.Background(), num); !errors.Is(err, ErrNoObject) {
		t.Fatalf("object of repacked pack %d still there: %v", num, err)
	}
	wantGetErr(t, s, drop.id, ErrNotFound)
	for _, c := range cs[1:] {
		wantChunk(t, s, c)
	}
	rep, err := s.Check(context.Background(), true)
	if err != nil || !rep.OK() {
		t.Fatalf("Check after repack: %v, %v", rep.Problems, err)
	}
}

// A lost database is rebuilt from the backend's packs, which stay remote.
func TestRebuildIndexFromBackend(t *testing.T) {
	e, _ := newRemoteEnv(t)
	s, _ := e.open()
	cs := fill(t, s, 8, 20)
	if _, err := s.UploadAll(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	e.freshDB("db2")
	s2, rep := e.open()
	if !rep.NeedsRebuild {
		t.Fatalf("a fresh database over remote packs does not ask for a rebuild: %+v", rep)
	}
	rrep, err := s2.RebuildIndex(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if rrep.Indexed != uint64(len(cs)) {
		t.Fatalf("rebuild indexed %d chunks, want %d", rrep.Indexed, len(cs))
	}
	if _, local := remotePacks(t, s2); local != 0 {
		t.Fatalf("%d packs rebuilt as local although only the backend holds them", local)
	}
	for _, c := range cs {
		wantChunk(t, s2, c)
	}
}

// A store whose packs are remote refuses to open without its backend.
func TestOpenWithoutBackendRefused(t *testing.T) {
	e, _ := newRemoteEnv(t)
	s, _ := e.open()
	fill(t, s, 9, 10)
	if _, err := s.UploadAll(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	opts := e.opts
	opts.Backend = nil
	if _, _, err := Open(context.Background(), e.dir, e.db, opts); !errors.Is(err, ErrBackendRequired) {
		t.Fatalf("Open without backend = %v, want ErrBackendRequired", err)
	}
}

// A damaged block in the read cache is dropped and read again from the
// backend: the cache keeps no checksums, the record's CRC catches it.
func TestRemoteReadsThroughCache(t *testing.T) {
	b := &flakyBackend{DirBackend: DirBackend{Dir: filepath.Join(t.TempDir(), "bucket")}}
	cacheDir := filepath.Join(t.TempDir(), "cache")
	var fetches atomic.Int64
	cache, err := blockcache.New(blockcache.Options{Dir: cacheDir, MaxBytes: 8 << 20, BlockSize: 4 << 10},
		func(ctx context.Context, key uint64, p []byte, off int64) (int, error) {
			fetches.Add(1)
			return b.ReadAt(ctx, key, p, off)
		})
	if err != nil {
		t.Fatal(err)
	}
	e := newEnv(t, Options{PackSize: 16 << 10, MaxChunkSize: 64 << 10, Backend: b, RemoteCache: cache})
	s, _ := e.open()
	cs := fill(t, s, 10, 12)
	if _, err := s.UploadAll(context.Background()); err != nil {
		t.Fatal(err)
	}
	for _, c := range cs {
		wantChunk(t, s, c)
	}
	cold := fetches.Load()
	if cold == 0 {
		t.Fatal("reads of remote packs made no fetch")
	}
	for _, c := range cs {
		wantChunk(t, s, c)
	}
	if warm := fetches.Load() - cold; warm != 0 {
		t.Fatalf("second read of cached chunks made %d fetches", warm)
	}
	// Flip one byte in the middle of every cached block.
	err = filepath.WalkDir(cacheDir, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, err := os.ReadFile(p)
		if err != nil || len(data) == 0 {
			return err
		}
		data[len(data)/2] ^= 0xff
		return os.WriteFile(p, data, 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range cs {
		wantChunk(t, s, c)
	}
	if fetches.Load() == cold {
		t.Fatal("damaged cache blocks were served without a new fetch")
	}
}

// DownloadAll brings every pack back; the store then opens without its
// backend, and the backend holds no pack.
func TestDownloadAllReturnsToLocal(t *testing.T) {
	e, b := newRemoteEnv(t)
	s, _ := e.open()
	cs := fill(t, s, 11, 20)
	if _, err := s.UploadAll(context.Background()); err != nil {
		t.Fatal(err)
	}
	rep, err := s.DownloadAll(context.Background())
	if err != nil || rep.Packs == 0 {
		t.Fatalf("DownloadAll = %+v, %v", rep, err)
	}
	if remote, _ := remotePacks(t, s); remote != 0 {
		t.Fatalf("%d packs still remote", remote)
	}
	left := 0
	if err := b.List(context.Background(), func(uint64, int64) error { left++; return nil }); err != nil {
		t.Fatal(err)
	}
	if left != 0 {
		t.Fatalf("%d objects left in the backend", left)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	e.opts.Backend = nil
	s2, orep := e.open()
	if !orep.Clean() {
		t.Fatalf("reopen without backend: %+v", orep)
	}
	for _, c := range cs {
		wantChunk(t, s2, c)
	}
	if crep, err := s2.Check(context.Background(), true); err != nil || !crep.OK() {
		t.Fatalf("Check: %v, %v", crep.Problems, err)
	}
}
