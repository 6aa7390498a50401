package syncproto

import (
	"context"
	"errors"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/quic-s/quics/cas"
	"github.com/quic-s/quics/syncproto/syncpb"
)

func TestChunkListBatch(t *testing.T) {
	h := newMemHandler(testServerPassword)
	s := startSyncServer(t, h, Config{})
	ctx := testCtx(t)
	c := s.client(t)
	mustRoot(ctx, t, c, "r")

	var items []BatchProposal
	var chunks []Chunk
	for _, f := range []struct{ path, data string }{{"a.txt", "alpha"}, {"dir/b.txt", "bravo!"}} {
		ch := storedChunk(t, []byte(f.data))
		chunks = append(chunks, ch)
		items = append(items, BatchProposal{
			Request: &syncpb.ProposeRequest{Path: f.path, Hash: ch.ID[:], Size: int64(len(f.data))},
			Chunks:  []ChunkRef{{ID: ch.ID, Size: uint32(len(f.data))}},
		})
	}
	if err := c.PutChunks(ctx, "r", chunks); err != nil {
		t.Fatal(err)
	}
	if _, err := c.ProposeBatch(ctx, "r", items); err != nil {
		t.Fatal(err)
	}
	never := cas.Sum([]byte("never committed"))
	res, err := c.ChunkListBatch(ctx, "r", []ChunkListItem{
		{Path: "dir/b.txt", Hash: chunks[1].ID},
		{Path: "gone", Hash: never},
		{Path: "a.txt", Hash: chunks[0].ID},
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(res) != 3 {
		t.Fatalf("%d results for 3 items", len(res))
	}
	for i, want := range map[int]BatchProposal{0: items[1], 2: items[0]} {
		if res[i].Err != nil || res[i].Size != want.Request.GetSize() || len(res[i].Chunks) != 1 || res[i].Chunks[0] != want.Chunks[0] {
			t.Errorf("item %d: %+v, want the list of %q", i, res[i], want.Request.GetPath())
		}
	}
	if !errors.Is(res[1].Err, ErrNotFound) {
		t.Errorf("version never committed: %v, want ErrNotFound", res[1].Err)
	}
	// The chunks named by the batch's lists can be downloaded.
	var got []cas.ID
	if err := c.GetChunks(ctx, "r", []cas.ID{chunks[0].ID, chunks[1].ID}, func(ch Chunk) error {
		got = append(got, ch.ID)
		return nil
	}); err != nil || len(got) != 2 {
		t.Errorf("GetChunks after the batch: %v, %d chunks", err, len(got))
	}
	// A root the client is not a member of fails every item, not the
	// transaction.
	res, err = c.ChunkListBatch(ctx, "elsewhere", []ChunkListItem{{Path: "a.txt", Hash: chunks[0].ID}})
	if err != nil || !errors.Is(res[0].Err, ErrNotFound) && !errors.Is(res[0].Err, ErrForbidden) {
		t.Errorf("batch in a root never joined: %v, %v", res, err)
	}
	if _, err := c.ChunkListBatch(ctx, "r", nil); !errors.Is(err, ErrBadRequest) {
		t.Errorf("empty batch: %v, want ErrBadRequest", err)
	}
	tooMany := &syncpb.ChunkListBatchRequest{Root: "r"}
	for range MaxChunkListBatch + 1 {
		tooMany.Items = append(tooMany.Items, &syncpb.ChunkListBatchRequest_Item{Path: "a.txt", Hash: chunks[0].ID[:]})
	}
	if err := transact(ctx, c.conn, tooMany, &syncpb.ChunkListBatchResponse{}); !errors.Is(err, ErrBadRequest) {
		t.Errorf("batch of %d items: %v, want ErrBadRequest", len(tooMany.Items), err)
	}
	short := &syncpb.ChunkListBatchRequest{Root: "r", Items: []*syncpb.ChunkListBatchRequest_Item{{Path: "a.txt", Hash: []byte{1, 2}}}}
	var resp syncpb.ChunkListBatchResponse
	if err := transact(ctx, c.conn, short, &resp); err != nil || len(resp.GetResults()) != 1 || resp.GetResults()[0].GetErrorCode() != uint32(CodeBadRequest) {
		t.Errorf("item with a 2-byte hash: %v, %v; want its result BadRequest", resp.GetResults(), err)
	}
	if _, err := c.Ping(ctx); err != nil {
		t.Errorf("connection after refused batches: %v", err)
	}
}

func TestDecodeListResults(t *testing.T) {
	id := cas.Sum([]byte("x"))
	list := &syncpb.ChunkListBatchResponse_Result{Size: 5, Ids: id[:], Sizes: []uint32{5}}
	tests := []struct {
		name string
		res  []*syncpb.ChunkListBatchResponse_Result
		ok   bool
	}{
		{"list", []*syncpb.ChunkListBatchResponse_Result{list}, true},
		{"empty file", []*syncpb.ChunkListBatchResponse_Result{{}}, true},
		{"error", []*syncpb.ChunkListBatchResponse_Result{{ErrorCode: uint32(CodeNotFound), ErrorMessage: "gone"}}, true},
		{"both", []*syncpb.ChunkListBatchResponse_Result{{Size: 5, Ids: id[:], Sizes: []uint32{5}, ErrorCode: uint32(CodeNotFound)}}, false},
		{"size mismatch", []*syncpb.ChunkListBatchResponse_Result{{Size: 6, Ids: id[:], Sizes: []uint32{5}}}, false},
		{"size without list", []*syncpb.ChunkListBatchResponse_Result{{Size: 6}}, false},
		{"ids without sizes", []*syncpb.ChunkListBatchResponse_Result{{Size: 0, Ids: id[:]}}, false},
		{"ragged ids", []*syncpb.ChunkListBatchResponse_Result{{Size: 5, Ids: id[:31], Sizes: []uint32{5}}}, false},
		{"zero-size chunk", []*syncpb.ChunkListBatchResponse_Result{{Size: 0, Ids: id[:], Sizes: []uint32{0}}}, false},
		{"oversized chunk", []*syncpb.ChunkListBatchResponse_Result{{Size: DefaultMaxChunkSize + 1, Ids: id[:], Sizes: []uint32{DefaultMaxChunkSize + 1}}}, false},
		{"too few", nil, false},
		{"too many", []*syncpb.ChunkListBatchResponse_Result{list, list}, false},
		{"invalid UTF-8", []*syncpb.ChunkListBatchResponse_Result{{ErrorCode: uint32(CodeNotFound), ErrorMessage: "\xff"}}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := decodeListResults(&syncpb.ChunkListBatchResponse{Results: tt.res}, 1, DefaultMaxChunkSize)
			if (err == nil) != tt.ok {
				t.Errorf("err = %v, want ok %v", err, tt.ok)
			}
		})
	}
}

// FuzzDecodeListResults: any ChunkListBatchResponse payload is decoded
// within its bounds or refused, and every result is an error or a list of
// chunks within the size limit adding up to its size.
func FuzzDecodeListResults(f *testing.F) {
	id := cas.Sum([]byte("x"))
	seed, _ := proto.Marshal(&syncpb.ChunkListBatchResponse{Results: []*syncpb.ChunkListBatchResponse_Result{
		{Size: 5, Ids: id[:], Sizes: []uint32{5}},
		{ErrorCode: uint32(CodeNotFound), ErrorMessage: "gone"},
	}})
	f.Add(seed, 2)
	f.Add([]byte{}, 1)
	f.Fuzz(func(t *testing.T, payload []byte, n int) {
		if n < 1 || n > MaxChunkListBatch {
			return
		}
		var resp syncpb.ChunkListBatchResponse
		if DecodeMessage(FrameChunkListBatchResponse, payload, &resp) != nil {
			return
		}
		out, err := decodeListResults(&resp, n, DefaultMaxChunkSize)
		if err != nil {
			return
		}
		entries := 0
		for i, r := range out {
			if r.Err != nil {
				continue
			}
			var total int64
			for _, c := range r.Chunks {
				if c.Size == 0 || c.Size > DefaultMaxChunkSize {
					t.Fatalf("result %d: chunk of %d bytes", i, c.Size)
				}
				total += int64(c.Size)
			}
			entries += len(r.Chunks)
			if total != r.Size {
				t.Fatalf("result %d: list of %d bytes for a file of %d", i, total, r.Size)
			}
		}
		if entries > MaxBatchEntries {
			t.Fatalf("%d entries decoded", entries)
		}
	})
}

// batchingHandler answers chunk list batches itself, with answer.
type batchingHandler struct {
	*memHandler
	answer func(items []ChunkListItem) []ChunkListResult
}

func (h batchingHandler) ChunkListBatch(_ context.Context, _ *Session, _ string, items []ChunkListItem) []ChunkListResult {
	return h.answer(items)
}

// A Handler's own batch answers are checked like its ChunkList answers:
// a missing answer or a list that does not add up fails that item alone.
func TestChunkListBatcherAnswersChecked(t *testing.T) {
	id := cas.Sum([]byte("12345"))
	asked := make(chan []ChunkListItem, 1)
	h := batchingHandler{memHandler: newMemHandler(testServerPassword), answer: func(items []ChunkListItem) []ChunkListResult {
		asked <- items
		return []ChunkListResult{
			{Size: 5, Chunks: []ChunkRef{{ID: id, Size: 5}}},
			{Size: 6, Chunks: []ChunkRef{{ID: id, Size: 5}}}, // does not add up
		} // and no answer for the third
	}}
	s := startServerOf(t, h, h.memHandler, Config{})
	ctx := testCtx(t)
	c := s.client(t)
	res, err := c.ChunkListBatch(ctx, "r", []ChunkListItem{{Path: "a", Hash: id}, {Path: "b", Hash: id}, {Path: "c", Hash: id}})
	if err != nil {
		t.Fatal(err)
	}
	if got := <-asked; len(got) != 3 || got[2].Path != "c" || got[0].Hash != id {
		t.Errorf("the handler was asked %+v", got)
	}
	if res[0].Err != nil || res[0].Size != 5 {
		t.Errorf("item 0: %+v", res[0])
	}
	for _, i := range []int{1, 2} {
		if !errors.Is(res[i].Err, ErrInternal) {
			t.Errorf("item %d: %v, want ErrInternal", i, res[i].Err)
		}
	}
}

// pagingHandler answers paged heads requests with a fixed page.
type pagingHandler struct {
	*memHandler
	limits chan uint32
}

func (h pagingHandler) HeadsPage(_ context.Context, _ *Session, req *syncpb.HeadsRequest, emit func([]*syncpb.FileHead) error) (uint64, bool, error) {
	h.limits <- req.GetLimit()
	return 42, true, emit([]*syncpb.FileHead{{Path: "a", Seq: 41}, {Path: "b", Seq: 42}})
}

// A limit reaches a HeadsPager, whose resume point and more come back; a
// request without one, or to a Handler that does not page, is answered
// whole with more false.
func TestHeadsPageOverTheWire(t *testing.T) {
	h := pagingHandler{memHandler: newMemHandler(testServerPassword), limits: make(chan uint32, 1)}
	s := startServerOf(t, h, h.memHandler, Config{})
	ctx := testCtx(t)
	c := s.client(t)
	mustRoot(ctx, t, c, "r")
	heads, resume, more, err := c.HeadsPage(ctx, "r", 40, 2)
	if err != nil || len(heads) != 2 || resume != 42 || !more || <-h.limits != 2 {
		t.Fatalf("paged heads: %v, resume %d, more %v, %v", heads, resume, more, err)
	}
	if _, _, more, err := c.HeadsPage(ctx, "r", 0, 0); err != nil || more {
		t.Errorf("heads without a limit: more %v, %v", more, err)
	}
	if _, _, _, err := c.HeadsPage(ctx, "r", 0, MaxHeadsPage+1); !errors.Is(err, ErrBadRequest) {
		t.Errorf("a limit over MaxHeadsPage: %v, want ErrBadRequest", err)
	}

	plain := startSyncServer(t, newMemHandler(testServerPassword), Config{})
	pc := plain.client(t)
	mustRoot(ctx, t, pc, "r")
	if _, _, more, err := pc.HeadsPage(ctx, "r", 0, 2); err != nil || more {
		t.Errorf("a server that does not page: more %v, %v", more, err)
	}
}
