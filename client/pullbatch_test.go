package client

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/quic-s/quics/cas"
	"github.com/quic-s/quics/syncproto"
	"github.com/quic-s/quics/syncproto/syncpb"
)

// listBatchServer is the fake server with heads to pull and chunk list
// batches, each item answered by the fake's ChunkList unless a rule
// answers it first.
type listBatchServer struct {
	*fakeServer

	unsupported bool                    // every batch is ErrUnsupported
	itemErr     func(path string) error // an error for an item, or nil
	swap        map[string]cas.ID       // answer the list of this hash instead
	during      func()                  // runs inside each batch
	badChunk    cas.ID                  // GetChunks answers Unavailable for it
	batches     [][]string              // paths of each batch
	singles     []string                // paths asked one by one
}

var _ ListBatchRemote = (*listBatchServer)(nil)

func newListBatchEngine(t *testing.T) (*Engine, *listBatchServer, *Home, string, *warnings) {
	h, dir := testRoot(t, testParams)
	srv := &listBatchServer{fakeServer: newFakeServer(t), swap: map[string]cas.ID{}}
	w := &warnings{}
	eng := NewEngine(h.State(), srv, EngineOptions{Scan: ScanOptions{Now: laterClock}, Warn: w.add})
	return eng, srv, h, dir, w
}

func (s *listBatchServer) Heads(_ context.Context, _ string, after uint64) ([]*syncpb.FileHead, uint64, error) {
	out, seq := s.headsAfter(after)
	return out, seq, nil
}

// pagingServer is the list-batch fake that also answers heads a page at a
// time, in seq order, as the server does.
type pagingServer struct {
	*listBatchServer
	pages  []int    // heads per page asked
	afters []uint64 // the after_seq of each page asked
	failAt uint64   // a page asked after this seq fails (0: none)
}

var _ HeadsPager = (*pagingServer)(nil)

func (s *pagingServer) HeadsPage(_ context.Context, _ string, after uint64, limit int) ([]*syncpb.FileHead, uint64, bool, error) {
	s.mu.Lock()
	s.afters = append(s.afters, after)
	failAt := s.failAt
	s.mu.Unlock()
	if failAt > 0 && after >= failAt {
		return nil, 0, false, fmt.Errorf("%w: the connection dropped", syncproto.ErrConnClosed)
	}
	all, seq := s.headsAfter(after)
	slices.SortFunc(all, func(x, y *syncpb.FileHead) int { return cmp.Compare(x.GetSeq(), y.GetSeq()) })
	more := limit > 0 && len(all) > limit
	if more {
		all = all[:limit]
		seq = all[len(all)-1].GetSeq()
	}
	s.mu.Lock()
	s.pages = append(s.pages, len(all))
	s.mu.Unlock()
	return all, seq, more, nil
}

func (s *listBatchServer) ChunkList(ctx context.Context, root, path string, hash cas.ID) (int64, []syncproto.ChunkRef, error) {
	s.mu.Lock()
	s.singles = append(s.singles, path)
	s.mu.Unlock()
	return s.fakeServer.ChunkList(ctx, root, path, hash)
}

func (s *listBatchServer) ChunkListBatch(ctx context.Context, root string, items []syncproto.ChunkListItem) ([]syncproto.ChunkListResult, error) {
	s.mu.Lock()
	var paths []string
	for _, it := range items {
		paths = append(paths, it.Path)
	}
	s.batches = append(s.batches, paths)
	unsupported, during := s.unsupported, s.during
	s.mu.Unlock()
	if unsupported {
		return nil, fmt.Errorf("%w: frame 0x3c", syncproto.ErrUnsupported)
	}
	if during != nil {
		during()
	}
	out := make([]syncproto.ChunkListResult, len(items))
	for i, it := range items {
		if s.itemErr != nil {
			if err := s.itemErr(it.Path); err != nil {
				out[i].Err = err
				continue
			}
		}
		hash := it.Hash
		if other, ok := s.swap[it.Path]; ok {
			hash = other
		}
		out[i].Size, out[i].Chunks, out[i].Err = s.fakeServer.ChunkList(ctx, root, it.Path, hash)
	}
	return out, nil
}

