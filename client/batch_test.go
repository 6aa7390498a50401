package client

import (
	"context"
	"fmt"
	"slices"
	"testing"

	"github.com/quic-s/quics/syncproto"
	"github.com/quic-s/quics/syncproto/syncpb"
)

// batchServer is the fake server with batch proposals, each item decided
// by the fake's own Propose, unless a rule answers it first.
type batchServer struct {
	*fakeServer

	unsupported bool                            // every batch is ErrUnsupported
	answer      func(path string) error         // an error for an item, or nil to decide it
	batches     [][]string                      // paths of each batch
	singles     []string                        // paths proposed one by one
	sizes       map[string][]syncproto.ChunkRef // chunk lists received in batches
}

var _ BatchRemote = (*batchServer)(nil)

func (s *batchServer) ProposeBatch(ctx context.Context, _ string, items []syncproto.BatchProposal) ([]syncproto.BatchResult, error) {
	s.mu.Lock()
	var paths []string
	for _, it := range items {
		paths = append(paths, it.Request.GetPath())
		s.sizes[it.Request.GetPath()] = it.Chunks
	}
	s.batches = append(s.batches, paths)
	unsupported := s.unsupported
	s.mu.Unlock()
	if unsupported {
		return nil, fmt.Errorf("%w: frame 0x3a", syncproto.ErrUnsupported)
	}
	out := make([]syncproto.BatchResult, len(items))
	for i, it := range items {
		if s.answer != nil {
			if err := s.answer(it.Request.GetPath()); err != nil {
				out[i].Err = err
				continue
			}
		}
		out[i].Commit, out[i].Err = s.fakeServer.Propose(ctx, it.Request, it.Chunks)
	}
	return out, nil
}

func (s *batchServer) Propose(ctx context.Context, req *syncpb.ProposeRequest, chunks []syncproto.ChunkRef) (*syncpb.CommitResponse, error) {
	s.mu.Lock()
	s.singles = append(s.singles, req.GetPath())
	s.mu.Unlock()
	return s.fakeServer.Propose(ctx, req, chunks)
}

func newBatchEngine(t *testing.T) (*Engine, *batchServer, *Home, string) {
	h, dir := testRoot(t, testParams)
	srv := &batchServer{fakeServer: newFakeServer(t), sizes: map[string][]syncproto.ChunkRef{}}
	return NewEngine(h.State(), srv, EngineOptions{Scan: ScanOptions{Now: laterClock}}), srv, h, dir
}

func TestPushBatchesSmallFiles(t *testing.T) {
	ctx := context.Background()
	eng, srv, h, dir := newBatchEngine(t)
	const small = batchProposals + 10 // two batches
	for i := range small {
		writeFile(t, dir, fmt.Sprintf("d%d/f%d.txt", i%7, i), randomBytes(uint64(i), 100+i))
	}
	writeFile(t, dir, "big.bin", randomBytes(99, 64<<10)) // about 64 chunks of testParams
	res, err := eng.SyncRoot(ctx, "docs")
	if err != nil || res.FilesUploaded != small+1 {
		t.Fatalf("sync: %+v, %v", res, err)
	}
	batched := 0
	for _, b := range srv.batches {
		if len(b) > batchProposals {
			t.Errorf("a batch of %d proposals, limit %d", len(b), batchProposals)
		}
		batched += len(b)
	}
	if batched != small || len(srv.batches) != 2 {
		t.Errorf("%d files in %d batches, want %d in 2", batched, len(srv.batches), small)
	}
	if !slices.Equal(srv.singles, []string{"big.bin"}) {
		t.Errorf("proposed one by one: %v, want only big.bin (its list is long)", srv.singles)
	}
	// Every file's base is what the server committed.
	for i := range small {
		p := fmt.Sprintf("d%d/f%d.txt", i%7, i)
		rec, err := h.State().File(ctx, "docs", p)
		if err != nil || rec.Pending || rec.BaseSeq == 0 {
			t.Fatalf("%s after the sync: %+v, %v", p, rec, err)
		}
		if !slices.Equal(srv.sizes[p], rec.Chunks) {
			t.Errorf("%s: batch carried list %v, the file has %v", p, srv.sizes[p], rec.Chunks)
		}
	}
}

