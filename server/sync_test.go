package server

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/uuid"

	"github.com/quic-s/quics/cas"
	"github.com/quic-s/quics/conflict"
	"github.com/quic-s/quics/manifest"
	"github.com/quic-s/quics/syncproto"
	"github.com/quic-s/quics/syncproto/syncpb"
)

func TestUploadDownload(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	a, b := e.client(t, "a"), e.client(t, "b")
	e.root(t, a, "docs")
	e.join(t, b, "docs")

	size := 3 << 20
	if testing.Short() {
		size = 1 << 20
	}
	f := newFile(t, randomData(7, size))
	if len(f.refs) < 4 {
		t.Fatalf("fixture has %d chunks, want several", len(f.refs))
	}
	if sent := e.upload(t, a, "docs", f); sent != len(f.chunks) {
		t.Errorf("first upload sent %d chunks, want all %d", sent, len(f.chunks))
	}
	// Uploaded and reported chunks are pinned until the commit.
	for _, id := range f.ids() {
		if !e.srv.Pins().Pinned(id) {
			t.Fatalf("chunk %s not pinned before the commit", id.Short())
		}
	}
	resp, err := e.srv.Propose(ctx, a, request("docs", "dir/big.bin", nil, f), f.refs)
	if err != nil {
		t.Fatal(err)
	}
	head := resp.GetHead()
	if resp.GetOutcome() != syncpb.CommitResponse_OUTCOME_COMMITTED || head.GetSeq() != 1 || !bytes.Equal(head.GetHash(), f.hash[:]) ||
		head.GetSize() != int64(size) || head.GetClientId() != a.ClientID || head.GetPath() != "dir/big.bin" || head.GetMode() != 0o644 {
		t.Fatalf("commit response %v", resp)
	}
	if n := e.srv.Pins().Len(); n != 0 {
		t.Errorf("%d chunks still pinned after the commit", n)
	}

	// The same content under another name costs no chunk.
	if sent := e.upload(t, b, "docs", f); sent != 0 {
		t.Errorf("duplicate upload sent %d chunks, want 0", sent)
	}
	e.mustPush(t, b, "docs", "copy.bin", nil, f)

	heads, seq, _ := e.heads(t, b, "docs", 0)
	if seq != 2 || len(heads) != 2 || heads["dir/big.bin"].GetSeq() != 1 || heads["copy.bin"].GetSeq() != 2 {
		t.Fatalf("heads %v at seq %d", heads, seq)
	}
	got, err := e.download(t, b, "docs", "dir/big.bin", heads["dir/big.bin"].GetHash())
	if err != nil {
		t.Fatal(err)
	}
	if cas.Sum(got) != f.hash {
		t.Fatal("downloaded bytes do not hash to the version's hash")
	}

	// Only chunks handed out by ChunkList may be fetched.
	fresh := e.client(t, "fresh")
	e.join(t, fresh, "docs")
	err = e.srv.GetChunks(ctx, fresh, "docs", f.ids()[:1], func(syncproto.Chunk) error { return nil })
	if !errors.Is(err, syncproto.ErrNotFound) {
		t.Errorf("GetChunks before ChunkList: err = %v, want ErrNotFound", err)
	}
	// A hash that is not a version of the path is not served, even if the
	// content exists elsewhere.
	other := newFile(t, []byte("other content"))
	e.mustPush(t, a, "docs", "other.txt", nil, other)
	if _, err := e.download(t, fresh, "docs", "copy.bin", other.hash[:]); !errors.Is(err, syncproto.ErrNotFound) {
		t.Errorf("chunk list of another path's hash: err = %v, want ErrNotFound", err)
	}
	if _, err := e.download(t, fresh, "docs", "nothing-here", f.hash[:]); !errors.Is(err, syncproto.ErrNotFound) {
		t.Errorf("chunk list of a path never committed: err = %v", err)
	}
	if _, _, err := e.srv.ChunkList(ctx, fresh, &syncpb.ChunkListRequest{Root: "docs", Path: "copy.bin", Hash: []byte{1, 2}}); !errors.Is(err, syncproto.ErrBadRequest) {
		t.Errorf("short hash: err = %v", err)
	}

	// An empty file has an empty chunk list.
	empty := newFile(t, nil)
	e.mustPush(t, a, "docs", "empty", nil, empty)
	size0, refs, err := e.srv.ChunkList(ctx, b, &syncpb.ChunkListRequest{Root: "docs", Path: "empty", Hash: manifest.EmptyHash[:]})
	if err != nil || size0 != 0 || len(refs) != 0 {
		t.Errorf("empty file chunk list: %d, %v, %v", size0, refs, err)
	}
}

