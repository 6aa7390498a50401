package client

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"

	"github.com/quic-s/quics/cas"
	"github.com/quic-s/quics/syncproto"
	"github.com/quic-s/quics/syncproto/syncpb"
)

// deltaServer is the fake server with the delta transactions, built on
// the protocol's own delta functions, recording what travels.
type deltaServer struct {
	*fakeServer

	refuseProposals bool // ProposeDelta answers NotFound: the source is gone
	refuseChunks    bool // delta chunks are refused as ErrHashMismatch

	deltaProposals []*syncproto.ListDelta
	fullProposals  []string
	asked          []cas.ID // IDs of HaveChunks requests
	codecs         map[syncproto.ChunkCodec]int
	listsFrom      []cas.ID // bases of ChunkListFrom
	dictChunks     int      // chunks GetChunksDict sent as deltas
}

func newDeltaServer(t *testing.T) *deltaServer {
	return &deltaServer{fakeServer: newFakeServer(t), codecs: map[syncproto.ChunkCodec]int{}}
}

var _ DeltaRemote = (*deltaServer)(nil)

func (s *deltaServer) Heads(_ context.Context, _ string, after uint64) ([]*syncpb.FileHead, uint64, error) {
	out, seq := s.headsAfter(after)
	return out, seq, nil
}

func (s *deltaServer) HaveChunks(ctx context.Context, root string, ids []cas.ID) ([]bool, error) {
	s.mu.Lock()
	s.asked = append(s.asked, ids...)
	s.mu.Unlock()
	return s.fakeServer.HaveChunks(ctx, root, ids)
}

func (s *deltaServer) Propose(ctx context.Context, req *syncpb.ProposeRequest, chunks []syncproto.ChunkRef) (*syncpb.CommitResponse, error) {
	s.mu.Lock()
	s.fullProposals = append(s.fullProposals, req.GetPath())
	s.mu.Unlock()
	return s.fakeServer.Propose(ctx, req, chunks)
}

func (s *deltaServer) ProposeDelta(ctx context.Context, req *syncpb.ProposeRequest, d *syncproto.ListDelta) (*syncpb.CommitResponse, error) {
	s.mu.Lock()
	source, ok := s.lists[d.SourceHash]
	refuse := s.refuseProposals
	s.deltaProposals = append(s.deltaProposals, d)
	s.mu.Unlock()
	if !ok || refuse {
		return nil, fmt.Errorf("%w: delta source %s", syncproto.ErrNotFound, d.SourceHash.Short())
	}
	list, err := syncproto.ApplyListDelta(source, d, d.Len(), syncproto.DefaultMaxChunkSize)
	if err != nil {
		return nil, err
	}
	for _, c := range list {
		if _, ok := s.chunks[c.ID]; !ok {
			return nil, fmt.Errorf("%w: %s", syncproto.ErrMissingChunks, c.ID.Short())
		}
	}
	return s.fakeServer.Propose(ctx, req, list)
}

func (s *deltaServer) Signatures(_ context.Context, _ string, srcs []syncproto.SignatureSource) ([][]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out [][]byte
	for _, src := range srcs {
		for _, id := range src.IDs {
			data, ok := s.chunks[id]
			if !ok {
				return nil, fmt.Errorf("%w: chunk %s", syncproto.ErrNotFound, id.Short())
			}
			out = append(out, syncproto.Sign(data, src.BlockSize))
		}
	}
	return out, nil
}

func (s *deltaServer) PutChunks(ctx context.Context, root string, chunks []syncproto.Chunk) error {
	var plain []syncproto.Chunk
	for _, c := range chunks {
		s.mu.Lock()
		s.codecs[c.Codec]++
		refuse := s.refuseChunks
		s.mu.Unlock()
		if c.Codec != syncproto.ChunkDelta {
			plain = append(plain, c)
			continue
		}
		if refuse {
			return fmt.Errorf("%w: chunk %s", syncproto.ErrHashMismatch, c.ID.Short())
		}
		ids, err := syncproto.DeltaSources(c)
		if err != nil {
			return err
		}
		s.mu.Lock()
		sources := make([][]byte, len(ids))
		for i, id := range ids {
			sources[i] = s.chunks[id]
		}
		s.mu.Unlock()
		data, err := syncproto.DecodeDelta(c, sources)
		if err != nil {
			return err
		}
		plain = append(plain, syncproto.Chunk{Codec: syncproto.ChunkRaw, ID: c.ID, RawLen: len(data), Data: data})
	}
	return s.fakeServer.PutChunks(ctx, root, plain)
}

