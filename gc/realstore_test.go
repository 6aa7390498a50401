package gc

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	"github.com/dgraph-io/badger/v4"
	"github.com/google/uuid"
	"github.com/zeebo/blake3"

	"github.com/quic-s/quics/cas"
	"github.com/quic-s/quics/internal/kv"
	"github.com/quic-s/quics/internal/secret"
	"github.com/quic-s/quics/manifest"
)

// realEnv is a chunk store and a manifest on one badger database, as the
// server runs them.
type realEnv struct {
	dir   string
	kv    *badger.DB
	store *cas.Store
	db    *manifest.DB
	owner uuid.UUID
}

var cheapParams = secret.Params{Time: 1, MemoryKiB: 64, Threads: 1, SaltLen: 16, KeyLen: 32}

func newRealEnv(t testing.TB, packSize int64) *realEnv {
	t.Helper()
	ctx := context.Background()
	dir := t.TempDir()
	db, err := kv.Open(filepath.Join(dir, "db"), kv.Options{SmallFootprint: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	store, _, err := cas.Open(ctx, filepath.Join(dir, "cas"), db, cas.Options{PackSize: packSize})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = store.Close() })
	m, err := manifest.Open(ctx, db, manifest.Options{PasswordParams: cheapParams, TokenParams: cheapParams})
	if err != nil {
		t.Fatal(err)
	}
	e := &realEnv{dir: dir, kv: db, store: store, db: m, owner: uuid.New()}
	if _, err := m.RegisterClient(ctx, manifest.NewClient{ID: e.owner, Name: "owner", Token: "token"}); err != nil {
		t.Fatal(err)
	}
	return e
}

