package syncproto

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"slices"
	"testing"

	"github.com/quic-s/quics/cas"
	"github.com/quic-s/quics/syncproto/syncpb"
)

// chunked is content cut into fixed 8 KiB chunks: the protocol does not
// care how chunks were cut.
type chunked struct {
	data   []byte
	hash   cas.ID
	refs   []ChunkRef
	chunks []Chunk
}

func cut(t testing.TB, data []byte) chunked {
	t.Helper()
	c := chunked{data: data, hash: cas.Sum(data)}
	for off := 0; off < len(data); off += 8 << 10 {
		part := data[off:min(off+8<<10, len(data))]
		c.refs = append(c.refs, ChunkRef{ID: cas.Sum(part), Size: uint32(len(part))})
		c.chunks = append(c.chunks, storedChunk(t, part))
	}
	return c
}

func (c chunked) request(root, path string, base *syncpb.FileHead) *syncpb.ProposeRequest {
	req := &syncpb.ProposeRequest{Root: root, Path: path, Hash: c.hash[:], Size: int64(len(c.data)), Mode: 0o644}
	if base != nil {
		req.BaseSeq, req.BaseHash = base.GetSeq(), base.GetHash()
	}
	return req
}

// deltaSetup commits v1 (64 KiB in 8 KiB chunks) at "f" in root "r" and
// returns it with v2: v1 with chunk 3 edited in place.
func deltaSetup(ctx context.Context, t *testing.T, c *Client) (v1, v2 chunked, head *syncpb.FileHead) {
	t.Helper()
	mustRoot(ctx, t, c, "r")
	data := randomBytes(64 << 10)
	v1 = cut(t, data)
	if err := c.PutChunks(ctx, "r", v1.chunks); err != nil {
		t.Fatal(err)
	}
	resp, err := c.Propose(ctx, v1.request("r", "f", nil), v1.refs)
	if err != nil {
		t.Fatal(err)
	}
	edited := slices.Clone(data)
	copy(edited[3*8<<10+100:], "an edit in place")
	v2 = cut(t, edited)
	return v1, v2, resp.GetHead()
}