func TestHeadsAfterSeqAndParts(t *testing.T) {
	e := newEnv(t)
	e.srv.headsPart = 3
	a := e.client(t, "a")
	e.root(t, a, "docs")
	heads := e.pushLetters(t, a, 7)
	// fa changes twice more after seq 7: it is listed once, at its latest.
	heads["fa"] = e.mustPush(t, a, "docs", "fa", heads["fa"], newFile(t, []byte("x")))
	heads["fa"] = e.mustPush(t, a, "docs", "fa", heads["fa"], newFile(t, []byte("y")))
	heads["fb"] = e.mustPush(t, a, "docs", "fb", heads["fb"], newFile(t, nil))

	all, seq, parts := e.heads(t, a, "docs", 0)
	if seq != 10 || len(all) != 7 || len(parts) != 3 || len(parts[0]) != 3 || len(parts[2]) != 1 {
		t.Errorf("full listing: %d heads in %d parts at seq %d", len(all), len(parts), seq)
	}
	for p, h := range heads {
		if all[p].GetSeq() != h.GetSeq() || !bytes.Equal(all[p].GetHash(), h.GetHash()) {
			t.Errorf("head of %s = %v, want %v", p, all[p], h)
		}
	}
	changed, seq, _ := e.heads(t, a, "docs", 7)
	if seq != 10 || len(changed) != 2 || changed["fa"].GetSeq() != 9 || changed["fb"].GetSeq() != 10 {
		t.Errorf("after 7: %v at seq %d", changed, seq)
	}
	// Paging through the feed, 3 per read: every path but fa's first
	// version changed after seq 1, fa too (at 9).
	changed, _, parts = e.heads(t, a, "docs", 1)
	if len(changed) != 7 || len(parts) != 3 {
		t.Errorf("after 1: %d heads in %d parts", len(changed), len(parts))
	}
	if changed, seq, _ := e.heads(t, a, "docs", 10); len(changed) != 0 || seq != 10 {
		t.Errorf("after the root seq: %v at %d", changed, seq)
	}
	// A cursor ahead of the root (the client saw a server that lost
	// history) gets everything.
	if all, _, _ := e.heads(t, a, "docs", 99); len(all) != 7 {
		t.Errorf("cursor ahead: %d heads, want all 7", len(all))
	}
}

func TestFastForwardConvergedConflict(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	a, b := e.client(t, "alice"), e.client(t, "bob")
	e.root(t, a, "docs")
	e.join(t, b, "docs")
	w := e.watch(t, b, &syncpb.WatchRequest{})
	e.subscribed(t, "docs", 1)

	v1 := newFile(t, randomData(1, 200<<10))
	h1 := e.mustPush(t, a, "docs", "notes/report.txt", nil, v1)
	w.waitFor(t, "MUST_SYNC for v1", func(ns []*syncpb.Notice) bool {
		for _, n := range ns {
			if n.GetKind() == syncpb.Notice_KIND_MUST_SYNC && n.GetHead().GetSeq() == h1.GetSeq() && n.GetRootSeq() == 1 {
				return true
			}
		}
		return false
	})

	// Bob edits on top of v1: fast-forward.
	v2 := newFile(t, randomData(2, 200<<10))
	h2 := e.mustPush(t, b, "docs", "notes/report.txt", h1, v2)
	if h2.GetSeq() != 2 || h2.GetClientId() != b.ClientID {
		t.Fatalf("fast-forward head %v", h2)
	}

	// Alice, still on v1, proposes v2's content: converged, nothing written.
	resp, err := e.push(a, "docs", "notes/report.txt", h1, v2)
	if err != nil || resp.GetOutcome() != syncpb.CommitResponse_OUTCOME_CONVERGED || resp.GetHead().GetSeq() != 2 {
		t.Fatalf("converged proposal: %v, %v", resp, err)
	}

	// Alice, still on v1, proposes her own edit: conflict.
	v3 := newFile(t, randomData(3, 200<<10))
	_, err = e.push(a, "docs", "notes/report.txt", h1, v3)
	if !errors.Is(err, syncproto.ErrConflict) {
		t.Fatalf("stale proposal: err = %v, want ErrConflict", err)
	}
	msg := syncproto.WireError(err).Message
	if !strings.Contains(msg, `"notes/report.txt"`) || !strings.Contains(msg, "seq 2") {
		t.Errorf("conflict message %q should name the path and the head seq", msg)
	}
	root, _ := e.srv.db.RootByName(ctx, "docs")
	if root.Seq != 2 {
		t.Errorf("root seq %d after a conflict, want 2 (nothing committed)", root.Seq)
	}
	c, err := e.srv.db.Conflict(ctx, root.ID, "notes/report.txt")
	if err != nil {
		t.Fatal(err)
	}
	aliceID := uuid.MustParse(a.ClientID)
	if len(c.Candidates) != 2 ||
		c.Candidates[0].Kind != manifest.CandidateServer || c.Candidates[0].Hash != v2.hash || c.Candidates[0].BaseSeq != 2 ||
		c.Candidates[1].Kind != manifest.CandidateClient || c.Candidates[1].Client != aliceID || c.Candidates[1].Hash != v3.hash ||
		c.Candidates[1].BaseSeq != 1 {
		t.Fatalf("candidates %+v", c.Candidates)
	}
	w.waitFor(t, "CONFLICT notice", hasNotice(syncpb.Notice_KIND_CONFLICT, "notes/report.txt"))

	// Both sides are materialized, and the head stays in latest/.
	e.srv.views.wait()
	cdir := filepath.Join(e.dir, SyncDir, "docs", conflictDir, "notes", "report.txt")
	for name, want := range map[string][]byte{
		conflict.CandidateName(conflict.ServerSide, v2.hash, "report.txt"): v2.data,
		conflict.CandidateName("alice", v3.hash, "report.txt"):             v3.data,
	} {
		if got := readFile(t, filepath.Join(cdir, name)); !bytes.Equal(got, want) {
			t.Errorf("candidate file %s has the wrong content", name)
		}
	}
	if got := readFile(t, filepath.Join(e.dir, SyncDir, "docs", latestDir, "notes", "report.txt")); !bytes.Equal(got, v2.data) {
		t.Error("latest view is not the head")
	}
	// A candidate can be downloaded by a member to resolve the conflict.
	if got, err := e.download(t, b, "docs", "notes/report.txt", v3.hash[:]); err != nil || cas.Sum(got) != v3.hash {
		t.Errorf("download candidate: %v", err)
	}

	// Alice tries again with another edit: her candidate is replaced.
	v4 := newFile(t, []byte("fourth"))
	if _, err := e.push(a, "docs", "notes/report.txt", h1, v4); !errors.Is(err, syncproto.ErrConflict) {
		t.Fatalf("second stale proposal: err = %v", err)
	}
	c, _ = e.srv.db.Conflict(ctx, root.ID, "notes/report.txt")
	if len(c.Candidates) != 2 || c.Candidates[1].Hash != v4.hash {
		t.Errorf("after replacing alice's candidate: %+v", c.Candidates)
	}
	e.srv.views.wait()
	entries, _ := os.ReadDir(cdir)
	var names []string
	for _, en := range entries {
		names = append(names, en.Name())
	}
	want := []string{conflict.CandidateName("alice", v4.hash, "report.txt"), conflict.CandidateName(conflict.ServerSide, v2.hash, "report.txt")}
	slices.Sort(want)
	if !slices.Equal(names, want) {
		t.Errorf("conflict dir holds %v, want %v", names, want)
	}
	if n := e.srv.Pins().Len(); n != 0 {
		t.Errorf("%d chunks pinned after the proposals settled", n)
	}
}