func (s *deltaServer) ChunkListFrom(ctx context.Context, root, path string, hash cas.ID, _ string, baseHash cas.ID, _ []syncproto.ChunkRef) (int64, []syncproto.ChunkRef, error) {
	s.mu.Lock()
	s.listsFrom = append(s.listsFrom, baseHash)
	s.mu.Unlock()
	return s.ChunkList(ctx, root, path, hash)
}

func (s *deltaServer) GetChunksDict(ctx context.Context, root string, ids []cas.ID, dicts [][]cas.ID, fn func(syncproto.Chunk) error) error {
	return s.GetChunks(ctx, root, ids, func(c syncproto.Chunk) error {
		i := slices.Index(ids, c.ID)
		if i < 0 || len(dicts[i]) == 0 {
			return fn(c)
		}
		s.mu.Lock()
		sources := make([][]byte, len(dicts[i]))
		for k, d := range dicts[i] {
			sources[k] = s.chunks[d]
		}
		s.mu.Unlock()
		if dc, ok := syncproto.EncodeDeltaFrom(c.ID, c.Data, dicts[i], sources, len(c.Data)); ok {
			s.mu.Lock()
			s.dictChunks++
			s.mu.Unlock()
			return fn(dc)
		}
		return fn(c)
	})
}

// content is what the server holds for path's head.
func (s *deltaServer) content(t *testing.T, path string) []byte {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	h := s.heads[path]
	if h == nil {
		t.Fatalf("no head for %q", path)
	}
	var out []byte
	for _, c := range s.lists[cas.ID(h.GetHash())] {
		out = append(out, s.chunks[c.ID]...)
	}
	return out
}

// deltaSynced syncs a root holding path with content base through a
// deltaServer and forgets what the first sync sent.
func deltaSynced(t *testing.T, files map[string][]byte) (*Engine, *deltaServer, *Home, string) {
	t.Helper()
	h, dir := testRoot(t, testParams)
	srv := newDeltaServer(t)
	eng := NewEngine(h.State(), srv, EngineOptions{Scan: ScanOptions{Now: laterClock}})
	for p, data := range files {
		writeFile(t, dir, p, data)
	}
	if res, err := eng.SyncRoot(context.Background(), "docs"); err != nil || res.FilesUploaded != len(files) {
		t.Fatalf("first sync: %+v, %v", res, err)
	}
	srv.mu.Lock()
	srv.deltaProposals, srv.fullProposals, srv.asked = nil, nil, nil
	clear(srv.codecs)
	srv.mu.Unlock()
	return eng, srv, h, dir
}

func insertAt(b []byte, at int, ins []byte) []byte {
	return slices.Concat(b[:at], ins, b[at:])
}

func TestPushSendsDeltas(t *testing.T) {
	ctx := context.Background()
	base := randomBytes(1, 64<<10)
	eng, srv, h, dir := deltaSynced(t, map[string][]byte{"big.bin": base})
	edited := insertAt(base, 30000, []byte("a small insert"))
	writeFile(t, dir, "big.bin", edited)

	res, err := eng.SyncRoot(ctx, "docs")
	if err != nil || res.FilesUploaded != 1 {
		t.Fatalf("sync: %+v, %v", res, err)
	}
	if !bytes.Equal(srv.content(t, "big.bin"), edited) {
		t.Fatal("the server's content differs from the edit")
	}
	if len(srv.fullProposals) != 0 || len(srv.deltaProposals) != 1 {
		t.Fatalf("%d whole and %d delta proposals, want one delta", len(srv.fullProposals), len(srv.deltaProposals))
	}
	rec, err := h.State().File(ctx, "docs", "big.bin")
	if err != nil {
		t.Fatal(err)
	}
	d := srv.deltaProposals[0]
	if len(d.New) > 3 || len(d.New) == 0 {
		t.Errorf("the delta carries %d of %d entries", len(d.New), len(rec.Chunks))
	}
	// Only the new chunks were asked about, and they traveled as deltas.
	if len(srv.asked) != len(d.New) {
		t.Errorf("asked about %d chunks, %d are new", len(srv.asked), len(d.New))
	}
	if srv.codecs[syncproto.ChunkDelta] == 0 {
		t.Errorf("no chunk traveled as a delta: %v", srv.codecs)
	}
	// Once accepted, the base is the local content: no list kept.
	if base, err := h.State().BaseChunks(ctx, "docs", &rec); err != nil || !slices.Equal(base, rec.Chunks) {
		t.Fatalf("base after the push: %v", err)
	}
}

