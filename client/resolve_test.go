package client

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/quic-s/quics/cas"
	"github.com/quic-s/quics/syncproto"
	"github.com/quic-s/quics/syncproto/syncpb"
)

// fakeServer is an in-memory server side for one root: the chunks and
// chunk lists it holds, its heads, and a propose rule each test sets. It
// implements Remote and Resolver.
type fakeServer struct {
	t *testing.T

	mu      sync.Mutex
	chunks  map[cas.ID][]byte
	lists   map[cas.ID][]syncproto.ChunkRef
	seq     uint64
	heads   map[string]*syncpb.FileHead
	propose func(req *syncpb.ProposeRequest) (*syncpb.CommitResponse, error)
	resolve func(path, keep string) (*syncpb.FileHead, error)
	fetched int // chunks sent by GetChunks
}

func newFakeServer(t *testing.T) *fakeServer {
	s := &fakeServer{t: t, chunks: map[cas.ID][]byte{}, lists: map[cas.ID][]syncproto.ChunkRef{}, heads: map[string]*syncpb.FileHead{}}
	s.propose = s.commit
	return s
}

// store keeps data's chunks (cut as the client cuts them) and returns its
// content hash.
func (s *fakeServer) store(data []byte) cas.ID {
	s.t.Helper()
	ch, err := newContentHasher(testParams)
	if err != nil {
		s.t.Fatal(err)
	}
	h, err := ch.hashChunks(context.Background(), bytes.NewReader(data))
	if err != nil {
		s.t.Fatal(err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	var off int
	for _, c := range h.chunks {
		s.chunks[c.ID] = data[off : off+int(c.Size)]
		off += int(c.Size)
	}
	s.lists[h.hash] = h.chunks
	return h.hash
}

// setHead makes data (nil: a deletion) the next version of path.
func (s *fakeServer) setHead(path string, data []byte) *syncpb.FileHead {
	s.t.Helper()
	h := &syncpb.FileHead{Path: path, Mode: 0o644, Mtime: time.Now().UnixNano(), Deleted: data == nil}
	if data != nil {
		id := s.store(data)
		h.Hash, h.Size = id[:], int64(len(data))
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.seq++
	h.Seq = s.seq
	s.heads[path] = h
	return h
}

// commit is the default propose rule: every proposal is a fast-forward.
func (s *fakeServer) commit(req *syncpb.ProposeRequest) (*syncpb.CommitResponse, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.seq++
	h := &syncpb.FileHead{Path: req.GetPath(), Seq: s.seq, Hash: req.GetHash(), Size: req.GetSize(),
		Mode: req.GetMode(), Mtime: req.GetMtime(), Deleted: req.GetDeleted()}
	s.heads[req.GetPath()] = h
	return &syncpb.CommitResponse{Outcome: syncpb.CommitResponse_OUTCOME_COMMITTED, Head: h}, nil
}

func (s *fakeServer) Heads(context.Context, string, uint64) ([]*syncpb.FileHead, uint64, error) {
	return nil, 0, nil // nothing new: these tests drive changes through proposals
}

// headsAfter returns the heads changed after seq after, and the last seq,
// for the fakes whose pulls see the heads set here.
func (s *fakeServer) headsAfter(after uint64) ([]*syncpb.FileHead, uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []*syncpb.FileHead
	for _, h := range s.heads {
		if h.GetSeq() > after {
			out = append(out, h)
		}
	}
	return out, s.seq
}

func (s *fakeServer) ChunkList(_ context.Context, _, path string, hash cas.ID) (int64, []syncproto.ChunkRef, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	refs, ok := s.lists[hash]
	if !ok {
		return 0, nil, fmt.Errorf("%w: %s of %q", syncproto.ErrNotFound, hash.Short(), path)
	}
	var size int64
	for _, c := range refs {
		size += int64(c.Size)
	}
	return size, refs, nil
}

func (s *fakeServer) GetChunks(_ context.Context, _ string, ids []cas.ID, fn func(syncproto.Chunk) error) error {
	for _, id := range ids {
		s.mu.Lock()
		data, ok := s.chunks[id]
		s.fetched++
		s.mu.Unlock()
		if !ok {
			return fmt.Errorf("%w: chunk %s", syncproto.ErrNotFound, id.Short())
		}
		if err := fn(syncproto.Chunk{Codec: syncproto.ChunkRaw, ID: id, RawLen: len(data), Data: bytes.Clone(data)}); err != nil {
			return err
		}
	}
	return nil
}

func (s *fakeServer) HaveChunks(_ context.Context, _ string, ids []cas.ID) ([]bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	have := make([]bool, len(ids))
	for i, id := range ids {
		_, have[i] = s.chunks[id]
	}
	return have, nil
}

func (s *fakeServer) PutChunks(_ context.Context, _ string, chunks []syncproto.Chunk) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, c := range chunks {
		data, err := cas.Stored{Codec: cas.Codec(c.Codec), Data: c.Data, RawLen: c.RawLen}.Decode(c.ID)
		if errors.Is(err, cas.ErrHashMismatch) {
			return fmt.Errorf("%w: chunk %s", syncproto.ErrHashMismatch, c.ID) // as the server answers
		}
		if err != nil {
			return err
		}
		s.chunks[c.ID] = bytes.Clone(data)
	}
	return nil
}

func (s *fakeServer) Propose(_ context.Context, req *syncpb.ProposeRequest, chunks []syncproto.ChunkRef) (*syncpb.CommitResponse, error) {
	if !req.GetDeleted() {
		id, err := cas.IDFromBytes(req.GetHash())
		if err != nil {
			return nil, err
		}
		s.mu.Lock()
		s.lists[id] = chunks
		s.mu.Unlock()
	}
	return s.propose(req)
}

func (s *fakeServer) WireStats() (uint64, uint64) { return 0, 0 }

func (s *fakeServer) ListConflicts(context.Context, string, string) ([]*syncpb.Conflict, error) {
	return nil, nil
}

func (s *fakeServer) ResolveConflict(_ context.Context, _, path, keep string) (*syncpb.FileHead, error) {
	return s.resolve(path, keep)
}

func (s *fakeServer) History(context.Context, string, string, uint32) ([]*syncpb.HistoryEntry, error) {
	return nil, nil
}

func (s *fakeServer) Restore(_ context.Context, _, path, _ string) (*syncpb.FileHead, bool, error) {
	h, err := s.resolve(path, "")
	return h, err == nil, err
}

// supersedeWith makes every proposal answer superseded by head.
func (s *fakeServer) supersedeWith(head *syncpb.FileHead) {
	s.propose = func(*syncpb.ProposeRequest) (*syncpb.CommitResponse, error) {
		return &syncpb.CommitResponse{Outcome: syncpb.CommitResponse_OUTCOME_SUPERSEDED, Head: head}, nil
	}
}

// syncedFile sets up a root whose file path the server accepted with
// content base, and returns the engine, the root directory and the
// server.
func syncedFile(t *testing.T, path string, base []byte) (*Engine, *fakeServer, *Home, string) {
	t.Helper()
	h, dir := testRoot(t, testParams)
	srv := newFakeServer(t)
	var w warnings
	eng := NewEngine(h.State(), srv, EngineOptions{Warn: w.add, Scan: ScanOptions{Now: laterClock}})
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("warnings: %v", w.list)
		}
	})
	writeFile(t, dir, path, base)
	if res, err := eng.SyncRoot(context.Background(), "docs"); err != nil || res.FilesUploaded != 1 {
		t.Fatalf("first sync: %+v, %v", res, err)
	}
	return eng, srv, h, dir
}