func (s *listBatchServer) GetChunks(ctx context.Context, root string, ids []cas.ID, fn func(syncproto.Chunk) error) error {
	if slices.Contains(ids, s.badChunk) {
		return syncproto.Errorf(syncproto.CodeUnavailable, "chunk %s is damaged here; asked again of its clients", s.badChunk.Short())
	}
	return s.fakeServer.GetChunks(ctx, root, ids, fn)
}

func smallPath(i int) string { return fmt.Sprintf("d%d/f%03d.txt", i%5, i) }

func TestPullBatchesNewSmallFiles(t *testing.T) {
	ctx := context.Background()
	eng, srv, h, dir, w := newListBatchEngine(t)
	const small = batchPullFiles + 44 // two batches
	for i := range small {
		srv.setHead(smallPath(i), randomBytes(uint64(i), 10+i*7))
	}
	srv.setHead("empty", []byte{})
	srv.setHead("big.bin", randomBytes(1, batchPullFileMax+1))
	res, err := eng.SyncRoot(ctx, "docs")
	if err != nil || res.FilesDownloaded != small+2 || len(w.paths()) != 0 {
		t.Fatalf("sync: %+v, %v, warnings %v", res, err, w.paths())
	}
	batched := 0
	for _, b := range srv.batches {
		if len(b) > batchPullFiles {
			t.Errorf("a batch of %d files, limit %d", len(b), batchPullFiles)
		}
		batched += len(b)
	}
	if batched != small+1 || len(srv.batches) != 2 {
		t.Errorf("%d files in %d batches, want %d in 2", batched, len(srv.batches), small+1)
	}
	if !slices.Equal(srv.singles, []string{"big.bin"}) {
		t.Errorf("asked one by one: %v, want only big.bin (over the batch file limit)", srv.singles)
	}
	for i := range small {
		got, err := os.ReadFile(filepath.Join(dir, filepath.FromSlash(smallPath(i))))
		if err != nil || string(got) != string(randomBytes(uint64(i), 10+i*7)) {
			t.Fatalf("%s: %d bytes, %v", smallPath(i), len(got), err)
		}
		rec, err := h.State().File(ctx, "docs", smallPath(i))
		if err != nil || rec.Pending || rec.BaseSeq == 0 || rec.Hash != rec.BaseHash {
			t.Fatalf("%s's record after the pull: %+v, %v", smallPath(i), rec, err)
		}
	}
	if fi, err := os.Stat(filepath.Join(dir, "empty")); err != nil || fi.Size() != 0 {
		t.Errorf("empty file: %v, %v", fi, err)
	}
	// The records hold the stat the files have: nothing to do next.
	res, err = eng.SyncRoot(ctx, "docs")
	if err != nil || res.FilesUploaded+res.FilesDownloaded != 0 {
		t.Fatalf("second pass: %+v, %v", res, err)
	}
}

