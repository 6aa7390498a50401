package syncproto

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/quic-s/quics/cas"
	"github.com/quic-s/quics/syncproto/syncpb"
)

func TestProposeBatch(t *testing.T) {
	h := newMemHandler(testServerPassword)
	s := startSyncServer(t, h, Config{})
	ctx := testCtx(t)
	c := s.client(t)
	mustRoot(ctx, t, c, "r")

	var chunks []Chunk
	item := func(path string, data []byte) BatchProposal {
		ch := storedChunk(t, data)
		chunks = append(chunks, ch)
		return BatchProposal{
			Request: &syncpb.ProposeRequest{Path: path, Hash: ch.ID[:], Size: int64(len(data))},
			Chunks:  []ChunkRef{{ID: ch.ID, Size: uint32(len(data))}},
		}
	}
	a, b := item("a.txt", []byte("alpha")), item("dir/b.txt", []byte("bravo"))
	if err := c.PutChunks(ctx, "r", chunks); err != nil {
		t.Fatal(err)
	}
	never := cas.Sum([]byte("never uploaded"))
	missing := BatchProposal{
		Request: &syncpb.ProposeRequest{Path: "missing", Hash: never[:], Size: 14},
		Chunks:  []ChunkRef{{ID: never, Size: 14}},
	}
	lies := BatchProposal{ // the list adds up to 5 bytes, the file says 6
		Request: &syncpb.ProposeRequest{Path: "lies", Hash: a.Request.Hash, Size: 6},
		Chunks:  a.Chunks,
	}
	empty := BatchProposal{Request: &syncpb.ProposeRequest{Path: "empty", Hash: emptyHash()}}
	res, err := c.ProposeBatch(ctx, "r", []BatchProposal{a, missing, b, lies, empty})
	if err != nil {
		t.Fatal(err)
	}
	if len(res) != 5 {
		t.Fatalf("%d results for 5 proposals", len(res))
	}
	for _, i := range []int{0, 2, 4} {
		if res[i].Err != nil || res[i].Commit.GetOutcome() != syncpb.CommitResponse_OUTCOME_COMMITTED {
			t.Errorf("item %d: %v, %v; want committed", i, res[i].Commit, res[i].Err)
		}
	}
	if p := res[2].Commit.GetHead().GetPath(); p != "dir/b.txt" {
		t.Errorf("item 2's head is %q: results out of order", p)
	}
	if !errors.Is(res[1].Err, ErrMissingChunks) {
		t.Errorf("item with chunks never sent: %v, want ErrMissingChunks", res[1].Err)
	}
	if !errors.Is(res[3].Err, ErrBadRequest) {
		t.Errorf("item whose list does not add up: %v, want ErrBadRequest", res[3].Err)
	}
	// The same batch again converges where it committed.
	res, err = c.ProposeBatch(ctx, "r", []BatchProposal{a, b})
	if err != nil {
		t.Fatal(err)
	}
	for i, r := range res {
		if r.Err != nil || r.Commit.GetOutcome() != syncpb.CommitResponse_OUTCOME_CONVERGED {
			t.Errorf("item %d again: %v, %v; want converged", i, r.Commit, r.Err)
		}
	}
	// A root the client is not a member of fails every item, not the
	// transaction.
	res, err = c.ProposeBatch(ctx, "elsewhere", []BatchProposal{a})
	if err != nil || !errors.Is(res[0].Err, ErrNotFound) && !errors.Is(res[0].Err, ErrForbidden) {
		t.Errorf("batch in a root never joined: %v, %v", res, err)
	}
}