func readLocalFile(t *testing.T, dir, path string) ([]byte, bool) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, filepath.FromSlash(path)))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, false
	}
	if err != nil {
		t.Fatal(err)
	}
	return b, true
}

func TestSupersededEditTakesHead(t *testing.T) {
	ctx := context.Background()
	eng, srv, h, dir := syncedFile(t, "notes.txt", []byte("base\n"))
	// The file was in conflict and the resolution kept another side
	// while this client was away; its own edit is in the history.
	writeFile(t, dir, "notes.txt", randomBytes(1, 9000))
	chosen := randomBytes(2, 7000)
	head := srv.setHead("notes.txt", chosen)
	srv.supersedeWith(head)

	res, err := eng.SyncRoot(ctx, "docs")
	if err != nil {
		t.Fatal(err)
	}
	if res.Superseded != 1 || res.FilesDownloaded != 1 || res.Conflicts != 0 || res.FilesUploaded != 0 {
		t.Fatalf("pass: %+v", res.Stats)
	}
	if len(res.SupersededList) != 1 || res.SupersededList[0] != (Superseded{Root: "docs", Path: "notes.txt", Seq: head.GetSeq()}) {
		t.Fatalf("superseded list: %+v", res.SupersededList)
	}
	if got, _ := readLocalFile(t, dir, "notes.txt"); !bytes.Equal(got, chosen) {
		t.Fatalf("local file holds %d bytes, want the head's %d", len(got), len(chosen))
	}
	rec, err := h.State().File(ctx, "docs", "notes.txt")
	if err != nil {
		t.Fatal(err)
	}
	if rec.Pending || rec.BaseSeq != head.GetSeq() || rec.Hash != cas.Sum(chosen) || rec.BaseHash != cas.Sum(chosen) {
		t.Fatalf("record: %+v", rec)
	}
	// Converged: the next pass proposes nothing.
	proposals := 0
	srv.propose = func(req *syncpb.ProposeRequest) (*syncpb.CommitResponse, error) {
		proposals++
		return srv.commit(req)
	}
	if res, err := eng.SyncRoot(ctx, "docs"); err != nil || proposals != 0 || res.FilesDownloaded != 0 {
		t.Fatalf("second pass: %+v, %v, %d proposals", res.Stats, err, proposals)
	}
}