// TestPullBatchFallsBack: an item the batch cannot answer, and every item
// of a server without batches, are pulled one by one.
func TestPullBatchFallsBack(t *testing.T) {
	ctx := context.Background()
	eng, srv, _, dir, w := newListBatchEngine(t)
	for i := range 10 {
		srv.setHead(smallPath(i), randomBytes(uint64(i), 100))
	}
	srv.itemErr = func(path string) error {
		if path == smallPath(3) {
			return fmt.Errorf("%w: busy", syncproto.ErrUnavailable)
		}
		return nil
	}
	res, err := eng.SyncRoot(ctx, "docs")
	if err != nil || res.FilesDownloaded != 10 || len(w.paths()) != 0 {
		t.Fatalf("sync: %+v, %v, warnings %v", res, err, w.paths())
	}
	if !slices.Equal(srv.singles, []string{smallPath(3)}) {
		t.Errorf("asked one by one: %v, want the item the batch failed", srv.singles)
	}

	srv.mu.Lock()
	srv.unsupported, srv.batches, srv.singles = true, nil, nil
	srv.mu.Unlock()
	for i := 10; i < 20; i++ {
		srv.setHead(smallPath(i), randomBytes(uint64(i), 100))
	}
	res, err = eng.SyncRoot(ctx, "docs")
	if err != nil || res.FilesDownloaded != 10 {
		t.Fatalf("sync with a server without batches: %+v, %v", res, err)
	}
	if len(srv.batches) != 1 || len(srv.singles) != 10 {
		t.Errorf("%d batches asked, %d files alone; want one refused batch, then 10 alone", len(srv.batches), len(srv.singles))
	}
	if !eng.noListBatches.Load() {
		t.Error("the engine still asks batches of a server that refused them")
	}
	for i := range 20 {
		if _, err := os.Stat(filepath.Join(dir, filepath.FromSlash(smallPath(i)))); err != nil {
			t.Errorf("%s not pulled: %v", smallPath(i), err)
		}
	}
}

// TestPullBatchKeepsLocalChanges: a file created locally while the batch
// downloads is not replaced, and content that does not hash to its head
// is not written; both are warned or left for the next pass, and the
// others land.
func TestPullBatchKeepsLocalChanges(t *testing.T) {
	ctx := context.Background()
	eng, srv, h, dir, w := newListBatchEngine(t)
	for i := range 4 {
		srv.setHead(smallPath(i), randomBytes(uint64(i), 100))
	}
	other := srv.store(randomBytes(99, 100)) // same size, other content
	srv.swap[smallPath(2)] = other
	srv.during = func() { writeFile(t, dir, smallPath(1), []byte("written here meanwhile")) }
	res, err := eng.SyncRoot(ctx, "docs")
	if err != nil {
		t.Fatalf("sync: %v", err)
	}
	if res.FilesDownloaded != 2 {
		t.Errorf("%d files downloaded, want 2 (not the local one, not the wrong one)", res.FilesDownloaded)
	}
	if got, _ := os.ReadFile(filepath.Join(dir, filepath.FromSlash(smallPath(1)))); string(got) != "written here meanwhile" {
		t.Errorf("a local file created during the pull was replaced: %q", got)
	}
	if _, err := os.Stat(filepath.Join(dir, filepath.FromSlash(smallPath(2)))); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("content that does not hash to its head was written: %v", err)
	}
	if !slices.Equal(w.paths(), []string{smallPath(2)}) {
		t.Errorf("warnings %v, want the file whose content did not match", w.paths())
	}
	if rec, err := h.State().File(ctx, "docs", smallPath(1)); err == nil && rec.BaseSeq != 0 {
		t.Errorf("the local file got the server's record: %+v", rec)
	}
	entries, err := os.ReadDir(filepath.Join(dir, "d1"))
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if IsTempName(e.Name()) {
			t.Errorf("temporary file %s left behind", e.Name())
		}
	}
}

// TestPullDamagedChunkFailsOneFile: a chunk the server cannot send fails
// the file that holds it, with a warning, not the pass: the other files of
// its batch land. Also for a large file pulled alone, whose failed fetch
// must surface as its own error, not as the cancellation of its other
// fetches.
func TestPullDamagedChunkFailsOneFile(t *testing.T) {
	for _, large := range []bool{false, true} {
		t.Run(fmt.Sprintf("large=%v", large), func(t *testing.T) {
			ctx := context.Background()
			eng, srv, _, dir, w := newListBatchEngine(t)
			for i := range 20 {
				srv.setHead(smallPath(i), randomBytes(uint64(i), 100))
			}
			bad := smallPath(7)
			srv.badChunk = cas.Sum(randomBytes(7, 100)) // its only chunk
			if large {
				data := randomBytes(99, batchPullFileMax+1)
				srv.setHead("big.bin", data)
				bad = "big.bin"
				srv.mu.Lock()
				list := srv.lists[cas.Sum(data)]
				srv.badChunk = list[len(list)/2].ID
				srv.mu.Unlock()
			}
			res, err := eng.SyncRoot(ctx, "docs")
			if err != nil {
				t.Fatalf("sync failed whole for one damaged chunk: %v", err)
			}
			want := 19
			if large {
				want = 20
			}
			if res.FilesDownloaded != want || !slices.Equal(w.paths(), []string{bad}) {
				t.Errorf("%d files downloaded, warnings %v; want %d and %s warned", res.FilesDownloaded, w.paths(), want, bad)
			}
			if _, err := os.Stat(filepath.Join(dir, filepath.FromSlash(bad))); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("the file with the damaged chunk was written: %v", err)
			}
		})
	}
}