func TestConflictWithoutServerHead(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	a := e.client(t, "a")
	e.root(t, a, "docs")
	f := newFile(t, []byte("orphan"))
	gone := cas.Sum([]byte("gone"))
	base := &syncpb.FileHead{Seq: 5, Hash: gone[:]}
	_, err := e.push(a, "docs", "x", base, f)
	if !errors.Is(err, syncproto.ErrConflict) {
		t.Fatalf("base the server never had: err = %v", err)
	}
	c, err := e.srv.db.Conflict(ctx, 1, "x")
	if err != nil || len(c.Candidates) != 1 || c.Candidates[0].Kind != manifest.CandidateClient {
		t.Errorf("candidates %+v, %v: want only the client's", c.Candidates, err)
	}
}

func TestDeleteAndRecreate(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	a := e.client(t, "a")
	e.root(t, a, "docs")
	f := newFile(t, []byte("to be deleted"))
	h := e.mustPush(t, a, "docs", "a/b/c.txt", nil, f)
	e.srv.views.wait()
	latest := filepath.Join(e.dir, SyncDir, "docs", latestDir)
	if got := readFile(t, filepath.Join(latest, "a", "b", "c.txt")); !bytes.Equal(got, f.data) {
		t.Fatal("view not materialized")
	}

	resp, err := e.srv.Propose(ctx, a, deleteRequest("docs", "a/b/c.txt", h), nil)
	if err != nil || resp.GetOutcome() != syncpb.CommitResponse_OUTCOME_COMMITTED {
		t.Fatalf("delete: %v, %v", resp, err)
	}
	del := resp.GetHead()
	if !del.GetDeleted() || del.GetHash() != nil || del.GetSize() != 0 || del.GetSeq() != 2 {
		t.Errorf("deletion head %v", del)
	}
	e.srv.views.wait()
	if _, err := os.Lstat(filepath.Join(latest, "a")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("deleted file's empty parents remain: %v", err)
	}
	if _, err := os.Stat(latest); err != nil {
		t.Errorf("the latest dir itself went away: %v", err)
	}
	// Deleting again from a stale base converges.
	resp, err = e.srv.Propose(ctx, a, deleteRequest("docs", "a/b/c.txt", h), nil)
	if err != nil || resp.GetOutcome() != syncpb.CommitResponse_OUTCOME_CONVERGED {
		t.Errorf("second delete: %v, %v", resp, err)
	}
	// Recreating on top of the deletion fast-forwards.
	g := newFile(t, []byte("back again"))
	h3 := e.mustPush(t, a, "docs", "a/b/c.txt", del, g)
	if h3.GetSeq() != 3 {
		t.Errorf("recreated at seq %d", h3.GetSeq())
	}
	// The history keeps all three versions.
	vs, err := e.srv.db.Versions(ctx, 1, "a/b/c.txt")
	if err != nil || len(vs) != 3 || !vs[1].Deleted {
		t.Errorf("versions %+v, %v", vs, err)
	}
	e.srv.views.wait()
	if got := readFile(t, filepath.Join(latest, "a", "b", "c.txt")); !bytes.Equal(got, g.data) {
		t.Error("recreated file not materialized")
	}
}

