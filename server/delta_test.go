package server

import (
	"bytes"
	"context"
	"errors"
	"slices"
	"testing"

	"github.com/quic-s/quics/cas"
	"github.com/quic-s/quics/syncproto"
	"github.com/quic-s/quics/syncproto/syncpb"
)

// deltaEnv is a server over QUIC with one root, "docs", that a's session
// registered and b's joined, and a file v1 committed by a at "big.bin".
type deltaEnv struct {
	*env
	ctx  context.Context
	addr string
	a, b *syncproto.Client
	v1   file
	head *syncpb.FileHead
}

func newDeltaEnv(t *testing.T) *deltaEnv {
	t.Helper()
	e := newEnv(t)
	addr := e.serveQUIC(t)
	d := &deltaEnv{env: e, ctx: testCtx(t), addr: addr}
	d.a = e.mustDial(t, addr, e.registerDevice(t, addr, "a"))
	d.b = e.mustDial(t, addr, e.registerDevice(t, addr, "b"))
	if _, err := d.a.RegisterRoot(d.ctx, "docs", rootPassword("docs")); err != nil {
		t.Fatal(err)
	}
	if _, err := d.b.JoinRoot(d.ctx, "docs", rootPassword("docs")); err != nil {
		t.Fatal(err)
	}
	d.v1 = newFile(t, randomData(21, 1<<20))
	if len(d.v1.refs) < 6 {
		t.Fatalf("fixture has %d chunks, want several", len(d.v1.refs))
	}
	resp, _, err := quicPush(d.ctx, d.a, "docs", "big.bin", nil, d.v1)
	if err != nil {
		t.Fatal(err)
	}
	d.head = resp.GetHead()
	return d
}

// edited is v1 with n random bytes inserted at off, chunked.
func (d *deltaEnv) edited(t *testing.T, off, n int) file {
	t.Helper()
	data := slices.Concat(d.v1.data[:off], randomData(uint64(off+n), n), d.v1.data[off:])
	return newFile(t, data)
}

// chunkList is the server's list of a version, fetched by b.
func (d *deltaEnv) chunkList(t *testing.T, path string, hash cas.ID) []syncproto.ChunkRef {
	t.Helper()
	_, refs, err := d.b.ChunkList(d.ctx, "docs", path, hash)
	if err != nil {
		t.Fatal(err)
	}
	return refs
}

func TestDeltaProposalReconstructs(t *testing.T) {
	d := newDeltaEnv(t)
	v2 := d.edited(t, 500<<10, 100)
	if _, err := d.upload2(t, v2); err != nil {
		t.Fatal(err)
	}
	delta := syncproto.DiffChunkLists(d.v1.refs, v2.refs)
	delta.SourceHash = d.v1.hash
	if len(delta.New) == 0 || len(delta.New) >= len(v2.refs) {
		t.Fatalf("the fixture's delta inserts %d of %d entries", len(delta.New), len(v2.refs))
	}
	resp, err := d.a.ProposeDelta(d.ctx, request("docs", "big.bin", d.head, v2), delta)
	if err != nil {
		t.Fatal(err)
	}
	if resp.GetOutcome() != syncpb.CommitResponse_OUTCOME_COMMITTED || !bytes.Equal(resp.GetHead().GetHash(), v2.hash[:]) {
		t.Fatalf("commit %v", resp)
	}
	if got := d.chunkList(t, "big.bin", v2.hash); !slices.Equal(got, v2.refs) {
		t.Fatalf("the committed list differs from the proposed content's:\n got %v\nwant %v", got, v2.refs)
	}
	chunks, err := quicDownload(d.ctx, d.b, "docs", "big.bin", v2.hash)
	if err != nil || len(chunks) != len(v2.chunks) {
		t.Fatalf("download of the new version: %d chunks, %v", len(chunks), err)
	}
}