func TestPushDeltaFallbacks(t *testing.T) {
	ctx := context.Background()
	base := randomBytes(2, 40<<10)
	eng, srv, _, dir := deltaSynced(t, map[string][]byte{"f.bin": base})
	srv.refuseProposals, srv.refuseChunks = true, true
	edited := insertAt(base, 20000, []byte("edit"))
	writeFile(t, dir, "f.bin", edited)

	if res, err := eng.SyncRoot(ctx, "docs"); err != nil || res.FilesUploaded != 1 || res.Skipped != 0 {
		t.Fatalf("sync: %+v, %v", res, err)
	}
	if !bytes.Equal(srv.content(t, "f.bin"), edited) {
		t.Fatal("the server's content differs from the edit")
	}
	// The refused delta was proposed again whole, and the refused delta
	// chunks sent again whole.
	if len(srv.deltaProposals) != 1 || len(srv.fullProposals) != 1 {
		t.Errorf("%d delta and %d whole proposals, want one each", len(srv.deltaProposals), len(srv.fullProposals))
	}
	if srv.codecs[syncproto.ChunkDelta] == 0 || srv.codecs[syncproto.ChunkRaw]+srv.codecs[syncproto.ChunkZstd] == 0 {
		t.Errorf("codecs sent %v, want deltas then whole chunks", srv.codecs)
	}
}

func TestPushRenameAndCopy(t *testing.T) {
	// With pages of one file, the deletion of a.bin is pushed before its
	// new name, renamed.bin, is looked at.
	for _, page := range []int{pushPageFiles, 1} {
		t.Run(fmt.Sprintf("page of %d", page), func(t *testing.T) {
			defer func(n int) { pushPageFiles = n }(pushPageFiles)
			pushPageFiles = page
			testPushRenameAndCopy(t)
		})
	}
}

func testPushRenameAndCopy(t *testing.T) {
	ctx := context.Background()
	a, b := randomBytes(3, 20<<10), randomBytes(4, 30<<10)
	eng, srv, _, dir := deltaSynced(t, map[string][]byte{"a.bin": a, "sub/b.bin": b})
	if err := os.Rename(filepath.Join(dir, "a.bin"), filepath.Join(dir, "renamed.bin")); err != nil {
		t.Fatal(err)
	}
	writeFile(t, dir, "copies/b.bin", b) // a copy of a file that is not changing

	res, err := eng.SyncRoot(ctx, "docs")
	if err != nil || res.FilesUploaded != 2 || res.FilesDeleted != 1 || res.ChunksSent != 0 {
		t.Fatalf("sync: %+v, %v", res, err)
	}
	if len(srv.asked) != 0 {
		t.Errorf("asked the server about %d chunks of known content", len(srv.asked))
	}
	sources := map[string]bool{}
	for _, d := range srv.deltaProposals {
		sources[d.SourcePath] = true
		if len(d.New) != 0 {
			t.Errorf("a delta from %q carries %d entries", d.SourcePath, len(d.New))
		}
	}
	if !sources["a.bin"] || !sources["sub/b.bin"] {
		t.Errorf("delta sources %v, want a.bin and sub/b.bin", sources)
	}
	if !bytes.Equal(srv.content(t, "renamed.bin"), a) || !bytes.Equal(srv.content(t, "copies/b.bin"), b) {
		t.Fatal("the server's content differs")
	}
}

func TestPullUsesLocalBase(t *testing.T) {
	ctx := context.Background()
	base := randomBytes(5, 50<<10)
	eng, srv, h, dir := deltaSynced(t, map[string][]byte{"doc.bin": base})
	cursor := func() uint64 {
		r, err := h.State().Root(ctx, "docs")
		if err != nil {
			t.Fatal(err)
		}
		return r.Cursor
	}
	before := cursor()
	next := insertAt(base, 25000, []byte("someone else's edit"))
	srv.setHead("doc.bin", next)

	res, err := eng.SyncRoot(ctx, "docs")
	if err != nil || res.FilesDownloaded != 1 {
		t.Fatalf("sync: %+v, %v (cursor %d)", res, err, before)
	}
	got, _ := readLocalFile(t, dir, "doc.bin")
	if !bytes.Equal(got, next) {
		t.Fatal("the pulled file differs")
	}
	if len(srv.listsFrom) != 1 || srv.listsFrom[0] != cas.Sum(base) {
		t.Errorf("chunk lists asked from bases %v, want the local version", srv.listsFrom)
	}
	if srv.dictChunks == 0 {
		t.Error("no changed chunk came as a delta against the local copy")
	}
}