func TestSupersededDeletionRestoresHead(t *testing.T) {
	ctx := context.Background()
	eng, srv, h, dir := syncedFile(t, "a/b.txt", []byte("base\n"))
	if err := os.Remove(filepath.Join(dir, "a", "b.txt")); err != nil {
		t.Fatal(err)
	}
	chosen := []byte("someone's edit, which a resolution kept over the deletion\n")
	srv.supersedeWith(srv.setHead("a/b.txt", chosen))
	res, err := eng.SyncRoot(ctx, "docs")
	if err != nil {
		t.Fatal(err)
	}
	if res.Superseded != 1 || res.FilesDownloaded != 1 {
		t.Fatalf("pass: %+v", res.Stats)
	}
	if got, ok := readLocalFile(t, dir, "a/b.txt"); !ok || !bytes.Equal(got, chosen) {
		t.Fatalf("local file: %q (exists %v)", got, ok)
	}
	if rec, err := h.State().File(ctx, "docs", "a/b.txt"); err != nil || rec.Pending || rec.Deleted {
		t.Fatalf("record: %+v, %v", rec, err)
	}
}

func TestSupersededByDeletionRemovesFile(t *testing.T) {
	ctx := context.Background()
	eng, srv, h, dir := syncedFile(t, "x.txt", []byte("base\n"))
	writeFile(t, dir, "x.txt", []byte("an edit the deletion won over\n"))
	srv.supersedeWith(srv.setHead("x.txt", nil))
	res, err := eng.SyncRoot(ctx, "docs")
	if err != nil {
		t.Fatal(err)
	}
	if res.Superseded != 1 || res.FilesDeleted != 1 {
		t.Fatalf("pass: %+v", res.Stats)
	}
	if _, ok := readLocalFile(t, dir, "x.txt"); ok {
		t.Fatal("the local file is still there")
	}
	if _, err := h.State().File(ctx, "docs", "x.txt"); !errors.Is(err, ErrFileNotFound) {
		t.Fatalf("record: %v, want none", err)
	}
}

// A file edited again between the scan and the superseded answer keeps
// that edit: it is not the content the server holds, so the next pass
// pushes it and the server decides.
func TestSupersededKeepsNewerLocalEdit(t *testing.T) {
	ctx := context.Background()
	eng, srv, h, dir := syncedFile(t, "f.txt", []byte("base\n"))
	writeFile(t, dir, "f.txt", []byte("edit one, superseded\n"))
	head := srv.setHead("f.txt", []byte("the head\n"))
	newer := []byte("edit two, made while edit one was being proposed\n")
	srv.propose = func(*syncpb.ProposeRequest) (*syncpb.CommitResponse, error) {
		writeFile(t, dir, "f.txt", newer)
		return &syncpb.CommitResponse{Outcome: syncpb.CommitResponse_OUTCOME_SUPERSEDED, Head: head}, nil
	}
	res, err := eng.SyncRoot(ctx, "docs")
	if err != nil {
		t.Fatal(err)
	}
	if res.Superseded != 0 || res.FilesDownloaded != 0 || res.Skipped != 1 {
		t.Fatalf("pass: %+v", res.Stats)
	}
	if got, _ := readLocalFile(t, dir, "f.txt"); !bytes.Equal(got, newer) {
		t.Fatalf("local file: %q, want the newer edit", got)
	}
	if rec, err := h.State().File(ctx, "docs", "f.txt"); err != nil || !rec.Pending {
		t.Fatalf("record: %+v, %v; want still pending", rec, err)
	}
}