// headOf is b's view of the head of path, nil when there is none.
func (d *deltaEnv) headOf(t *testing.T, path string) *syncpb.FileHead {
	t.Helper()
	heads, _, err := d.b.Heads(d.ctx, "docs", 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, h := range heads {
		if h.GetPath() == path {
			return h
		}
	}
	return nil
}

// upload2 uploads the chunks of f the server lacks over a's connection.
func (d *deltaEnv) upload2(t *testing.T, f file) ([]syncproto.Chunk, error) {
	t.Helper()
	present, err := d.a.HaveChunks(d.ctx, "docs", f.ids())
	if err != nil {
		return nil, err
	}
	send, err := f.missing(present)
	if err != nil {
		return nil, err
	}
	return send, d.a.PutChunks(d.ctx, "docs", send)
}

func TestDeltaProposalCopy(t *testing.T) {
	d := newDeltaEnv(t)
	// The same content under another name, from big.bin: one run.
	delta := &syncproto.ListDelta{SourcePath: "big.bin", SourceHash: d.v1.hash,
		Runs: []syncproto.ListRun{{Copy: uint32(len(d.v1.refs))}}}
	resp, err := d.b.ProposeDelta(d.ctx, request("docs", "copies/big.bin", nil, d.v1), delta)
	if err != nil || resp.GetOutcome() != syncpb.CommitResponse_OUTCOME_COMMITTED {
		t.Fatalf("copy: %v, %v", resp, err)
	}
	if got := d.chunkList(t, "copies/big.bin", d.v1.hash); !slices.Equal(got, d.v1.refs) {
		t.Fatal("the copy's list differs")
	}
}

func TestDeltaProposalSourceMissing(t *testing.T) {
	d := newDeltaEnv(t)
	other := newFile(t, randomData(22, 200<<10))
	all := &syncproto.ListDelta{Runs: []syncproto.ListRun{{Copy: uint32(len(other.refs))}}}
	for _, tc := range []struct {
		name       string
		path, src  string
		hash       cas.ID
		wantErr    error
		commitWith file
	}{
		// A hash that is no version of the source path: the client
		// learns nothing about it and sends the whole list.
		{"unknown hash", "x.bin", "big.bin", other.hash, syncproto.ErrNotFound, other},
		{"unknown path", "y.bin", "nowhere.bin", d.v1.hash, syncproto.ErrNotFound, d.v1},
		{"bad path", "z.bin", "../etc/passwd", d.v1.hash, syncproto.ErrInvalidPath, d.v1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			delta := *all
			delta.SourcePath, delta.SourceHash = tc.src, tc.hash
			delta.Runs = []syncproto.ListRun{{Copy: uint32(len(tc.commitWith.refs))}}
			_, err := d.b.ProposeDelta(d.ctx, request("docs", tc.path, nil, tc.commitWith), &delta)
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("got %v, want %v", err, tc.wantErr)
			}
			if h := d.headOf(t, tc.path); h != nil {
				t.Fatalf("something was committed: %v", h)
			}
		})
	}
	// A root the client is not a member of is refused the same way as
	// any request in it.
	e2 := d.client(t, "c")
	d.root(t, e2, "private")
	_, err := d.b.ProposeDelta(d.ctx, &syncpb.ProposeRequest{Root: "private", Path: "p", Hash: d.v1.hash[:], Size: int64(len(d.v1.data))},
		&syncproto.ListDelta{SourceHash: d.v1.hash, Runs: []syncproto.ListRun{{Copy: uint32(len(d.v1.refs))}}})
	if !errors.Is(err, syncproto.ErrForbidden) {
		t.Fatalf("delta in a foreign root: %v", err)
	}
}

func TestDeltaProposalHostileRuns(t *testing.T) {
	d := newDeltaEnv(t)
	n := uint32(len(d.v1.refs))
	extra := syncproto.ChunkRef{ID: cas.Sum([]byte("x")), Size: 1}
	for _, tc := range []struct {
		name  string
		runs  []syncproto.ListRun
		added []syncproto.ChunkRef
		count uint32
	}{
		{"copy past the source", []syncproto.ListRun{{Copy: n + 1}}, nil, n + 1},
		{"skip past the source", []syncproto.ListRun{{Skip: n, Copy: 1}}, nil, 1},
		{"huge skip", []syncproto.ListRun{{Skip: 1<<32 - 1, Copy: 1}, {Skip: 1<<32 - 1, Copy: 1}}, nil, 2},
		{"inserts without entries", []syncproto.ListRun{{Copy: n, Insert: 2}}, []syncproto.ChunkRef{extra}, n + 2},
		{"entries without inserts", []syncproto.ListRun{{Copy: n}}, []syncproto.ChunkRef{extra}, n},
		{"zero-size entry", []syncproto.ListRun{{Copy: n, Insert: 1}}, []syncproto.ChunkRef{{ID: extra.ID}}, n + 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			delta := &syncproto.ListDelta{SourceHash: d.v1.hash, Runs: tc.runs, New: tc.added}
			whatever := cas.Sum([]byte("whatever"))
			req := &syncpb.ProposeRequest{Root: "docs", Path: "big.bin", BaseSeq: d.head.GetSeq(), BaseHash: d.head.GetHash(),
				Hash: whatever[:], Size: int64(len(d.v1.data)), Mode: 0o644}
			_, err := d.a.ProposeDelta(d.ctx, req, delta)
			if !errors.Is(err, syncproto.ErrBadRequest) {
				t.Fatalf("got %v, want ErrBadRequest", err)
			}
		})
	}
	// The head is still v1.
	if h := d.headOf(t, "big.bin"); h == nil || !bytes.Equal(h.GetHash(), d.v1.hash[:]) {
		t.Fatalf("head after refused deltas: %v", h)
	}
}