func (e *realEnv) root(t testing.TB, name string) manifest.Root {
	t.Helper()
	r, err := e.db.CreateRoot(context.Background(), manifest.NewRoot{Name: name, Owner: e.owner, Password: "pw",
		Chunking: manifest.ChunkParams{Min: 1 << 10, Avg: 2 << 10, Max: 8 << 10}})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// errMissingChunks is what the commit check returns, as the server's does.
var errMissingChunks = errors.New("missing chunks")

// file is content cut into chunks.
type file struct {
	hash   cas.ID
	chunks [][]byte
}

func (f file) size() uint64 {
	var n uint64
	for _, c := range f.chunks {
		n += uint64(len(c))
	}
	return n
}

func newFile(chunks ...[]byte) file {
	h := blake3.New()
	for _, c := range chunks {
		_, _ = h.Write(c)
	}
	var f file
	h.Sum(f.hash[:0])
	f.chunks = chunks
	return f
}

func randomBytes(rng *rand.Rand, n int) []byte {
	b := make([]byte, n)
	for i := 0; i < n; i += 8 {
		v := rng.Uint64()
		for j := 0; j < 8 && i+j < n; j++ {
			b[i+j] = byte(v >> (8 * j))
		}
	}
	return b
}

// upload stores f's chunks (pinning them first, as the server does) and
// commits f on top of base the way the server does: sync, then commit with
// a check that every chunk is still in the index. A chunk gone by then is
// uploaded again.
func (e *realEnv) upload(ctx context.Context, pins *fakePins, root manifest.RootID, path string, base *manifest.Version, f file) (manifest.Version, int, error) {
	ids := make([]cas.ID, len(f.chunks))
	list := make([]manifest.Chunk, len(f.chunks))
	for i, c := range f.chunks {
		ids[i] = cas.Sum(c)
		list[i] = manifest.Chunk{ID: ids[i], Size: uint32(len(c))}
	}
	if pins != nil {
		for _, id := range ids {
			pins.pin(id)
		}
		defer func() {
			for _, id := range ids {
				pins.unpin(id)
			}
		}()
	}
	for attempt := 1; ; attempt++ {
		have, err := e.store.Has(ctx, ids)
		if err != nil {
			return manifest.Version{}, attempt, err
		}
		for i, c := range f.chunks {
			if !have[i] {
				if _, err := e.store.Put(ctx, ids[i], c); err != nil {
					return manifest.Version{}, attempt, err
				}
			}
		}
		if err := e.store.Sync(ctx); err != nil {
			return manifest.Version{}, attempt, err
		}
		p := manifest.Proposal{Root: root, Path: path, Hash: f.hash, Size: f.size(), Mode: 0o644, Client: e.owner, Chunks: list,
			Check: func(txn *badger.Txn) error {
				for _, id := range ids {
					ok, err := e.store.HasTxn(txn, id)
					if err != nil {
						return err
					}
					if !ok {
						return fmt.Errorf("%w: %s", errMissingChunks, id.Short())
					}
				}
				return nil
			}}
		if base != nil {
			p.BaseSeq, p.BaseHash = base.Seq, base.Hash
		}
		v, err := e.db.Commit(ctx, p)
		if errors.Is(err, errMissingChunks) && attempt < 5 {
			continue
		}
		return v, attempt, err
	}
}

// readVersion reads a version's content back through its chunk list and
// checks it hashes to the version's hash.
func (e *realEnv) readVersion(ctx context.Context, v manifest.Version) error {
	if v.Deleted || v.Size == 0 {
		return nil
	}
	list, err := e.db.ChunkList(ctx, v.Hash)
	if err != nil {
		return err
	}
	h := blake3.New()
	for _, c := range list {
		data, err := e.store.Get(ctx, c.ID)
		if err != nil {
			return fmt.Errorf("chunk %s: %w", c.ID.Short(), err)
		}
		_, _ = h.Write(data)
	}
	var got cas.ID
	h.Sum(got[:0])
	if got != v.Hash {
		return fmt.Errorf("content hashes to %s, version says %s", got.Short(), v.Hash.Short())
	}
	return nil
}

// allVersions lists every version of every file of every root.
func (e *realEnv) allVersions(t testing.TB) []manifest.Version {
	t.Helper()
	var out []manifest.Version
	_, err := e.db.ForEachRef(context.Background(), func(r manifest.Ref) error {
		if !r.Candidate {
			v, err := e.db.Version(context.Background(), r.Root, r.Path, r.Seq)
			if err != nil {
				return err
			}
			out = append(out, v)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// packBytesOnDisk adds up the sizes of the pack files.
func (e *realEnv) packBytesOnDisk(t testing.TB) int64 {
	t.Helper()
	var n int64
	err := filepath.WalkDir(filepath.Join(e.dir, "cas", "packs"), func(_ string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		n += info.Size()
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func mustCheck(t testing.TB, e *realEnv, readData bool) CheckReport {
	t.Helper()
	rep, err := Check(context.Background(), e.store, e.db, readData)
	if err != nil {
		t.Fatalf("Check: %v", err)
	}
	return rep
}

// After old versions are dropped and a root is removed, a collection with
// margin 0 frees at least 95 % of the pack bytes nothing references, and
// every version left reads back whole.
func TestRealStoreFreesUnreferenced(t *testing.T) {
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(1, 2))
	e := newRealEnv(t, 64<<10)
	keep, drop := e.root(t, "keep"), e.root(t, "drop")
	shared := randomBytes(rng, 4<<10)
	chunks := func(n int) [][]byte {
		var cs [][]byte
		for range n {
			cs = append(cs, randomBytes(rng, 4<<10))
		}
		return cs
	}
	const files = 10
	put := func(root manifest.RootID, path string, base *manifest.Version, f file) manifest.Version {
		v, _, err := e.upload(ctx, nil, root, path, base, f)
		if err != nil {
			t.Fatalf("upload %s: %v", path, err)
		}
		return v
	}
	var v1s []manifest.Version
	var v1Files []file
	for i := range files {
		f := newFile(append(chunks(6), shared)...)
		v1Files = append(v1Files, f)
		v1s = append(v1s, put(keep.ID, fmt.Sprintf("k%d", i), nil, f))
	}
	for i := range files {
		put(drop.ID, fmt.Sprintf("d%d", i), nil, newFile(append(chunks(6), shared)...))
	}
	for i := range files {
		// The new version keeps the first chunk and the shared one.
		cs := append([][]byte{v1Files[i].chunks[0]}, chunks(5)...)
		put(keep.ID, fmt.Sprintf("k%d", i), &v1s[i], newFile(append(cs, shared)...))
	}
	for i, v := range v1s {
		if n, err := e.db.DropVersions(ctx, keep.ID, fmt.Sprintf("k%d", i), []uint64{v.Seq}); err != nil || n != 1 {
			t.Fatalf("DropVersions: %d, %v", n, err)
		}
	}
	if err := e.db.RemoveRoot(ctx, drop.ID); err != nil {
		t.Fatal(err)
	}

	// What nothing references any more, in record bytes.
	live := cas.IDSet{}
	remaining := e.allVersions(t)
	for _, v := range remaining {
		list, err := e.db.ChunkList(ctx, v.Hash)
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range list {
			live.Insert(c.ID)
		}
	}
	var unreferenced int64
	err := e.store.ForEachChunk(ctx, func(id cas.ID, loc cas.Location) error {
		if !live.Has(id) {
			unreferenced += recordBytes(loc)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	diskBefore := e.packBytesOnDisk(t)

	rep, err := Run(ctx, e.store, e.db, nil, Options{Margin: 0, RepackThreshold: DefaultRepackThreshold, Seed: testSeed})
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	diskAfter := e.packBytesOnDisk(t)
	freed := diskBefore - diskAfter
	t.Logf("unreferenced %d bytes, freed %d on disk (%.1f %%); report: %+v", unreferenced, freed, 100*float64(freed)/float64(unreferenced), rep)
	if float64(freed) < 0.95*float64(unreferenced) {
		t.Errorf("freed %d of %d unreferenced bytes, want at least 95 %%", freed, unreferenced)
	}
	// Rewritten packs' live records go to new packs, whose headers are
	// the only bytes the report does not count.
	if d := rep.BytesFreed - freed; d < 0 || d > int64(rep.PacksRewritten)*cas.PackHeaderSize {
		t.Errorf("report says %d bytes freed, the disk says %d", rep.BytesFreed, freed)
	}
	if rep.PackBytesBefore != diskBefore || rep.PackBytesAfter != diskAfter {
		t.Errorf("report pack bytes %d -> %d, disk %d -> %d", rep.PackBytesBefore, rep.PackBytesAfter, diskBefore, diskAfter)
	}
	if rep.ChunksMarked != uint64(len(live)) || rep.PacksDeleted == 0 || rep.PacksRewritten == 0 {
		t.Errorf("report: %d marked (want %d), %d packs deleted, %d rewritten", rep.ChunksMarked, len(live), rep.PacksDeleted, rep.PacksRewritten)
	}
	if len(rep.Roots) != 1 || rep.Roots[0].Name != "keep" || rep.Roots[0].Files != files || rep.Roots[0].Versions != files {
		t.Errorf("roots = %+v", rep.Roots)
	}
	for _, v := range remaining {
		if err := e.readVersion(ctx, v); err != nil {
			t.Fatalf("version %d after gc: %v", v.Seq, err)
		}
	}
	if cr := mustCheck(t, e, true); !cr.OK || cr.OrphanChunks != 0 {
		t.Fatalf("check after gc: ok=%v orphans=%d problems=%v", cr.OK, cr.OrphanChunks, cr.Problems)
	}
}

// A dry run on a real store reports what the run then does, and changes
// nothing on disk.
func TestRealStoreDryRun(t *testing.T) {
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(3, 4))
	e := newRealEnv(t, 32<<10)
	r := e.root(t, "r")
	var base *manifest.Version
	for range 6 {
		f := newFile(randomBytes(rng, 6<<10), randomBytes(rng, 6<<10))
		v, _, err := e.upload(ctx, nil, r.ID, "f", base, f)
		if err != nil {
			t.Fatal(err)
		}
		base = &v
	}
	var old []uint64
	for s := uint64(1); s < base.Seq; s++ {
		old = append(old, s)
	}
	if _, err := e.db.DropVersions(ctx, r.ID, "f", old); err != nil {
		t.Fatal(err)
	}
	disk := e.packBytesOnDisk(t)
	stats, _ := e.store.Stats(ctx)
	dry, err := Run(ctx, e.store, e.db, nil, Options{RepackThreshold: 0.5, DryRun: true, Seed: testSeed})
	if err != nil {
		t.Fatal(err)
	}
	if after, _ := e.store.Stats(ctx); after != stats || e.packBytesOnDisk(t) != disk {
		t.Fatalf("dry run changed the store: %+v -> %+v", stats, after)
	}
	done, err := Run(ctx, e.store, e.db, nil, Options{RepackThreshold: 0.5, Seed: testSeed})
	if err != nil {
		t.Fatal(err)
	}
	if dry.ChunksDeleted != done.ChunksDeleted || dry.BytesDeleted != done.BytesDeleted || dry.BytesFreed != done.BytesFreed ||
		dry.PacksDeleted != done.PacksDeleted || dry.PacksRewritten != done.PacksRewritten || dry.ChunksDeleted == 0 {
		t.Fatalf("dry run %+v\nreal run %+v", dry, done)
	}
}

// Check finds what is wrong and names the versions affected; orphans are
// counted, not problems; Repair rebuilds the index and lists only what is
// truly lost.
func TestCheckAndRepair(t *testing.T) {
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(5, 6))
	e := newRealEnv(t, 32<<10)
	r := e.root(t, "docs")
	a := newFile(randomBytes(rng, 3000), randomBytes(rng, 3000))
	b := newFile(randomBytes(rng, 3000))
	va, _, err := e.upload(ctx, nil, r.ID, "a", nil, a)
	if err != nil {
		t.Fatal(err)
	}
	vb, _, err := e.upload(ctx, nil, r.ID, "b", nil, b)
	if err != nil {
		t.Fatal(err)
	}
	orphan := randomBytes(rng, 1000)
	if _, err := e.store.Put(ctx, cas.Sum(orphan), orphan); err != nil {
		t.Fatal(err)
	}
	if err := e.store.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	rep := mustCheck(t, e, true)
	if !rep.OK || rep.OrphanChunks != 1 || rep.Versions != 2 || rep.Contents != 2 || rep.ChunksReferenced != 3 || rep.ChunksIndexed != 4 {
		t.Fatalf("clean store: %+v", rep)
	}

	// An index entry lost: the chunk is missing for version a.
	lost := cas.Sum(a.chunks[1])
	if err := e.store.DeleteChunks(ctx, []cas.ID{lost}); err != nil {
		t.Fatal(err)
	}
	rep = mustCheck(t, e, false)
	if rep.OK || len(rep.Problems) != 1 {
		t.Fatalf("missing entry: %+v", rep)
	}
	p := rep.Problems[0]
	if p.Kind != ProblemMissingChunk || p.Root != "docs" || p.Path != "a" || p.Seq != va.Seq || p.ChunkCount != 1 || p.Chunks[0] != lost.String() {
		t.Fatalf("problem = %+v (%s)", p, p)
	}
	// The record is still in its pack: a repair brings it back.
	rep, err = Repair(ctx, e.store, e.db, true)
	if err != nil {
		t.Fatal(err)
	}
	if !rep.OK || rep.Repair == nil || len(rep.Repair.Lost) != 0 || rep.Repair.Indexed != 4 {
		t.Fatalf("repair of a lost entry: %+v, %+v", rep, rep.Repair)
	}

	// A damaged record: the store's check and the version both say so,
	// and a repair cannot bring it back.
	info, err := e.store.Stat(ctx, cas.Sum(b.chunks[0]))
	if err != nil {
		t.Fatal(err)
	}
	packFile := filepath.Join(e.dir, "cas", "packs", fmt.Sprintf("%02x", byte(info.Pack)), fmt.Sprintf("%016x.pack", info.Pack))
	f, err := os.OpenFile(packFile, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt([]byte{0xde, 0xad}, info.Offset+cas.RecordHeaderSize+10); err != nil {
		t.Fatal(err)
	}
	_ = f.Close()
	rep = mustCheck(t, e, true)
	kinds := map[string]int{}
	for _, p := range rep.Problems {
		kinds[p.Kind]++
		if p.Kind == ProblemDamagedChunk && (p.Path != "b" || p.Seq != vb.Seq) {
			t.Errorf("damaged chunk blamed on %s", p)
		}
	}
	if rep.OK || kinds[ProblemDamagedChunk] != 1 || kinds[cas.ProblemBadEntry.String()] != 1 {
		t.Fatalf("damaged record: %v", rep.Problems)
	}
	rep, err = Repair(ctx, e.store, e.db, true)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Repair == nil || len(rep.Repair.Lost) != 1 || rep.Repair.Lost[0].Path != "b" || rep.Repair.Lost[0].Kind != ProblemMissingChunk {
		t.Fatalf("repair of a damaged record: lost %+v, problems %v", rep.Repair, rep.Problems)
	}
	if err := e.readVersion(ctx, va); err != nil {
		t.Fatalf("version a after repair: %v", err)
	}
}