// One connection has at most batchWorkers items in decision at once,
// however many batches it sends on its streams; the rest wait for a slot
// and are decided once one frees.
func TestProposeBatchBoundsConcurrency(t *testing.T) {
	h := newMemHandler(testServerPassword)
	var mu sync.Mutex
	inflight, most := 0, 0
	full := make(chan struct{})
	var fullOnce sync.Once // after the release, the rest can fill the slots again
	release := make(chan struct{})
	h.beforePropose = func() {
		mu.Lock()
		inflight++
		most = max(most, inflight)
		if inflight == batchWorkers {
			fullOnce.Do(func() { close(full) })
		}
		mu.Unlock()
		<-release
		mu.Lock()
		inflight--
		mu.Unlock()
	}
	s := startSyncServer(t, h, Config{})
	ctx := testCtx(t)
	c := s.client(t)
	mustRoot(ctx, t, c, "r")

	const batches, each = 2, batchWorkers * 3 / 4
	var wg sync.WaitGroup
	errs := make([]error, batches)
	for b := range batches {
		items := make([]BatchProposal, each)
		for i := range items {
			items[i] = BatchProposal{Request: &syncpb.ProposeRequest{Path: fmt.Sprintf("b%d/f%d", b, i), Hash: emptyHash()}}
		}
		wg.Go(func() {
			res, err := c.ProposeBatch(ctx, "r", items)
			for i, r := range res {
				if err == nil && r.Err != nil {
					err = fmt.Errorf("item %d: %w", i, r.Err)
				}
			}
			errs[b] = err
		})
	}
	select {
	case <-full:
	case <-ctx.Done():
		t.Fatalf("the slots never filled: %v", ctx.Err())
	}
	// Give items past the bound a moment to show up if nothing held them.
	time.Sleep(100 * time.Millisecond)
	mu.Lock()
	got := most
	mu.Unlock()
	close(release)
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if got != batchWorkers {
		t.Fatalf("%d items in decision at once on one connection, want %d", got, batchWorkers)
	}
}

func emptyHash() []byte {
	h := cas.Sum(nil)
	return h[:]
}

// TestProposeBatchBounds: a batch over its bounds is refused whole, before
// any item reaches the handler, and the connection keeps serving.
func TestProposeBatchBounds(t *testing.T) {
	h := newMemHandler(testServerPassword)
	s := startSyncServer(t, h, Config{})
	ctx := testCtx(t)
	c := s.client(t)
	mustRoot(ctx, t, c, "r")

	item := func(i, entries int) *syncpb.ProposeBatchRequest_Item {
		refs := make([]ChunkRef, entries)
		for j := range refs {
			refs[j] = ChunkRef{ID: cas.Sum([]byte{byte(i), byte(j), byte(j >> 8)}), Size: 1}
		}
		part := EncodeChunkListPart(refs)
		hash := cas.Sum([]byte{byte(i)})
		return &syncpb.ProposeBatchRequest_Item{
			Request: &syncpb.ProposeRequest{Path: fmt.Sprint("f", i), Hash: hash[:], Size: int64(entries), ChunkCount: uint32(entries)},
			Ids:     part.Ids, Sizes: part.Sizes,
		}
	}
	tooMany := &syncpb.ProposeBatchRequest{Root: "r"}
	for i := range MaxBatchProposals + 1 {
		tooMany.Items = append(tooMany.Items, item(i, 1))
	}
	tooLong := &syncpb.ProposeBatchRequest{Root: "r"}
	for i := range 2 {
		tooLong.Items = append(tooLong.Items, item(i, MaxBatchEntries/2+1))
	}
	for name, req := range map[string]*syncpb.ProposeBatchRequest{
		"no items":         {Root: "r"},
		"too many items":   tooMany,
		"too many entries": tooLong,
	} {
		t.Run(name, func(t *testing.T) {
			if err := transact(ctx, c.conn, req, &syncpb.ProposeBatchResponse{}); !errors.Is(err, ErrBadRequest) {
				t.Errorf("got %v, want ErrBadRequest", err)
			}
		})
	}
	// Malformed items fail alone.
	noRequest := &syncpb.ProposeBatchRequest_Item{}
	delta := item(1, 1)
	delta.Request.Delta = true
	miscounted := item(2, 2)
	miscounted.Request.ChunkCount = 3
	idsOnly := item(3, 1)
	idsOnly.Request.ChunkCount, idsOnly.Sizes = 0, nil
	var resp syncpb.ProposeBatchResponse
	req := &syncpb.ProposeBatchRequest{Root: "r", Items: []*syncpb.ProposeBatchRequest_Item{noRequest, delta, miscounted, idsOnly}}
	if err := transact(ctx, c.conn, req, &resp); err != nil {
		t.Fatal(err)
	}
	res, err := decodeBatchResults(&resp, 4)
	if err != nil {
		t.Fatal(err)
	}
	for i, r := range res {
		if !errors.Is(r.Err, ErrBadRequest) {
			t.Errorf("malformed item %d: %v, want ErrBadRequest", i, r.Err)
		}
	}
	h.mu.Lock()
	calls := len(h.proposed)
	h.mu.Unlock()
	if calls != 0 {
		t.Errorf("the handler saw %d malformed proposals", calls)
	}
	// Client side: the same bounds before anything is sent.
	if _, err := c.ProposeBatch(ctx, "r", nil); !errors.Is(err, ErrBadRequest) {
		t.Errorf("empty batch: %v, want ErrBadRequest", err)
	}
	if _, err := c.Ping(ctx); err != nil {
		t.Errorf("connection after refused batches: %v", err)
	}
}