func TestBaseChunksKept(t *testing.T) {
	ctx := context.Background()
	base := randomBytes(6, 20<<10)
	_, _, h, dir := deltaSynced(t, map[string][]byte{"f.bin": base})
	st := h.State()
	synced, err := st.File(ctx, "docs", "f.bin")
	if err != nil {
		t.Fatal(err)
	}
	sc := scanner(h, nil, laterClock)

	// An edit keeps the base's list beside the new one.
	writeFile(t, dir, "f.bin", insertAt(base, 100, []byte("x")))
	mustScan(t, sc)
	rec, err := st.File(ctx, "docs", "f.bin")
	if err != nil {
		t.Fatal(err)
	}
	if got, err := st.BaseChunks(ctx, "docs", &rec); err != nil || !slices.Equal(got, synced.Chunks) || slices.Equal(rec.Chunks, synced.Chunks) {
		t.Fatalf("base list after an edit: %v", err)
	}
	// A second edit before any push keeps the same base list.
	writeFile(t, dir, "f.bin", insertAt(base, 5000, []byte("y")))
	mustScan(t, sc)
	rec, _ = st.File(ctx, "docs", "f.bin")
	if got, _ := st.BaseChunks(ctx, "docs", &rec); !slices.Equal(got, synced.Chunks) {
		t.Fatal("the second edit lost the base list")
	}
	// A base that moved elsewhere makes the kept list unusable.
	moved := rec
	moved.BaseHash = cas.Sum([]byte("another version"))
	if got, _ := st.BaseChunks(ctx, "docs", &moved); got != nil {
		t.Fatal("a list kept for another base was returned")
	}
	// Back to the base content: the kept list goes.
	writeFile(t, dir, "f.bin", base)
	mustScan(t, sc)
	if !baseGone(t, st, "f.bin") {
		t.Fatal("the base list is still kept")
	}
	// An edit the server accepts becomes the base: the kept list goes, the
	// file's own list stays.
	writeFile(t, dir, "f.bin", insertAt(base, 300, []byte("z")))
	mustScan(t, sc)
	rec, _ = st.File(ctx, "docs", "f.bin")
	if baseGone(t, st, "f.bin") {
		t.Fatal("no base list kept for the edit")
	}
	if err := st.Accept(ctx, "docs", "f.bin", rec.LastUpdate, synced.BaseSeq+1, rec.Hash); err != nil {
		t.Fatal(err)
	}
	if !baseGone(t, st, "f.bin") {
		t.Fatal("the base list is still kept after the edit was accepted")
	}
	if got, _ := st.File(ctx, "docs", "f.bin"); !slices.Equal(got.Chunks, rec.Chunks) || got.Pending {
		t.Fatal("accepting the edit changed its chunk list or left it pending")
	}
}

// baseGone reports whether no base chunk list is kept for path.
func baseGone(t *testing.T, st *State, path string) bool {
	t.Helper()
	err := st.view(context.Background(), func(txn *badger.Txn) error {
		_, err := txn.Get(pathKey(prefixBase, "docs", path))
		return err
	})
	if err != nil && !errors.Is(err, badger.ErrKeyNotFound) {
		t.Fatal(err)
	}
	return err != nil
}

func TestPushSmallFileDeltaChunk(t *testing.T) {
	ctx := context.Background()
	base := randomBytes(7, 2000) // one or two chunks
	eng, srv, _, dir := deltaSynced(t, map[string][]byte{"small.txt": base})
	edited := slices.Clone(base)
	copy(edited[1000:], "sixty-four bytes of an edit in the middle of a small text file!!")
	writeFile(t, dir, "small.txt", edited)

	if res, err := eng.SyncRoot(ctx, "docs"); err != nil || res.FilesUploaded != 1 {
		t.Fatalf("sync: %+v, %v", res, err)
	}
	if !bytes.Equal(srv.content(t, "small.txt"), edited) {
		t.Fatal("the server's content differs from the edit")
	}
	// A list this short travels whole, but the changed chunk still goes
	// as a delta against the one it replaced.
	if len(srv.fullProposals) != 1 || len(srv.deltaProposals) != 0 {
		t.Errorf("%d whole and %d delta proposals, want the whole list", len(srv.fullProposals), len(srv.deltaProposals))
	}
	if srv.codecs[syncproto.ChunkDelta] == 0 {
		t.Errorf("no chunk traveled as a delta: %v", srv.codecs)
	}
}