// TestPushBatchItemErrors: an item missing chunks is proposed again on its
// own; a conflict is recorded; a refused item is a warning; the others
// commit.
func TestPushBatchItemErrors(t *testing.T) {
	ctx := context.Background()
	eng, srv, h, dir := newBatchEngine(t)
	var warned []string
	eng.opts.Warn = func(w Warning) { warned = append(warned, w.Path) }
	for _, p := range []string{"ok.txt", "missing.txt", "conflict.txt", "refused.txt"} {
		writeFile(t, dir, p, randomBytes(uint64(len(p)), 200))
	}
	srv.answer = func(path string) error {
		switch path {
		case "missing.txt":
			return fmt.Errorf("%w: 1 of 1 chunks", syncproto.ErrMissingChunks)
		case "conflict.txt":
			return syncproto.Errorf(syncproto.CodeConflict, "someone else wrote it")
		case "refused.txt":
			return syncproto.Errorf(syncproto.CodeInvalidPath, "not here")
		}
		return nil
	}
	res, err := eng.SyncRoot(ctx, "docs")
	if err != nil {
		t.Fatalf("sync: %v", err)
	}
	if res.FilesUploaded != 2 || res.Conflicts != 1 || !slices.Equal(warned, []string{"refused.txt"}) {
		t.Errorf("sync: %+v, warnings %v; want 2 uploaded (ok, missing), 1 conflict, refused.txt warned", res, warned)
	}
	if !slices.Equal(srv.singles, []string{"missing.txt"}) {
		t.Errorf("proposed one by one: %v, want the item that missed chunks", srv.singles)
	}
	rec, err := h.State().File(ctx, "docs", "missing.txt")
	if err != nil || rec.Pending {
		t.Errorf("missing.txt after its own proposal: %+v, %v", rec, err)
	}
}

// TestPushWithoutServerBatches: a server that answers Unsupported gets
// every file one by one, and no more batches from this engine.
func TestPushWithoutServerBatches(t *testing.T) {
	ctx := context.Background()
	eng, srv, _, dir := newBatchEngine(t)
	srv.unsupported = true
	for i := range 5 {
		writeFile(t, dir, fmt.Sprintf("f%d", i), randomBytes(uint64(i), 300))
	}
	if res, err := eng.SyncRoot(ctx, "docs"); err != nil || res.FilesUploaded != 5 {
		t.Fatalf("sync: %+v, %v", res, err)
	}
	if len(srv.singles) != 5 || len(srv.batches) != 1 {
		t.Fatalf("%d single proposals after %d batches, want 5 after 1", len(srv.singles), len(srv.batches))
	}
	writeFile(t, dir, "f0", randomBytes(100, 300))
	if res, err := eng.SyncRoot(ctx, "docs"); err != nil || res.FilesUploaded != 1 {
		t.Fatalf("second sync: %+v, %v", res, err)
	}
	if len(srv.batches) != 1 {
		t.Errorf("%d batches: the engine tried again after Unsupported", len(srv.batches))
	}
}

// countingPuts counts the chunks each PutChunks carried.
type countingPuts struct {
	*batchServer
	put map[string]int // chunk ID -> times sent
}

func (s *countingPuts) PutChunks(ctx context.Context, root string, chunks []syncproto.Chunk) error {
	s.mu.Lock()
	for _, c := range chunks {
		s.put[c.ID.String()]++
	}
	s.mu.Unlock()
	return s.batchServer.PutChunks(ctx, root, chunks)
}

// TestPushGroupsShareChunks: files cut into groups that overlap in content
// (two files holding the same chunks in opposite order, in different
// groups) all commit, and each chunk travels once.
func TestPushGroupsShareChunks(t *testing.T) {
	defer func(f int, b int64) { groupFiles, groupBytes = f, b }(groupFiles, groupBytes)
	groupFiles, groupBytes = 2, 1<<20
	ctx := context.Background()
	h, dir := testRoot(t, testParams)
	srv := &countingPuts{
		batchServer: &batchServer{fakeServer: newFakeServer(t), sizes: map[string][]syncproto.ChunkRef{}},
		put:         map[string]int{},
	}
	eng := NewEngine(h.State(), srv, EngineOptions{Scan: ScanOptions{Now: laterClock}})
	x, y := randomBytes(1, 3000), randomBytes(2, 3000) // one chunk each at testParams' 4 KiB max
	const n = 24
	for i := range n {
		data := append(append([]byte{}, x...), y...)
		if i%2 == 1 {
			data = append(append([]byte{}, y...), x...)
		}
		writeFile(t, dir, fmt.Sprintf("f%02d", i), data)
	}
	res, err := eng.SyncRoot(ctx, "docs")
	if err != nil || res.FilesUploaded != n {
		t.Fatalf("sync: %+v, %v", res, err)
	}
	for id, times := range srv.put {
		if times != 1 {
			t.Errorf("chunk %.8s sent %d times", id, times)
		}
	}
	if len(srv.put) == 0 {
		t.Fatal("no chunk was sent")
	}
}