func TestMissingChunks(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	a := e.client(t, "a")
	e.root(t, a, "docs")
	f := newFile(t, randomData(9, 300<<10))

	// Never uploaded.
	_, err := e.srv.Propose(ctx, a, request("docs", "f", nil, f), f.refs)
	if !errors.Is(err, syncproto.ErrMissingChunks) {
		t.Fatalf("proposal without upload: err = %v, want ErrMissingChunks", err)
	}
	if msg := syncproto.WireError(err).Message; !strings.Contains(msg, f.refs[0].ID.String()) || !strings.Contains(msg, `"f"`) {
		t.Errorf("message %q should name the file and a missing chunk", msg)
	}
	// A one-chunk file, whose check takes another path.
	small := newFile(t, randomData(10, 3000))
	if len(small.refs) != 1 {
		t.Fatalf("%d chunks in 3000 bytes", len(small.refs))
	}
	_, err = e.srv.Propose(ctx, a, request("docs", "small", nil, small), small.refs)
	if !errors.Is(err, syncproto.ErrMissingChunks) || !strings.Contains(syncproto.WireError(err).Message, small.refs[0].ID.String()) {
		t.Fatalf("one-chunk proposal without upload: err = %v, want ErrMissingChunks naming its chunk", err)
	}

	// Uploaded, then collected by gc before the proposal: the chunk is
	// asked for again, never committed as a dangling reference.
	e.upload(t, a, "docs", f)
	if err := e.srv.store.DeleteChunks(ctx, f.ids()[:1]); err != nil {
		t.Fatal(err)
	}
	_, err = e.srv.Propose(ctx, a, request("docs", "f", nil, f), f.refs)
	if !errors.Is(err, syncproto.ErrMissingChunks) {
		t.Fatalf("proposal after gc: err = %v, want ErrMissingChunks", err)
	}
	if _, err := e.srv.db.Head(ctx, 1, "f"); !errors.Is(err, manifest.ErrNotFound) {
		t.Errorf("a head was written: %v", err)
	}
	// Re-uploading what is missing lets the proposal through.
	e.upload(t, a, "docs", f)
	if _, err := e.srv.Propose(ctx, a, request("docs", "f", nil, f), f.refs); err != nil {
		t.Fatalf("proposal after re-upload: %v", err)
	}
}

// TestCommitRechecksInTransaction deletes a chunk after the content was
// verified and before the commit's transaction: the check inside the
// transaction refuses it.
func TestCommitRechecksInTransaction(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	a := e.client(t, "a")
	e.root(t, a, "docs")
	f := newFile(t, randomData(10, 100<<10))
	e.upload(t, a, "docs", f)
	p, err := parseProposal(request("docs", "f", nil, f), f.refs, 256<<10)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.srv.verifyContent(ctx, p, nil); err != nil {
		t.Fatal(err)
	}
	if err := e.srv.store.DeleteChunks(ctx, f.ids()[len(f.ids())-1:]); err != nil {
		t.Fatal(err)
	}
	root, _ := e.srv.db.RootByName(ctx, "docs")
	_, err = e.srv.commit(ctx, a.State.(*session), root, p, nil)
	if !errors.Is(err, syncproto.ErrMissingChunks) {
		t.Fatalf("commit after the chunk vanished: err = %v, want ErrMissingChunks", err)
	}
}