func TestDecodeBatchResults(t *testing.T) {
	commit := &syncpb.CommitResponse{Outcome: syncpb.CommitResponse_OUTCOME_COMMITTED}
	tests := []struct {
		name string
		res  []*syncpb.ProposeBatchResponse_Result
		ok   bool
	}{
		{"commit", []*syncpb.ProposeBatchResponse_Result{{Commit: commit}}, true},
		{"error", []*syncpb.ProposeBatchResponse_Result{{ErrorCode: uint32(CodeConflict), ErrorMessage: "x"}}, true},
		{"neither", []*syncpb.ProposeBatchResponse_Result{{}}, false},
		{"both", []*syncpb.ProposeBatchResponse_Result{{Commit: commit, ErrorCode: uint32(CodeConflict)}}, false},
		{"too few", nil, false},
		{"too many", []*syncpb.ProposeBatchResponse_Result{{Commit: commit}, {Commit: commit}}, false},
		{"invalid UTF-8", []*syncpb.ProposeBatchResponse_Result{{ErrorCode: uint32(CodeConflict), ErrorMessage: "\xff"}}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := decodeBatchResults(&syncpb.ProposeBatchResponse{Results: tt.res}, 1)
			if (err == nil) != tt.ok {
				t.Errorf("err = %v, want ok %v", err, tt.ok)
			}
		})
	}
}

// FuzzDecodeBatch: any ProposeBatchRequest payload is decoded within its
// bounds or refused, and every item either has an error or a list that
// adds up to its size.
func FuzzDecodeBatch(f *testing.F) {
	hash := cas.Sum([]byte("x"))
	seed, _ := proto.Marshal(&syncpb.ProposeBatchRequest{Root: "r", Items: []*syncpb.ProposeBatchRequest_Item{{
		Request: &syncpb.ProposeRequest{Path: "a", Hash: hash[:], Size: 1, ChunkCount: 1},
		Ids:     hash[:], Sizes: []uint32{1},
	}}})
	f.Add(seed)
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, payload []byte) {
		var req syncpb.ProposeBatchRequest
		if DecodeMessage(FrameProposeBatchRequest, payload, &req) != nil {
			return
		}
		items, err := decodeBatch(&req, DefaultMaxChunkSize)
		if err != nil {
			return
		}
		if len(items) == 0 || len(items) > MaxBatchProposals {
			t.Fatalf("%d items decoded", len(items))
		}
		for i, it := range items {
			if it.err != nil {
				continue
			}
			var total int64
			for _, r := range it.refs {
				if r.Size == 0 || r.Size > DefaultMaxChunkSize {
					t.Fatalf("item %d: chunk of %d bytes", i, r.Size)
				}
				total += int64(r.Size)
			}
			if len(it.refs) > 0 && total != it.req.GetSize() {
				t.Fatalf("item %d: list of %d bytes for a file of %d", i, total, it.req.GetSize())
			}
		}
	})
}