func TestDeltaTransactions(t *testing.T) {
	h := newMemHandler(testServerPassword)
	s := startSyncServer(t, h, Config{})
	ctx := testCtx(t)
	c := s.client(t)
	v1, v2, head := deltaSetup(ctx, t, c)
	old, next := v1.refs[3], v2.refs[3]

	// The changed chunk travels as a delta against its signature.
	bs := SignatureBlockSize(int(old.Size))
	sigs, err := c.Signatures(ctx, "r", []SignatureSource{{Path: "f", Hash: v1.hash, IDs: []cas.ID{old.ID}, BlockSize: bs}})
	if err != nil || len(sigs) != 1 {
		t.Fatalf("signatures: %d, %v", len(sigs), err)
	}
	dc, ok := EncodeDelta(next.ID, v2.data[3*8<<10:4*8<<10], []DeltaSource{{ID: old.ID, Size: int(old.Size), BlockSize: bs, Signature: sigs[0]}})
	if !ok || len(dc.Data) > 2*bs {
		t.Fatalf("delta ok=%v, %d bytes", ok, len(dc.Data))
	}
	if err := c.PutChunks(ctx, "r", []Chunk{dc}); err != nil {
		t.Fatal(err)
	}
	h.mu.Lock()
	stored := h.chunks[next.ID]
	h.mu.Unlock()
	if !bytes.Equal(stored, v2.data[3*8<<10:4*8<<10]) {
		t.Fatal("the handler stored other bytes than the chunk's")
	}

	// The proposal names only what changed; the Handler sees the list.
	d := DiffChunkLists(v1.refs, v2.refs)
	d.SourceHash = v1.hash
	if len(d.New) != 1 {
		t.Fatalf("delta carries %d new entries", len(d.New))
	}
	resp, err := c.ProposeDelta(ctx, v2.request("r", "f", head), d)
	if err != nil || resp.GetOutcome() != syncpb.CommitResponse_OUTCOME_COMMITTED {
		t.Fatalf("ProposeDelta: %v, %v", resp, err)
	}
	h.mu.Lock()
	got := h.proposed[len(h.proposed)-1]
	h.mu.Unlock()
	if !slices.Equal(got, v2.refs) {
		t.Fatal("the Handler was given another list than the proposal's content")
	}

	// A reader holding v1 gets v2's list as a delta and the chunk
	// against its local copy.
	b := s.client(t)
	if _, err := b.JoinRoot(ctx, "r", "root secret"); err != nil {
		t.Fatal(err)
	}
	size, list, err := b.ChunkListFrom(ctx, "r", "f", v2.hash, "", v1.hash, v1.refs)
	if err != nil || size != int64(len(v2.data)) || !slices.Equal(list, v2.refs) {
		t.Fatalf("ChunkListFrom: %d, %v", size, err)
	}
	var arrived Chunk
	err = b.GetChunksDict(ctx, "r", []cas.ID{v2.refs[2].ID, next.ID}, [][]cas.ID{nil, {old.ID}}, func(ch Chunk) error {
		if ch.ID == next.ID {
			arrived = ch
			arrived.Data = slices.Clone(ch.Data)
		} else if ch.Codec == ChunkDelta {
			t.Error("a chunk asked without dictionaries came as a delta")
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if arrived.Codec != ChunkDelta {
		t.Fatalf("the changed chunk came as %s", arrived.Codec)
	}
	if out, err := DecodeDelta(arrived, [][]byte{v1.data[3*8<<10 : 4*8<<10]}); err != nil || !bytes.Equal(out, v2.data[3*8<<10:4*8<<10]) {
		t.Fatalf("decode the downloaded delta: %v", err)
	}
}

func TestDeltaWithoutDeltaHandler(t *testing.T) {
	h := newMemHandler(testServerPassword)
	s := startLimitedServer(t, plainHandler{h}, Config{}, ServerOptions{})
	ctx := testCtx(t)
	id, token := s.register(t, Config{})
	c, err := DialSession(ctx, s.addr, s.tls(), Config{}, id, token)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	v1, v2, head := deltaSetup(ctx, t, c)

	d := DiffChunkLists(v1.refs, v2.refs)
	d.SourceHash = v1.hash
	if _, err := c.ProposeDelta(ctx, v2.request("r", "f", head), d); !errors.Is(err, ErrUnsupported) {
		t.Fatalf("ProposeDelta: %v, want ErrUnsupported", err)
	}
	if _, err := c.Signatures(ctx, "r", []SignatureSource{{Path: "f", Hash: v1.hash, IDs: []cas.ID{v1.refs[0].ID}, BlockSize: 256}}); !errors.Is(err, ErrUnsupported) {
		t.Fatalf("Signatures: %v, want ErrUnsupported", err)
	}
	dc, ok := EncodeDeltaFrom(v2.refs[3].ID, v2.data[3*8<<10:4*8<<10], []cas.ID{v1.refs[3].ID}, [][]byte{v1.data[3*8<<10 : 4*8<<10]}, 8<<10)
	if !ok {
		t.Fatal("no delta")
	}
	if err := c.PutChunks(ctx, "r", []Chunk{dc}); !errors.Is(err, ErrUnsupported) {
		t.Fatalf("PutChunks of a delta: %v, want ErrUnsupported", err)
	}
	// Reads fall back to whole lists and stored chunks, without error.
	_, list, err := c.ChunkListFrom(ctx, "r", "f", v1.hash, "", v1.hash, v1.refs)
	if err != nil || !slices.Equal(list, v1.refs) {
		t.Fatalf("ChunkListFrom: %v", err)
	}
	err = c.GetChunksDict(ctx, "r", []cas.ID{v1.refs[1].ID}, [][]cas.ID{{v1.refs[0].ID}}, func(ch Chunk) error {
		if ch.Codec == ChunkDelta {
			t.Error("a delta from a server without deltas")
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// rawDeltaPropose sends a delta proposal frame by frame: the request, the
// given messages, the end.
func rawDeltaPropose(ctx context.Context, conn *Conn, req *syncpb.ProposeRequest, msgs ...*syncpb.ChunkListDelta) error {
	st, err := conn.OpenStream(ctx)
	if err != nil {
		return err
	}
	if err := WriteMessage(ctx, st, req); err != nil {
		return err
	}
	for _, m := range msgs {
		if err := WriteMessage(ctx, st, m); err != nil {
			return writeFailed(ctx, st, err)
		}
	}
	endRequest(st)
	if err := ReadMessage(ctx, st, &syncpb.CommitResponse{}); err != nil {
		return abort(st, err)
	}
	return finish(ctx, st)
}

func TestDeltaProposalFraming(t *testing.T) {
	h := newMemHandler(testServerPassword)
	s := startSyncServer(t, h, Config{})
	ctx := testCtx(t)
	c := s.client(t)
	v1, v2, head := deltaSetup(ctx, t, c)
	h.mu.Lock()
	before := len(h.proposed)
	h.mu.Unlock()

	good := DiffChunkLists(v1.refs, v2.refs)
	good.SourceHash = v1.hash
	req := func(count uint32) *syncpb.ProposeRequest {
		r := v2.request("r", "f", head)
		r.Delta, r.ChunkCount = true, count
		return r
	}
	noSource := *good
	noSource.SourceHash = cas.ID{}
	n := uint32(len(v2.refs))
	tests := []struct {
		name string
		req  *syncpb.ProposeRequest
		msgs []*syncpb.ChunkListDelta
		want error
	}{
		{"count differs from the delta", req(n + 1), []*syncpb.ChunkListDelta{EncodeListDelta(good)}, ErrBadRequest},
		{"no delta frame", req(n), nil, ErrBadRequest},
		{"two delta frames", req(n), []*syncpb.ChunkListDelta{EncodeListDelta(good), EncodeListDelta(good)}, ErrBadRequest},
		{"no source", req(n), []*syncpb.ChunkListDelta{EncodeListDelta(&noSource)}, ErrBadRequest},
		{"source of another path", req(n), []*syncpb.ChunkListDelta{func() *syncpb.ChunkListDelta {
			m := EncodeListDelta(good)
			m.SourcePath = "elsewhere"
			return m
		}()}, ErrNotFound},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := rawDeltaPropose(ctx, c.conn, tt.req, tt.msgs...); !errors.Is(err, tt.want) {
				t.Errorf("got %v, want %v", err, tt.want)
			}
		})
	}
	h.mu.Lock()
	after := len(h.proposed)
	h.mu.Unlock()
	if after != before {
		t.Errorf("the handler saw %d malformed delta proposals", after-before)
	}
}

func TestGetChunksDictionaryBounds(t *testing.T) {
	s := startSyncServer(t, newMemHandler(testServerPassword), Config{})
	ctx := testCtx(t)
	c := s.client(t)
	v1, _, _ := deltaSetup(ctx, t, c)
	ids := AppendIDs(nil, []cas.ID{v1.refs[0].ID, v1.refs[1].ID})
	nine := make([]cas.ID, MaxDeltaSources+1)
	for i := range nine {
		nine[i] = v1.refs[0].ID
	}
	for _, tc := range []struct {
		name string
		req  *syncpb.GetChunksRequest
	}{
		{"counts without ids", &syncpb.GetChunksRequest{Root: "r", Ids: ids, DictCounts: []uint32{1, 0}}},
		{"ids without counts", &syncpb.GetChunksRequest{Root: "r", Ids: ids, DictIds: AppendIDs(nil, []cas.ID{v1.refs[2].ID})}},
		{"one count for two ids", &syncpb.GetChunksRequest{Root: "r", Ids: ids, DictIds: AppendIDs(nil, []cas.ID{v1.refs[2].ID}), DictCounts: []uint32{1}}},
		{"too many dictionaries", &syncpb.GetChunksRequest{Root: "r", Ids: ids, DictIds: AppendIDs(nil, nine), DictCounts: []uint32{uint32(len(nine)), 0}}},
		{"ids left over", &syncpb.GetChunksRequest{Root: "r", Ids: ids, DictIds: AppendIDs(nil, []cas.ID{v1.refs[2].ID, v1.refs[3].ID}), DictCounts: []uint32{1, 0}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var resp syncpb.Ack
			err := transact(ctx, c.conn, tc.req, &resp)
			if !errors.Is(err, ErrBadRequest) {
				t.Fatalf("got %v, want ErrBadRequest", err)
			}
		})
	}
}

func TestDialKeyExchange(t *testing.T) {
	s := startSyncServer(t, newMemHandler(testServerPassword), Config{})
	ctx := testCtx(t)
	for _, tc := range []struct {
		pq   bool
		want tls.CurveID
	}{{false, tls.X25519}, {true, tls.X25519MLKEM768}} {
		conn, err := Dial(ctx, s.addr, s.tls(), Config{PostQuantumKeyExchange: tc.pq})
		if err != nil {
			t.Fatal(err)
		}
		if got := conn.TLS().CurveID; got != tc.want {
			t.Errorf("PostQuantumKeyExchange %v: negotiated %v, want %v", tc.pq, got, tc.want)
		}
		_ = conn.Close()
	}
}