func TestBadProposals(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	a := e.client(t, "a")
	e.root(t, a, "docs")
	good := newFile(t, randomData(4, 100<<10))
	e.upload(t, a, "docs", good)
	other := newFile(t, randomData(5, 100<<10))
	e.upload(t, a, "docs", other)
	e.mustPush(t, a, "docs", "existing", nil, good)
	small := newFile(t, randomData(6, 3<<10)) // one chunk: its ID is the content hash
	e.upload(t, a, "docs", small)
	if len(small.refs) != 1 || small.refs[0].ID != small.hash {
		t.Fatalf("small file has %d chunks", len(small.refs))
	}

	mod := func(f func(*syncpb.ProposeRequest)) *syncpb.ProposeRequest {
		req := request("docs", "new", nil, good)
		f(req)
		return req
	}
	tests := []struct {
		name string
		req  *syncpb.ProposeRequest
		refs []syncproto.ChunkRef
		want error
	}{
		{"sizes do not add up", mod(func(r *syncpb.ProposeRequest) { r.Size++ }), good.refs, syncproto.ErrBadRequest},
		{"negative size", mod(func(r *syncpb.ProposeRequest) { r.Size = -1 }), good.refs, syncproto.ErrBadRequest},
		{"short hash", mod(func(r *syncpb.ProposeRequest) { r.Hash = r.Hash[:31] }), good.refs, syncproto.ErrBadRequest},
		{"no hash", mod(func(r *syncpb.ProposeRequest) { r.Hash = nil }), good.refs, syncproto.ErrBadRequest},
		{"short base hash", mod(func(r *syncpb.ProposeRequest) { r.BaseHash = []byte{1} }), good.refs, syncproto.ErrBadRequest},
		{"chunk count mismatch", mod(func(r *syncpb.ProposeRequest) { r.ChunkCount++ }), good.refs, syncproto.ErrBadRequest},
		{"no chunks", mod(func(r *syncpb.ProposeRequest) { r.ChunkCount = 0 }), nil, syncproto.ErrBadRequest},
		{"deletion with chunks", mod(func(r *syncpb.ProposeRequest) { r.Deleted = true; r.Hash = nil; r.Size = 0 }), good.refs, syncproto.ErrBadRequest},
		{"deletion with hash", &syncpb.ProposeRequest{Root: "docs", Path: "x", Deleted: true, Hash: good.hash[:]}, nil, syncproto.ErrBadRequest},
		{"deletion with size", &syncpb.ProposeRequest{Root: "docs", Path: "x", Deleted: true, Size: 3}, nil, syncproto.ErrBadRequest},
		{"empty file, wrong hash", &syncpb.ProposeRequest{Root: "docs", Path: "x", Hash: good.hash[:]}, nil, syncproto.ErrBadRequest},
		{"zero-size chunk", mod(func(r *syncpb.ProposeRequest) {}), append([]syncproto.ChunkRef{{ID: good.refs[0].ID, Size: 0}}, good.refs...), syncproto.ErrBadRequest},
		{"chunk over the root's max", &syncpb.ProposeRequest{Root: "docs", Path: "x", Hash: good.hash[:], Size: 300 << 10, ChunkCount: 1},
			[]syncproto.ChunkRef{{ID: good.refs[0].ID, Size: 300 << 10}}, syncproto.ErrBadRequest},
		// The chunks exist but are another file's: claiming a hash one
		// does not have is refused.
		{"chunks of other content", mod(func(r *syncpb.ProposeRequest) {
			r.Size = int64(len(other.data))
			r.ChunkCount = uint32(len(other.refs))
		}),
			other.refs, syncproto.ErrBadRequest},
		{"existing hash, other chunks", &syncpb.ProposeRequest{Root: "docs", Path: "x", Hash: good.hash[:], Size: int64(len(other.data)), ChunkCount: uint32(len(other.refs))},
			other.refs, syncproto.ErrBadRequest},
		{"chunk sizes lie", mod(func(r *syncpb.ProposeRequest) {}), lieSizes(good.refs), syncproto.ErrBadRequest},
		{"one chunk, its size lies", &syncpb.ProposeRequest{Root: "docs", Path: "x", Hash: small.hash[:], Size: int64(len(small.data) - 1), ChunkCount: 1},
			[]syncproto.ChunkRef{{ID: small.hash, Size: uint32(len(small.data) - 1)}}, syncproto.ErrBadRequest},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := e.srv.Propose(ctx, a, tt.req, tt.refs)
			if !errors.Is(err, tt.want) {
				t.Fatalf("err = %v, want %v", err, tt.want)
			}
		})
	}
	heads, seq, _ := e.heads(t, a, "docs", 0)
	if len(heads) != 1 || seq != 1 {
		t.Errorf("refused proposals changed the root: %v at seq %d", heads, seq)
	}
}

// lieSizes moves one byte from the first chunk's size to the second's:
// the total is right, the list is not.
func lieSizes(refs []syncproto.ChunkRef) []syncproto.ChunkRef {
	out := slices.Clone(refs)
	out[0].Size--
	out[1].Size++
	return out
}