// signatures asks a's session for the signatures of v1's chunks ids and
// returns them as delta sources.
func (d *deltaEnv) signatures(t *testing.T, ids ...cas.ID) []syncproto.DeltaSource {
	t.Helper()
	bs := syncproto.SignatureBlockSize(64 << 10)
	sigs, err := d.a.Signatures(d.ctx, "docs", []syncproto.SignatureSource{{Path: "big.bin", Hash: d.v1.hash, IDs: ids, BlockSize: bs}})
	if err != nil {
		t.Fatal(err)
	}
	srcs := make([]syncproto.DeltaSource, len(ids))
	for i, id := range ids {
		srcs[i] = syncproto.DeltaSource{ID: id, Size: len(d.v1.chunks[id]), BlockSize: bs, Signature: sigs[i]}
	}
	return srcs
}

// changedChunk returns the first chunk of v2 that is not in v1 and the v1
// chunk it replaced.
func changedChunk(t *testing.T, v1, v2 file) (next syncproto.ChunkRef, replaced syncproto.ChunkRef) {
	t.Helper()
	for i, r := range v2.refs {
		if _, ok := v1.chunks[r.ID]; !ok {
			return r, v1.refs[i]
		}
	}
	t.Fatal("no changed chunk")
	return
}

func TestDeltaChunkUpload(t *testing.T) {
	d := newDeltaEnv(t)
	v2 := d.edited(t, 300<<10, 100)
	next, old := changedChunk(t, d.v1, v2)
	c, ok := syncproto.EncodeDelta(next.ID, v2.chunks[next.ID], d.signatures(t, old.ID))
	if !ok {
		t.Fatal("no delta for a 100-byte insert")
	}
	if len(c.Data) > 3000 {
		t.Errorf("a delta of %d bytes for a 100-byte insert", len(c.Data))
	}
	if err := d.a.PutChunks(d.ctx, "docs", []syncproto.Chunk{c}); err != nil {
		t.Fatal(err)
	}
	got, err := d.env.srv.Store().Get(d.ctx, next.ID)
	if err != nil || !bytes.Equal(got, v2.chunks[next.ID]) {
		t.Fatalf("stored chunk: %v", err)
	}
	// The chunk is stored in the store's own form, not as the delta.
	st, err := d.env.srv.Store().GetStored(d.ctx, next.ID)
	if err != nil || st.Codec > cas.CodecZstd {
		t.Fatalf("stored form %v, %v", st.Codec, err)
	}
}

func TestDeltaChunkRefused(t *testing.T) {
	d := newDeltaEnv(t)
	v2 := d.edited(t, 300<<10, 100)
	next, old := changedChunk(t, d.v1, v2)
	srcs := d.signatures(t, old.ID)

	// A delta whose result does not hash to its ID: refused, nothing kept.
	wrong := slices.Clone(v2.chunks[next.ID])
	wrong[len(wrong)/2] ^= 0xff
	lie, ok := syncproto.EncodeDelta(next.ID, wrong, srcs)
	if !ok {
		t.Fatal("no delta")
	}
	err := d.a.PutChunks(d.ctx, "docs", []syncproto.Chunk{lie})
	if !errors.Is(err, syncproto.ErrHashMismatch) {
		t.Fatalf("wrong delta: %v, want ErrHashMismatch", err)
	}
	if has, _ := d.env.srv.Store().Has(d.ctx, []cas.ID{next.ID}); has[0] {
		t.Fatal("a chunk that hashed wrong was stored")
	}

	// A delta against a chunk the session was never told of: refused
	// before anything is read, so it cannot probe other content.
	b2 := newFile(t, randomData(23, 300<<10))
	if _, _, err := quicPush(d.ctx, d.a, "docs", "other.bin", nil, b2); err != nil {
		t.Fatal(err)
	}
	foreign := syncproto.DeltaSource{ID: b2.refs[0].ID, Size: int(b2.refs[0].Size), BlockSize: srcs[0].BlockSize,
		Signature: syncproto.Sign(b2.chunks[b2.refs[0].ID], srcs[0].BlockSize)}
	probe := slices.Concat(b2.chunks[b2.refs[0].ID], []byte("tail"))
	c, ok := syncproto.EncodeDelta(cas.Sum(probe), probe, []syncproto.DeltaSource{foreign})
	if !ok {
		t.Fatal("no delta")
	}
	if err := d.b.PutChunks(d.ctx, "docs", []syncproto.Chunk{c}); !errors.Is(err, syncproto.ErrNotFound) {
		t.Fatalf("delta against an unannounced source: %v, want ErrNotFound", err)
	}
	if has, _ := d.env.srv.Store().Has(d.ctx, []cas.ID{c.ID}); has[0] {
		t.Fatal("a chunk built from an unannounced source was stored")
	}
}