// A pull of a copy of a local file, and of an edit of one, reads the
// shared chunks from the local files, also in a root too large to index
// whole (a budget of one chunk).
func TestPullReusesLocalChunks(t *testing.T) {
	for _, budget := range []int{reuseBudget, 1} {
		t.Run(fmt.Sprintf("budget %d", budget), func(t *testing.T) {
			defer func(n int) { reuseBudget = n }(reuseBudget)
			reuseBudget = budget
			ctx := context.Background()
			a, b := randomBytes(21, 40<<10), randomBytes(22, 40<<10)
			eng, srv, _, dir := deltaSynced(t, map[string][]byte{"a.bin": a, "b.bin": b})
			srv.setHead("copies/a.bin", a)
			edited := insertAt(b, 20000, []byte("an edit made elsewhere"))
			srv.setHead("b.bin", edited)

			res, err := eng.SyncRoot(ctx, "docs")
			if err != nil || res.FilesDownloaded != 2 {
				t.Fatalf("sync: %+v, %v", res, err)
			}
			for path, want := range map[string][]byte{"copies/a.bin": a, "b.bin": edited} {
				if got, _ := readLocalFile(t, dir, path); !bytes.Equal(got, want) {
					t.Fatalf("%s differs from the server's", path)
				}
			}
			// The copy costs no chunk; the edit those around the insert.
			if res.ChunksReused == 0 || res.ChunksFetched > 3 {
				t.Errorf("chunks reused %d, fetched %d; want the copy's and the edit's unchanged ones reused", res.ChunksReused, res.ChunksFetched)
			}
		})
	}
}

func TestSyncPaths(t *testing.T) {
	ctx := context.Background()
	eng, _, h, dir := deltaSynced(t, map[string][]byte{"a.bin": randomBytes(31, 5000), "b.bin": randomBytes(32, 5000)})
	lastSync := func() time.Time {
		r, err := h.State().Root(ctx, "docs")
		if err != nil {
			t.Fatal(err)
		}
		return r.LastSync
	}
	before := lastSync()
	writeFile(t, dir, "a.bin", randomBytes(33, 6000))
	writeFile(t, dir, "b.bin", randomBytes(34, 6000))
	res, err := eng.SyncPaths(ctx, "docs", []string{"a.bin"})
	if err != nil || res.FilesUploaded != 1 {
		t.Fatalf("pass over a.bin: %+v, %v; want a.bin uploaded", res, err)
	}
	if !lastSync().Equal(before) {
		t.Error("a pass over some paths moved the root's last full sync")
	}
	res, err = eng.SyncRoot(ctx, "docs")
	if err != nil || res.FilesUploaded != 1 {
		t.Fatalf("full pass: %+v, %v; want b.bin uploaded", res, err)
	}
}

// A pass reports the time its scan took (qic run spaces its full passes
// by it).
func TestPassScanTime(t *testing.T) {
	h, dir := testRoot(t, testParams)
	writeFile(t, dir, "f", []byte("content"))
	var ticks atomic.Int64
	clock := func() time.Time { return time.Unix(0, 0).Add(time.Duration(ticks.Add(1)) * time.Second) }
	eng := NewEngine(h.State(), newDeltaServer(t), EngineOptions{Now: clock, Scan: ScanOptions{Now: laterClock}})
	res, err := eng.SyncRoot(context.Background(), "docs")
	if err != nil {
		t.Fatal(err)
	}
	// Each reading of the clock moves it a second: the scan saw two.
	if res.ScanMS != 1000 || res.DurationMS <= res.ScanMS {
		t.Errorf("scan %d ms of %d ms, want 1000 of more", res.ScanMS, res.DurationMS)
	}
	if res, err := eng.PullRoot(context.Background(), "docs"); err != nil || res.ScanMS != 0 {
		t.Errorf("a pull without a scan: scan %d ms, %v", res.ScanMS, err)
	}
}