func TestPutChunksRefusals(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	a := e.client(t, "a")
	e.root(t, a, "docs")
	data := bytes.Repeat([]byte("abc"), 1000)
	id := cas.Sum(data)
	st, err := cas.Compress(data)
	if err != nil || st.Codec != cas.CodecZstd {
		t.Fatalf("fixture does not compress: %v", err)
	}
	wrongID := cas.Sum([]byte("something else"))
	big := make([]byte, 256<<10+1)
	tests := []struct {
		name  string
		chunk syncproto.Chunk
		want  error
	}{
		{"hash mismatch raw", syncproto.Chunk{Codec: syncproto.ChunkRaw, ID: wrongID, RawLen: len(data), Data: data}, syncproto.ErrHashMismatch},
		{"hash mismatch zstd", syncproto.Chunk{Codec: syncproto.ChunkZstd, ID: wrongID, RawLen: len(data), Data: st.Data}, syncproto.ErrHashMismatch},
		{"garbage zstd", syncproto.Chunk{Codec: syncproto.ChunkZstd, ID: id, RawLen: len(data), Data: []byte("not zstd")}, syncproto.ErrBadRequest},
		{"over the root's max", syncproto.Chunk{Codec: syncproto.ChunkRaw, ID: cas.Sum(big), RawLen: len(big), Data: big}, syncproto.ErrBadRequest},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := e.srv.PutChunks(ctx, a, "docs", chunkSource([]syncproto.Chunk{tt.chunk}))
			if !errors.Is(err, tt.want) {
				t.Fatalf("err = %v, want %v", err, tt.want)
			}
			if tt.want == syncproto.ErrHashMismatch && !strings.Contains(syncproto.WireError(err).Message, tt.chunk.ID.String()) {
				t.Errorf("message %q should name the chunk", syncproto.WireError(err).Message)
			}
		})
	}
	present, err := e.srv.store.Has(ctx, []cas.ID{id, wrongID, cas.Sum(big)})
	if err != nil || slices.Contains(present, true) {
		t.Errorf("refused chunks were stored: %v, %v", present, err)
	}
	// The client's compressed form is accepted and read back as is.
	if err := e.srv.PutChunks(ctx, a, "docs", chunkSource([]syncproto.Chunk{{Codec: syncproto.ChunkZstd, ID: id, RawLen: len(data), Data: st.Data}})); err != nil {
		t.Fatal(err)
	}
	back, err := e.srv.store.GetStored(ctx, id)
	if err != nil || back.Codec != cas.CodecZstd || !bytes.Equal(back.Data, st.Data) {
		t.Errorf("stored form %v, %v", back.Codec, err)
	}
	// A read error from the transport ends the upload with that error.
	boom := errors.New("stream broke")
	if err := e.srv.PutChunks(ctx, a, "docs", func() (syncproto.Chunk, error) { return syncproto.Chunk{}, boom }); !errors.Is(err, boom) {
		t.Errorf("transport error: err = %v", err)
	}
}

func TestPinsLifecycle(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	a := e.client(t, "a")
	e.root(t, a, "docs")
	f := newFile(t, randomData(11, 100<<10))
	e.upload(t, a, "docs", f)
	e.mustPush(t, a, "docs", "f", nil, f)
	if e.srv.Pins().Len() != 0 {
		t.Fatal("pins left after the commit")
	}
	// Another session asks about the same chunks and holds them until it
	// ends; two sessions pinning the same chunk keep it pinned until both
	// release it.
	b1, b2 := e.client(t, "b1"), e.client(t, "b2")
	e.join(t, b1, "docs")
	e.join(t, b2, "docs")
	for _, s := range []*syncproto.Session{b1, b2} {
		if _, err := e.srv.HaveChunks(ctx, s, "docs", f.ids()); err != nil {
			t.Fatal(err)
		}
	}
	snap := e.srv.Pins().Snapshot()
	if len(snap) != len(f.chunks) {
		t.Errorf("snapshot has %d chunks, want %d", len(snap), len(f.chunks))
	}
	e.srv.SessionEnded(b1)
	if !e.srv.Pins().Pinned(f.ids()[0]) {
		t.Error("chunk unpinned while another session holds it")
	}
	e.srv.SessionEnded(b2)
	if e.srv.Pins().Pinned(f.ids()[0]) || e.srv.Pins().Len() != 0 {
		t.Error("pins survive the end of every session")
	}
	// HaveChunks does not pin what is absent.
	absent := cas.Sum([]byte("absent"))
	present, err := e.srv.HaveChunks(ctx, a, "docs", []cas.ID{absent, f.ids()[0]})
	if err != nil || present[0] || !present[1] || e.srv.Pins().Pinned(absent) {
		t.Errorf("HaveChunks = %v, %v; absent pinned: %v", present, err, e.srv.Pins().Pinned(absent))
	}
}