func TestSignaturesChecks(t *testing.T) {
	d := newDeltaEnv(t)
	bs := syncproto.SignatureBlockSize(64 << 10)
	other := newFile(t, randomData(24, 100<<10))
	if _, _, err := quicPush(d.ctx, d.a, "docs", "other.bin", nil, other); err != nil {
		t.Fatal(err)
	}
	sig := func(src syncproto.SignatureSource) error {
		_, err := d.b.Signatures(d.ctx, "docs", []syncproto.SignatureSource{src})
		return err
	}
	// Good: the signature is the chunk's.
	sigs, err := d.b.Signatures(d.ctx, "docs", []syncproto.SignatureSource{{Path: "big.bin", Hash: d.v1.hash, IDs: d.v1.ids()[:2], BlockSize: bs}})
	if err != nil || len(sigs) != 2 || !bytes.Equal(sigs[1], syncproto.Sign(d.v1.chunks[d.v1.refs[1].ID], bs)) {
		t.Fatalf("signatures: %d, %v", len(sigs), err)
	}
	for _, tc := range []struct {
		name string
		src  syncproto.SignatureSource
		want error
	}{
		{"chunk of another file", syncproto.SignatureSource{Path: "big.bin", Hash: d.v1.hash, IDs: other.ids()[:1], BlockSize: bs}, syncproto.ErrNotFound},
		{"version of another file", syncproto.SignatureSource{Path: "big.bin", Hash: other.hash, IDs: other.ids()[:1], BlockSize: bs}, syncproto.ErrNotFound},
		{"tiny blocks", syncproto.SignatureSource{Path: "big.bin", Hash: d.v1.hash, IDs: d.v1.ids()[:1], BlockSize: 8}, syncproto.ErrBadRequest},
		{"huge blocks", syncproto.SignatureSource{Path: "big.bin", Hash: d.v1.hash, IDs: d.v1.ids()[:1], BlockSize: 1 << 20}, syncproto.ErrBadRequest},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := sig(tc.src); !errors.Is(err, tc.want) {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
		})
	}
}

func TestChunkListFromAndDictionaries(t *testing.T) {
	d := newDeltaEnv(t)
	v2 := d.edited(t, 700<<10, 100)
	if _, err := d.upload2(t, v2); err != nil {
		t.Fatal(err)
	}
	if _, err := d.a.Propose(d.ctx, request("docs", "big.bin", d.head, v2), v2.refs); err != nil {
		t.Fatal(err)
	}
	// b holds v1 and asks for v2 against it.
	size, refs, err := d.b.ChunkListFrom(d.ctx, "docs", "big.bin", v2.hash, "", d.v1.hash, d.v1.refs)
	if err != nil || size != int64(len(v2.data)) || !slices.Equal(refs, v2.refs) {
		t.Fatalf("chunk list from v1: %d, %v", size, err)
	}
	next, old := changedChunk(t, d.v1, v2)
	var got syncproto.Chunk
	err = d.b.GetChunksDict(d.ctx, "docs", []cas.ID{next.ID}, [][]cas.ID{{old.ID}}, func(c syncproto.Chunk) error {
		got = c
		got.Data = slices.Clone(c.Data)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if got.Codec != syncproto.ChunkDelta || len(got.Data) > 400 {
		t.Fatalf("chunk arrived as %s of %d bytes, want a small delta", got.Codec, len(got.Data))
	}
	data, err := syncproto.DecodeDelta(got, [][]byte{d.v1.chunks[old.ID]})
	if err != nil || !bytes.Equal(data, v2.chunks[next.ID]) {
		t.Fatalf("decode: %v", err)
	}

	// A base that is no version of the file: the whole list, no error.
	other := newFile(t, randomData(25, 100<<10))
	_, refs, err = d.b.ChunkListFrom(d.ctx, "docs", "big.bin", v2.hash, "", other.hash, other.refs)
	if err != nil || !slices.Equal(refs, v2.refs) {
		t.Fatalf("chunk list from an unknown base: %v", err)
	}
	// A dictionary the session was never given is ignored: stored form.
	c2 := d.mustDial(t, d.addr, d.registerDevice(t, d.addr, "c"))
	if _, err := c2.JoinRoot(d.ctx, "docs", rootPassword("docs")); err != nil {
		t.Fatal(err)
	}
	if _, _, err := c2.ChunkList(d.ctx, "docs", "big.bin", v2.hash); err != nil {
		t.Fatal(err)
	}
	err = c2.GetChunksDict(d.ctx, "docs", []cas.ID{next.ID}, [][]cas.ID{{old.ID}}, func(c syncproto.Chunk) error {
		if c.Codec == syncproto.ChunkDelta {
			t.Error("a delta against a dictionary the session was never given")
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