// A force-sync whose proposal of an unscanned edit is answered superseded
// takes the newer head the answer carries.
func TestForceSyncSupersededTakesNewestHead(t *testing.T) {
	ctx := context.Background()
	eng, srv, h, dir := syncedFile(t, "f.txt", []byte("base\n"))
	notice := srv.setHead("f.txt", []byte("the resolution's head\n"))
	writeFile(t, dir, "f.txt", []byte("an edit no scan has seen, but the server has in history\n"))
	newest := []byte("a head newer than the notice\n")
	newestHead := srv.setHead("f.txt", newest)
	srv.supersedeWith(newestHead)
	if err := eng.ForceSync(ctx, "docs", notice); err != nil {
		t.Fatal(err)
	}
	if got, _ := readLocalFile(t, dir, "f.txt"); !bytes.Equal(got, newest) {
		t.Fatalf("local file: %q, want the newest head", got)
	}
	if rec, err := h.State().File(ctx, "docs", "f.txt"); err != nil || rec.Pending || rec.BaseSeq != newestHead.GetSeq() {
		t.Fatalf("record: %+v, %v", rec, err)
	}
}

func TestResolveConflictReplacesLocalCandidate(t *testing.T) {
	ctx := context.Background()
	eng, srv, h, dir := syncedFile(t, "f.txt", []byte("base\n"))
	// This client's edit was refused as a conflict and kept as a candidate.
	mine := []byte("my side of the conflict\n")
	writeFile(t, dir, "f.txt", mine)
	srv.setHead("f.txt", []byte("the server's side\n"))
	srv.propose = func(*syncpb.ProposeRequest) (*syncpb.CommitResponse, error) { return nil, syncproto.ErrConflict }
	if res, err := eng.SyncRoot(ctx, "docs"); err != nil || res.Conflicts != 1 {
		t.Fatalf("conflicting pass: %+v, %v", res.Stats, err)
	}
	srv.propose = func(*syncpb.ProposeRequest) (*syncpb.CommitResponse, error) {
		t.Error("resolution proposed the local candidate again")
		return nil, syncproto.ErrConflict
	}
	chosen := []byte("the server's side\n")
	var gotKeep string
	srv.resolve = func(path, keep string) (*syncpb.FileHead, error) {
		gotKeep = keep
		return srv.setHead(path, chosen), nil
	}
	head, err := eng.ResolveConflict(ctx, "docs", "f.txt", "server")
	if err != nil {
		t.Fatal(err)
	}
	if gotKeep != "server" {
		t.Errorf("keep sent %q", gotKeep)
	}
	if got, _ := readLocalFile(t, dir, "f.txt"); !bytes.Equal(got, chosen) {
		t.Fatalf("local file: %q, want the kept side", got)
	}
	if rec, err := h.State().File(ctx, "docs", "f.txt"); err != nil || rec.Pending || rec.BaseSeq != head.GetSeq() {
		t.Fatalf("record: %+v, %v", rec, err)
	}

	// A head for another path is refused locally, and said so.
	srv.resolve = func(string, string) (*syncpb.FileHead, error) { return srv.setHead("other.txt", chosen), nil }
	head, err = eng.ResolveConflict(ctx, "docs", "f.txt", "server")
	var lu *LocalUpdateError
	if head == nil || !errors.As(err, &lu) || lu.Path != "f.txt" {
		t.Fatalf("mismatched head: %v, %v; want the head and a LocalUpdateError", head, err)
	}
	// A refusal of the server is returned as is.
	srv.resolve = func(string, string) (*syncpb.FileHead, error) { return nil, syncproto.ErrNotFound }
	if head, err := eng.ResolveConflict(ctx, "docs", "f.txt", "nobody"); head != nil || !errors.Is(err, syncproto.ErrNotFound) {
		t.Fatalf("refused resolution: %v, %v", head, err)
	}
}