func TestPinSetBound(t *testing.T) {
	p := NewPins()
	s := p.NewSet()
	ids := make([]cas.ID, MaxPinsPerSession+10)
	for i := range ids {
		ids[i][0], ids[i][1], ids[i][2] = byte(i), byte(i>>8), byte(i>>16)
	}
	if held := s.Add(ids...); held != MaxPinsPerSession || s.Len() != MaxPinsPerSession || p.Len() != MaxPinsPerSession {
		t.Errorf("held %d, set %d, registry %d; want the bound %d", held, s.Len(), p.Len(), MaxPinsPerSession)
	}
	s.Release(ids[0])
	if p.Pinned(ids[0]) || s.Len() != MaxPinsPerSession-1 {
		t.Error("release did not unpin")
	}
	s.ReleaseAll()
	if p.Len() != 0 || s.Len() != 0 {
		t.Error("release all left pins")
	}
}

func TestBoundedSetForgetsOldest(t *testing.T) {
	b := newBoundedSet(3)
	var ids []cas.ID
	for i := range 3000 {
		id := cas.Sum([]byte{byte(i), byte(i >> 8)})
		ids = append(ids, id)
		b.add(id, nil)
		b.add(id, nil) // re-adding is a no-op
	}
	for i, id := range ids {
		if want := i >= len(ids)-3; b.has(id) != want {
			t.Fatalf("id %d: has = %v, want %v", i, !want, want)
		}
	}
	if len(b.order)-b.head != 3 || len(b.order) > 2100 {
		t.Errorf("order keeps %d entries (head %d): not compacted", len(b.order), b.head)
	}
}

// TestPrepareBatchHintsGoStale decides batch items whose lookups were
// taken before other commits: a head that appeared since makes the item
// a conflict, not an overwrite, and a chunk that arrived since is found.
func TestPrepareBatchHintsGoStale(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	a, b := e.client(t, "a"), e.client(t, "b")
	e.root(t, a, "docs")
	e.join(t, b, "docs")
	mine, theirs := newFile(t, []byte("alice's small file")), newFile(t, []byte("bob's small file"))
	late := newFile(t, []byte("uploaded after the lookups"))
	e.upload(t, a, "docs", mine)
	items := []syncproto.BatchItem{
		{Request: request("docs", "raced", nil, mine), Chunks: mine.refs},
		{Request: request("docs", "late", nil, late), Chunks: late.refs},
	}
	propose := e.srv.PrepareBatch(ctx, a, "docs", items)

	// After the lookups: bob commits "raced", and the chunk of "late" arrives.
	h := e.mustPush(t, b, "docs", "raced", nil, theirs)
	e.upload(t, a, "docs", late)

	if _, err := propose(ctx, items[0].Request, items[0].Chunks); !errors.Is(err, syncproto.ErrConflict) {
		t.Fatalf("item whose head appeared after the lookups: err = %v, want ErrConflict", err)
	}
	root, err := e.srv.db.RootByName(ctx, "docs")
	if err != nil {
		t.Fatal(err)
	}
	head, err := e.srv.db.Head(ctx, root.ID, "raced")
	if err != nil || head.Seq != h.GetSeq() || head.Hash != theirs.hash {
		t.Errorf("head of raced = %+v, %v: want bob's version %d kept", head, err, h.GetSeq())
	}
	resp, err := propose(ctx, items[1].Request, items[1].Chunks)
	if err != nil || resp.GetOutcome() != syncpb.CommitResponse_OUTCOME_COMMITTED {
		t.Fatalf("item whose chunk arrived after the lookups: %v, %v", resp, err)
	}
}

// TestPrepareBatchFoundChunkStillChecked gives a batch item a list whose
// size lies about the chunk the lookups found: it is refused as a lone
// proposal would be.
func TestPrepareBatchFoundChunkStillChecked(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	a := e.client(t, "a")
	e.root(t, a, "docs")
	f := newFile(t, []byte("one small chunk"))
	e.upload(t, a, "docs", f)
	refs := slices.Clone(f.refs)
	refs[0].Size++
	items := []syncproto.BatchItem{{Request: request("docs", "f", nil, f), Chunks: refs}}
	items[0].Request.Size = int64(refs[0].Size)
	propose := e.srv.PrepareBatch(ctx, a, "docs", items)
	if _, err := propose(ctx, items[0].Request, refs); !errors.Is(err, syncproto.ErrBadRequest) {
		t.Fatalf("lying size: err = %v, want ErrBadRequest", err)
	}
}