// TestPullPages: a pull asks the heads a page at a time and applies each
// page (downloads, then its deletions) before asking the next; the cursor
// saved is where the last page ended.
func TestPullPages(t *testing.T) {
	ctx := context.Background()
	eng, lb, h, dir, w := newListBatchEngine(t)
	srv := &pagingServer{listBatchServer: lb}
	eng.remote = srv
	defer func(n int) { pullPage = n }(pullPage)
	pullPage = 7
	for i := range 40 {
		srv.setHead(smallPath(i), randomBytes(uint64(i), 50))
	}
	res, err := eng.SyncRoot(ctx, "docs")
	if err != nil || res.FilesDownloaded != 40 || len(w.paths()) != 0 {
		t.Fatalf("sync: %+v, %v, warnings %v", res, err, w.paths())
	}
	if !slices.Equal(srv.pages, []int{7, 7, 7, 7, 7, 5}) {
		t.Errorf("pages of %v heads, want 5 of 7 and the last 5", srv.pages)
	}
	root, err := h.State().Root(ctx, "docs")
	if err != nil || root.Cursor != 40 {
		t.Errorf("cursor after the pull: %d, %v; want 40", root.Cursor, err)
	}
	// A deletion and an edit after that come in the next pull's page.
	srv.setHead(smallPath(3), nil)
	srv.setHead(smallPath(4), []byte("changed"))
	srv.pages = nil
	res, err = eng.SyncRoot(ctx, "docs")
	if err != nil || res.FilesDownloaded != 1 || res.FilesDeleted != 1 || !slices.Equal(srv.pages, []int{2}) {
		t.Fatalf("second pull: %+v, %v, pages %v", res, err, srv.pages)
	}
	if _, err := os.Stat(filepath.Join(dir, filepath.FromSlash(smallPath(3)))); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("deleted file still there: %v", err)
	}
}

// TestPullSavesCursorPerPage: a pull that stops after some pages keeps
// their progress; the next pass asks from the last page it applied.
func TestPullSavesCursorPerPage(t *testing.T) {
	ctx := context.Background()
	eng, lb, h, _, _ := newListBatchEngine(t)
	srv := &pagingServer{listBatchServer: lb, failAt: 14}
	eng.remote = srv
	defer func(n int) { pullPage = n }(pullPage)
	pullPage = 7
	for i := range 20 {
		srv.setHead(smallPath(i), randomBytes(uint64(i), 50))
	}
	if _, err := eng.SyncRoot(ctx, "docs"); !errors.Is(err, syncproto.ErrConnClosed) {
		t.Fatalf("sync with the third page failing: %v", err)
	}
	root, err := h.State().Root(ctx, "docs")
	if err != nil || root.Cursor != 14 {
		t.Fatalf("cursor after two pages: %d, %v; want 14", root.Cursor, err)
	}
	srv.mu.Lock()
	srv.failAt, srv.afters = 0, nil
	srv.mu.Unlock()
	res, err := eng.SyncRoot(ctx, "docs")
	if err != nil || res.FilesDownloaded != 6 || !slices.Equal(srv.afters, []uint64{14}) {
		t.Fatalf("resumed pull: %+v, %v, pages asked after %v; want the last 6 files, after 14", res, err, srv.afters)
	}
}