func TestRollbackBringsBackDeletedFile(t *testing.T) {
	ctx := context.Background()
	old := randomBytes(5, 6000)
	eng, srv, _, dir := syncedFile(t, "gone.bin", old)
	if err := os.Remove(filepath.Join(dir, "gone.bin")); err != nil {
		t.Fatal(err)
	}
	if res, err := eng.SyncRoot(ctx, "docs"); err != nil || res.FilesDeleted != 1 {
		t.Fatalf("deletion: %+v, %v", res.Stats, err)
	}
	srv.resolve = func(path, _ string) (*syncpb.FileHead, error) { return srv.setHead(path, old), nil }
	head, committed, err := eng.Rollback(ctx, "docs", "gone.bin", cas.Sum(old).String()[:8])
	if err != nil || !committed || head.GetDeleted() {
		t.Fatalf("rollback: %v %v %v", head, committed, err)
	}
	if got, ok := readLocalFile(t, dir, "gone.bin"); !ok || !bytes.Equal(got, old) {
		t.Fatal("the rolled-back file is not back")
	}
}

func TestSaveVersion(t *testing.T) {
	ctx := context.Background()
	content := randomBytes(7, 20000)
	eng, srv, _, _ := syncedFile(t, "data.bin", content)
	id := cas.Sum(content)
	out := filepath.Join(t.TempDir(), "copy.bin")
	mtime := time.Date(2020, 1, 2, 3, 4, 5, 0, time.UTC)

	// Every chunk is in the local file: nothing is fetched.
	n, err := eng.SaveVersion(ctx, "docs", "data.bin", id, out, SaveOptions{Mode: 0o600, MTime: mtime})
	if err != nil || n != int64(len(content)) {
		t.Fatalf("SaveVersion: %d, %v", n, err)
	}
	if got, _ := os.ReadFile(out); !bytes.Equal(got, content) {
		t.Fatal("saved content differs")
	}
	if fi, err := os.Stat(out); err != nil || fi.Mode().Perm() != 0o600 || !fi.ModTime().Equal(mtime) {
		t.Fatalf("saved file: %v %v", fi, err)
	}
	if srv.fetched != 0 {
		t.Errorf("%d chunks fetched; the local file holds them all", srv.fetched)
	}

	// An existing destination is kept unless overwriting is asked for.
	other := []byte("other content, not in any local file\n")
	otherID := srv.store(other)
	if _, err := eng.SaveVersion(ctx, "docs", "data.bin", otherID, out, SaveOptions{}); !errors.Is(err, fs.ErrExist) {
		t.Fatalf("existing destination: %v, want ErrExist", err)
	}
	if got, _ := os.ReadFile(out); !bytes.Equal(got, content) {
		t.Fatal("the existing destination was changed")
	}
	if _, err := eng.SaveVersion(ctx, "docs", "data.bin", otherID, out, SaveOptions{Overwrite: true}); err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(out); !bytes.Equal(got, other) || srv.fetched == 0 {
		t.Fatalf("overwritten destination holds %q after %d fetches", got, srv.fetched)
	}

	// Content that does not hash to what was asked for is never written.
	bad := filepath.Join(t.TempDir(), "bad.bin")
	srv.mu.Lock()
	srv.lists[cas.Sum([]byte("claimed"))] = srv.lists[otherID]
	srv.mu.Unlock()
	if _, err := eng.SaveVersion(ctx, "docs", "data.bin", cas.Sum([]byte("claimed")), bad, SaveOptions{}); !errors.Is(err, syncproto.ErrHashMismatch) {
		t.Fatalf("wrong content: %v, want ErrHashMismatch", err)
	}
	if _, err := os.Lstat(bad); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("a failed download left %s: %v", bad, err)
	}
	entries, _ := os.ReadDir(filepath.Dir(bad))
	if len(entries) != 0 {
		t.Fatalf("a failed download left %v", entries)
	}
	if _, err := eng.SaveVersion(ctx, "docs", "data.bin", cas.ID{}, bad, SaveOptions{}); err == nil {
		t.Fatal("saved a deletion")
	}
}