// ChunkListBatch answers each item as ChunkList would: lists of versions
// the session can reach (whose chunks it may then download), NotFound or
// a path error for the others, and every item refused outside the
// session's roots.
func TestChunkListBatch(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	a, b, stranger := e.client(t, "a"), e.client(t, "b"), e.client(t, "c")
	e.root(t, a, "docs")
	e.join(t, b, "docs")
	x, y := newFile(t, randomData(1, 200<<10)), newFile(t, []byte("small"))
	e.mustPush(t, a, "docs", "x", nil, x)
	e.mustPush(t, a, "docs", "d/y", nil, y)

	if err := e.srv.GetChunks(ctx, b, "docs", x.ids(), func(syncproto.Chunk) error { return nil }); err == nil {
		t.Fatal("b downloaded x's chunks before any chunk list named them")
	}
	res := e.srv.ChunkListBatch(ctx, b, "docs", []syncproto.ChunkListItem{
		{Path: "x", Hash: x.hash},
		{Path: "x", Hash: y.hash}, // a version of another path
		{Path: "d/y", Hash: y.hash},
		{Path: "../y", Hash: y.hash},
	})
	if len(res) != 4 {
		t.Fatalf("%d results for 4 items", len(res))
	}
	for i, f := range map[int]file{0: x, 2: y} {
		if res[i].Err != nil || res[i].Size != int64(len(f.data)) || !slices.Equal(res[i].Chunks, f.refs) {
			t.Errorf("item %d: %d bytes, %d chunks, %v", i, res[i].Size, len(res[i].Chunks), res[i].Err)
		}
	}
	if !errors.Is(res[1].Err, syncproto.ErrNotFound) {
		t.Errorf("a hash that is not a version of the path: %v, want ErrNotFound", res[1].Err)
	}
	if res[3].Err == nil {
		t.Error("an escaping path got a chunk list")
	}
	// The batch made x's chunks reachable for b, as ChunkList does.
	fetched := 0
	if err := e.srv.GetChunks(ctx, b, "docs", x.ids(), func(syncproto.Chunk) error { fetched++; return nil }); err != nil || fetched != len(x.refs) {
		t.Errorf("GetChunks after the batch: %d of %d chunks, %v", fetched, len(x.refs), err)
	}
	for i, r := range e.srv.ChunkListBatch(ctx, stranger, "docs", []syncproto.ChunkListItem{{Path: "x", Hash: x.hash}, {Path: "d/y", Hash: y.hash}}) {
		if !errors.Is(r.Err, syncproto.ErrForbidden) && !errors.Is(r.Err, syncproto.ErrNotFound) || r.Chunks != nil {
			t.Errorf("item %d for a client outside the root: %+v", i, r)
		}
	}
}

// HeadsPage follows the feed a page at a time, from 0 for a full listing:
// every path once, at most limit per page, more until the last, and a path
// changed between pages comes again in a later one.
func TestHeadsPage(t *testing.T) {
	e := newEnv(t)
	e.srv.headsPart = 2
	ctx := context.Background()
	a := e.client(t, "a")
	e.root(t, a, "docs")
	heads := e.pushLetters(t, a, 7)
	page := func(after uint64, limit uint32) (map[string]uint64, uint64, bool) {
		t.Helper()
		got := map[string]uint64{}
		resume, more, err := e.srv.HeadsPage(ctx, a, &syncpb.HeadsRequest{Root: "docs", AfterSeq: after, Limit: limit}, func(hs []*syncpb.FileHead) error {
			for _, h := range hs {
				got[h.GetPath()] = h.GetSeq()
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		return got, resume, more
	}
	p1, resume, more := page(0, 3)
	if len(p1) != 3 || !more || resume != 3 {
		t.Fatalf("first page: %v, resume %d, more %v; want 3 heads, resume 3, more", p1, resume, more)
	}
	// fa, listed already, changes: it moves past the pages to come.
	heads["fa"] = e.mustPush(t, a, "docs", "fa", heads["fa"], newFile(t, []byte("x")))
	p2, resume, more := page(resume, 3)
	if len(p2) != 3 || !more || resume != 6 {
		t.Fatalf("second page: %v, resume %d, more %v", p2, resume, more)
	}
	p3, resume, more := page(resume, 3)
	if more || resume != 8 || len(p3) != 2 || p3["fa"] != 8 || p3["fg"] != 7 {
		t.Fatalf("last page: %v, resume %d, more %v; want fg and fa (at 8), resume 8 (the root's seq), no more", p3, resume, more)
	}
	for _, p := range []string{"fb", "fc", "fd", "fe", "ff"} {
		if _, in1 := p1[p]; !in1 && p2[p] == 0 {
			t.Errorf("%s in no page", p)
		}
	}
	// A page that ends exactly at the feed's end says no more.
	if all, resume, more := page(0, 7); len(all) != 7 || more || resume != 8 {
		t.Errorf("a page of exactly the rest: %d heads, resume %d, more %v", len(all), resume, more)
	}
	// Heads ignores the limit: every head.
	all, _, _ := e.heads(t, a, "docs", 0)
	if len(all) != 7 {
		t.Errorf("Heads with no paging: %d heads", len(all))
	}
}

// pushLetters commits n one-byte files fa, fb, … to root "docs" and
// returns their heads.
func (e *env) pushLetters(t *testing.T, sess *syncproto.Session, n int) map[string]*syncpb.FileHead {
	t.Helper()
	heads := make(map[string]*syncpb.FileHead)
	for i := range n {
		p := "f" + string(rune('a'+i))
		heads[p] = e.mustPush(t, sess, "docs", p, nil, newFile(t, []byte{byte(i)}))
	}
	return heads
}