// FuzzDecodeBatchResults: any response payload gives one result per item,
// each a commit or an error, or is refused.
func FuzzDecodeBatchResults(f *testing.F) {
	seed, _ := proto.Marshal(&syncpb.ProposeBatchResponse{Results: []*syncpb.ProposeBatchResponse_Result{
		{Commit: &syncpb.CommitResponse{Outcome: syncpb.CommitResponse_OUTCOME_COMMITTED}},
		{ErrorCode: uint32(CodeConflict), ErrorMessage: "conflict"},
	}})
	f.Add(seed, 2)
	f.Fuzz(func(t *testing.T, payload []byte, n int) {
		var resp syncpb.ProposeBatchResponse
		if DecodeMessage(FrameProposeBatchResponse, payload, &resp) != nil {
			return
		}
		res, err := decodeBatchResults(&resp, n)
		if err != nil {
			return
		}
		if len(res) != n {
			t.Fatalf("%d results for %d items", len(res), n)
		}
		for i, r := range res {
			if (r.Commit == nil) == (r.Err == nil) {
				t.Fatalf("result %d: commit %v, err %v", i, r.Commit, r.Err)
			}
		}
	})
}

// preparingHandler records what PrepareBatch was given and decides each
// item through the function it returned.
type preparingHandler struct {
	*memHandler
	mu       sync.Mutex
	prepared [][]string // paths of each prepared batch
	viaFunc  int
}

func (h *preparingHandler) PrepareBatch(ctx context.Context, s *Session, root string, items []BatchItem) ProposeFunc {
	var paths []string
	for _, it := range items {
		paths = append(paths, root+":"+it.Request.GetPath())
	}
	h.mu.Lock()
	h.prepared = append(h.prepared, paths)
	h.mu.Unlock()
	return func(ctx context.Context, req *syncpb.ProposeRequest, chunks []ChunkRef) (*syncpb.CommitResponse, error) {
		h.mu.Lock()
		h.viaFunc++
		h.mu.Unlock()
		return h.Propose(ctx, s, req, chunks)
	}
}

// A BatchPreparer is given a batch's well-formed items, and its function
// decides them; a malformed item is answered without it.
func TestProposeBatchPreparer(t *testing.T) {
	h := &preparingHandler{memHandler: newMemHandler(testServerPassword)}
	s := startServerOf(t, h, h.memHandler, Config{})
	ctx := testCtx(t)
	c := s.client(t)
	mustRoot(ctx, t, c, "r")
	ch := storedChunk(t, []byte("alpha"))
	if err := c.PutChunks(ctx, "r", []Chunk{ch}); err != nil {
		t.Fatal(err)
	}
	good := BatchProposal{
		Request: &syncpb.ProposeRequest{Path: "a.txt", Hash: ch.ID[:], Size: 5},
		Chunks:  []ChunkRef{{ID: ch.ID, Size: 5}},
	}
	bad := BatchProposal{ // the list adds up to 5 bytes, the file says 6
		Request: &syncpb.ProposeRequest{Path: "lies.txt", Hash: ch.ID[:], Size: 6},
		Chunks:  []ChunkRef{{ID: ch.ID, Size: 5}},
	}
	res, err := c.ProposeBatch(ctx, "r", []BatchProposal{bad, good})
	if err != nil {
		t.Fatal(err)
	}
	if !errors.Is(res[0].Err, ErrBadRequest) {
		t.Errorf("malformed item: %v, want ErrBadRequest", res[0].Err)
	}
	if res[1].Err != nil || res[1].Commit.GetOutcome() != syncpb.CommitResponse_OUTCOME_COMMITTED {
		t.Errorf("good item: %v, %v", res[1].Commit, res[1].Err)
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.prepared) != 1 || !slices.Equal(h.prepared[0], []string{"r:a.txt"}) {
		t.Errorf("prepared batches %v, want one with r:a.txt only", h.prepared)
	}
	if h.viaFunc != 1 {
		t.Errorf("%d items decided through the prepared function, want 1", h.viaFunc)
	}
}
