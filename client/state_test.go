package client

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/google/go-cmp/cmp"

	"github.com/quic-s/quics/cas"
	"github.com/quic-s/quics/chunker"
	"github.com/quic-s/quics/internal/kv"
	"github.com/quic-s/quics/internal/relpath"
	"github.com/quic-s/quics/syncproto"
)

func sampleRecord(path string, seed byte) FileRecord {
	return FileRecord{
		Path:     path,
		BaseSeq:  uint64(seed) * 10,
		BaseHash: cas.Sum([]byte{seed, 1}),
		Hash:     cas.Sum([]byte{seed, 2}),
		Chunks: []syncproto.ChunkRef{
			{ID: cas.Sum([]byte{seed, 3}), Size: 100},
			{ID: cas.Sum([]byte{seed, 4}), Size: 65536},
		},
		Stat:       FileStat{Size: 65636, Mode: 0o644, MTime: 1_700_000_000_123_456_789, CTime: 1_700_000_001_000_000_001, Inode: 42, Dev: 7},
		ScannedAt:  1_700_000_002_000_000_000,
		LastUpdate: uint64(seed),
		Pending:    seed%2 == 1,
	}
}

func collect(t *testing.T, st *State, root string, withChunks bool) []FileRecord {
	t.Helper()
	var recs []FileRecord
	if err := st.Files(context.Background(), root, withChunks, func(r FileRecord) error {
		recs = append(recs, r)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return recs
}

func TestStateSurvivesReopen(t *testing.T) {
	ctx := context.Background()
	home := t.TempDir()
	h := openTestHome(t, home)
	st := h.State()
	roots := []Root{
		{Name: "docs", Dir: "/home/u/docs", Chunking: chunker.DefaultParams, Cursor: 17, LastSync: time.Unix(0, 1_700_000_000_000_000_001)},
		{Name: "photos ünï", Dir: "/mnt/photos", Chunking: testParams},
	}
	for _, r := range roots {
		if err := st.PutRoot(ctx, r); err != nil {
			t.Fatal(err)
		}
	}
	recs := []FileRecord{sampleRecord("b/c", 1), sampleRecord("a", 2), sampleRecord("b", 3), {Path: "gone", BaseSeq: 4, Pending: true, Deleted: true, LastUpdate: 9}}
	if err := st.PutFiles(ctx, "docs", recs); err != nil {
		t.Fatal(err)
	}
	if err := st.PutFile(ctx, "photos ünï", sampleRecord("a", 5)); err != nil {
		t.Fatal(err)
	}
	if err := st.UpdateRoot(ctx, "docs", func(r *Root) error { r.Cursor = 18; return nil }); err != nil {
		t.Fatal(err)
	}
	roots[0].Cursor = 18
	h.Close()

	h = openTestHome(t, home)
	st = h.State()
	gotRoots, err := st.Roots(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(roots, gotRoots); diff != "" {
		t.Errorf("roots after reopen (-want +got):\n%s", diff)
	}
	// Path order, chunks loaded on request only.
	want := []FileRecord{recs[1], recs[2], recs[0], recs[3]}
	if diff := cmp.Diff(want, collect(t, st, "docs", true)); diff != "" {
		t.Errorf("files with chunks (-want +got):\n%s", diff)
	}
	for _, r := range collect(t, st, "docs", false) {
		if r.Chunks != nil {
			t.Errorf("%s: chunks loaded without asking", r.Path)
		}
	}
	// A root's records are not another's, even when one name prefixes another.
	if got := collect(t, st, "photos ünï", true); len(got) != 1 || got[0].Path != "a" || got[0].BaseSeq != 50 {
		t.Errorf("photos records: %+v", got)
	}
	var pending []string
	if err := st.PendingFiles(ctx, "docs", func(r FileRecord) error {
		pending = append(pending, r.Path)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"b", "b/c", "gone"}, pending); diff != "" {
		t.Errorf("pending (-want +got):\n%s", diff)
	}
}

func TestStateFileCRUD(t *testing.T) {
	ctx := context.Background()
	h, _ := testRoot(t, testParams)
	st := h.State()
	if _, err := st.File(ctx, "docs", "a"); !errors.Is(err, ErrFileNotFound) {
		t.Fatalf("missing file: %v", err)
	}
	rec := sampleRecord("a", 1)
	if err := st.PutFile(ctx, "docs", rec); err != nil {
		t.Fatal(err)
	}
	// Replacing with fewer chunks and no pending flag clears both.
	rec.Chunks, rec.Pending = nil, false
	if err := st.PutFile(ctx, "docs", rec); err != nil {
		t.Fatal(err)
	}
	got, err := st.File(ctx, "docs", "a")
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(rec, got); diff != "" {
		t.Errorf("replaced record (-want +got):\n%s", diff)
	}
	n := 0
	if err := st.PendingFiles(ctx, "docs", func(FileRecord) error { n++; return nil }); err != nil || n != 0 {
		t.Errorf("pending after clearing: %d, %v", n, err)
	}
	if err := st.DeleteFile(ctx, "docs", "a"); err != nil {
		t.Fatal(err)
	}
	if _, err := st.File(ctx, "docs", "a"); !errors.Is(err, ErrFileNotFound) {
		t.Errorf("after delete: %v", err)
	}
	if err := st.DeleteFile(ctx, "docs", "a"); err != nil {
		t.Errorf("deleting twice: %v", err)
	}
}

func TestStateRefusesBadInput(t *testing.T) {
	ctx := context.Background()
	h, _ := testRoot(t, testParams)
	st := h.State()
	for _, tc := range []struct {
		name string
		err  error
		want error
	}{
		{"empty root name", st.PutRoot(ctx, Root{Dir: "/x", Chunking: testParams}), ErrInvalidRootName},
		{"root name with NUL", st.PutRoot(ctx, Root{Name: "a\x00b", Dir: "/x", Chunking: testParams}), ErrInvalidRootName},
		{"relative dir", st.PutRoot(ctx, Root{Name: "r", Dir: "x", Chunking: testParams}), nil},
		{"bad params", st.PutRoot(ctx, Root{Name: "r", Dir: "/x", Chunking: chunker.Params{Min: 1, Avg: 3, Max: 2}}), chunker.ErrInvalidParams},
		{"invalid path", st.PutFile(ctx, "docs", FileRecord{Path: "../x"}), relpath.ErrInvalidPath},
		{"mode beyond permission bits", st.PutFile(ctx, "docs", FileRecord{Path: "x", Stat: FileStat{Mode: 0o4755}}), nil},
		{"unknown root", func() error { _, err := st.Root(ctx, "nope"); return err }(), ErrRootNotFound},
		{"update unknown root", st.UpdateRoot(ctx, "nope", func(*Root) error { return nil }), ErrRootNotFound},
		{"rename in update", st.UpdateRoot(ctx, "docs", func(r *Root) error { r.Name = "other"; return nil }), nil},
		{"delete unknown root", st.DeleteRoot(ctx, "nope"), ErrRootNotFound},
	} {
		if tc.err == nil || (tc.want != nil && !errors.Is(tc.err, tc.want)) {
			t.Errorf("%s: %v, want an error wrapping %v", tc.name, tc.err, tc.want)
		}
	}
}

func TestStateDeleteRoot(t *testing.T) {
	ctx := context.Background()
	h, dir := testRoot(t, testParams)
	st := h.State()
	if err := st.PutRoot(ctx, Root{Name: "docs2", Dir: dir, Chunking: testParams}); err != nil {
		t.Fatal(err)
	}
	for _, root := range []string{"docs", "docs2"} {
		if err := st.PutFiles(ctx, root, []FileRecord{sampleRecord("a", 1), sampleRecord("b", 3)}); err != nil {
			t.Fatal(err)
		}
	}
	baseKey := pathKey(prefixBase, "docs", "a")
	if err := st.update(ctx, func(txn *badger.Txn) error { return txn.Set(baseKey, []byte("kept")) }); err != nil {
		t.Fatal(err)
	}
	if err := st.DeleteRoot(ctx, "docs"); err != nil {
		t.Fatal(err)
	}
	if err := st.view(ctx, func(txn *badger.Txn) error {
		_, err := txn.Get(baseKey)
		return err
	}); !errors.Is(err, badger.ErrKeyNotFound) {
		t.Errorf("a kept base list survived DeleteRoot: %v", err)
	}
	if _, err := st.Root(ctx, "docs"); !errors.Is(err, ErrRootNotFound) {
		t.Errorf("deleted root: %v", err)
	}
	if got := collect(t, st, "docs2", false); len(got) != 2 {
		t.Errorf("the other root lost records: %d left", len(got))
	}
	// Re-creating the root starts empty.
	if err := st.PutRoot(ctx, Root{Name: "docs", Dir: dir, Chunking: testParams}); err != nil {
		t.Fatal(err)
	}
	if got := collect(t, st, "docs", false); len(got) != 0 {
		t.Errorf("re-created root has %d old records", len(got))
	}
}

func TestStateLeftoverRecordsClearedOnPutRoot(t *testing.T) {
	// An interrupted DeleteRoot leaves records without a root record.
	ctx := context.Background()
	h, dir := testRoot(t, testParams)
	st := h.State()
	if err := st.PutFile(ctx, "docs", sampleRecord("a", 1)); err != nil {
		t.Fatal(err)
	}
	if err := st.update(ctx, func(txn *badger.Txn) error { return txn.Delete(rootKey("docs")) }); err != nil {
		t.Fatal(err)
	}
	if err := st.PutRoot(ctx, Root{Name: "docs", Dir: dir, Chunking: testParams}); err != nil {
		t.Fatal(err)
	}
	if got := collect(t, st, "docs", false); len(got) != 0 {
		t.Errorf("leftover records survived: %v", got)
	}
}

func TestStateAccept(t *testing.T) {
	ctx := context.Background()
	h, _ := testRoot(t, testParams)
	st := h.State()
	rec := sampleRecord("f", 1) // pending, LastUpdate 1
	del := FileRecord{Path: "d", BaseSeq: 3, Pending: true, Deleted: true, LastUpdate: 4}
	if err := st.PutFiles(ctx, "docs", []FileRecord{rec, del}); err != nil {
		t.Fatal(err)
	}
	// Accepting an older proposal moves the base but keeps the newer change pending.
	if err := st.Accept(ctx, "docs", "f", 0, 20, cas.Sum([]byte("v20"))); err != nil {
		t.Fatal(err)
	}
	got, _ := st.File(ctx, "docs", "f")
	if got.BaseSeq != 20 || got.BaseHash != cas.Sum([]byte("v20")) || !got.Pending {
		t.Errorf("after accepting an older proposal: base %d pending %v", got.BaseSeq, got.Pending)
	}
	if err := st.Accept(ctx, "docs", "f", 1, 21, rec.Hash); err != nil {
		t.Fatal(err)
	}
	got, _ = st.File(ctx, "docs", "f")
	if got.BaseSeq != 21 || got.BaseHash != rec.Hash || got.Pending {
		t.Errorf("after accepting the current proposal: base %d pending %v", got.BaseSeq, got.Pending)
	}
	// An accepted deletion removes the record.
	if err := st.Accept(ctx, "docs", "d", 4, 22, cas.ID{}); err != nil {
		t.Fatal(err)
	}
	if _, err := st.File(ctx, "docs", "d"); !errors.Is(err, ErrFileNotFound) {
		t.Errorf("accepted deletion: %v", err)
	}
	if err := st.Accept(ctx, "docs", "nope", 1, 1, cas.ID{}); !errors.Is(err, ErrFileNotFound) {
		t.Errorf("accepting an unknown file: %v", err)
	}
}

// AcceptMany settles each path as Accept would, in one call.
func TestStateAcceptMany(t *testing.T) {
	ctx := context.Background()
	h, _ := testRoot(t, testParams)
	st := h.State()
	older := sampleRecord("older", 1)
	older.LastUpdate = 2 // changed again since it was proposed at 1
	current := sampleRecord("current", 1)
	del := FileRecord{Path: "gone", BaseSeq: 3, Pending: true, Deleted: true, LastUpdate: 4}
	if err := st.PutFiles(ctx, "docs", []FileRecord{older, current, del}); err != nil {
		t.Fatal(err)
	}
	err := st.AcceptMany(ctx, "docs", []Acceptance{
		{Path: "older", LastUpdate: 1, Seq: 10, Hash: cas.Sum([]byte("v10"))},
		{Path: "current", LastUpdate: 1, Seq: 11, Hash: current.Hash},
		{Path: "gone", LastUpdate: 4, Seq: 12},
	})
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := st.File(ctx, "docs", "older"); got.BaseSeq != 10 || !got.Pending {
		t.Errorf("older proposal: base %d pending %v, want 10 and still pending", got.BaseSeq, got.Pending)
	}
	if got, _ := st.File(ctx, "docs", "current"); got.BaseSeq != 11 || got.BaseHash != current.Hash || got.Pending || !slices.Equal(got.Chunks, current.Chunks) {
		t.Errorf("current proposal: base %d pending %v chunks %v, want 11, settled and its chunks kept", got.BaseSeq, got.Pending, got.Chunks)
	}
	var pending []string
	if err := st.PendingFiles(ctx, "docs", func(rec FileRecord) error {
		pending = append(pending, rec.Path)
		return nil
	}); err != nil || !slices.Equal(pending, []string{"older"}) {
		t.Errorf("pending after AcceptMany: %v, %v; want [older]", pending, err)
	}
	if _, err := st.File(ctx, "docs", "gone"); !errors.Is(err, ErrFileNotFound) {
		t.Errorf("accepted deletion: %v", err)
	}
	if err := st.AcceptMany(ctx, "docs", nil); err != nil {
		t.Errorf("nothing to accept: %v", err)
	}
}

func TestStateManyRecordsInBatches(t *testing.T) {
	ctx := context.Background()
	h, _ := testRoot(t, testParams)
	st := h.State()
	n := 3*batchSize + 7
	recs := make([]FileRecord, n)
	for i := range recs {
		recs[i] = sampleRecord(fmt.Sprintf("dir/%05d", i), byte(i))
	}
	if err := st.PutFiles(ctx, "docs", recs); err != nil {
		t.Fatal(err)
	}
	if got := collect(t, st, "docs", false); len(got) != n {
		t.Errorf("%d records, want %d", len(got), n)
	}
}

func TestStateSchemaVersion(t *testing.T) {
	dir := t.TempDir()
	db, err := kv.Open(dir, kv.Options{SmallFootprint: true})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := openState(db); err != nil {
		t.Fatal(err)
	}
	if err := db.Update(func(txn *badger.Txn) error { return txn.Set(schemaKey, encodeSchema(SchemaVersion+1)) }); err != nil {
		t.Fatal(err)
	}
	if _, err := openState(db); !errors.Is(err, ErrSchemaVersion) {
		t.Errorf("newer schema: %v, want ErrSchemaVersion", err)
	}
	if err := db.Update(func(txn *badger.Txn) error { return txn.Delete(schemaKey) }); err != nil {
		t.Fatal(err)
	}
	if err := db.Update(func(txn *badger.Txn) error { return txn.Set(rootKey("x"), []byte{1}) }); err != nil {
		t.Fatal(err)
	}
	if _, err := openState(db); !errors.Is(err, ErrSchemaVersion) {
		t.Errorf("records without a schema key: %v, want ErrSchemaVersion", err)
	}
}

func TestStateCorruptRecord(t *testing.T) {
	ctx := context.Background()
	h, _ := testRoot(t, testParams)
	st := h.State()
	if err := st.update(ctx, func(txn *badger.Txn) error {
		return txn.Set(pathKey(prefixFile, "docs", "bad"), []byte{1, 0xff})
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := st.File(ctx, "docs", "bad"); !errors.Is(err, ErrCorrupt) {
		t.Errorf("corrupt record: %v, want ErrCorrupt", err)
	}
	if err := st.Files(ctx, "docs", false, func(FileRecord) error { return nil }); !errors.Is(err, ErrCorrupt) {
		t.Errorf("iterating over a corrupt record: %v, want ErrCorrupt", err)
	}
}

func TestStatePendingPages(t *testing.T) {
	ctx := context.Background()
	h, _ := testRoot(t, testParams)
	st := h.State()
	paths := []string{"a", "a/b", "a0", "b", "c", "d"}
	for i, p := range paths {
		rec := sampleRecord(p, byte(i+1)) // two chunks each
		rec.Pending = p != "a0"
		if err := st.PutFile(ctx, "docs", rec); err != nil {
			t.Fatal(err)
		}
	}
	pages := func(maxFiles, maxChunks int) (out [][]string) {
		after := ""
		for range len(paths) + 1 {
			recs, more, err := st.PendingPage(ctx, "docs", after, maxFiles, maxChunks)
			if err != nil {
				t.Fatal(err)
			}
			var page []string
			for _, r := range recs {
				if len(r.Chunks) != 2 {
					t.Errorf("%s: %d chunks, want its 2", r.Path, len(r.Chunks))
				}
				page = append(page, r.Path)
			}
			out = append(out, page)
			if !more {
				return out
			}
			after = page[len(page)-1]
		}
		t.Fatal("pages never end")
		return nil
	}
	tests := []struct {
		name                string
		maxFiles, maxChunks int
		want                [][]string
	}{
		{"one page", 100, 100, [][]string{{"a", "a/b", "b", "c", "d"}}},
		{"by files", 2, 100, [][]string{{"a", "a/b"}, {"b", "c"}, {"d"}}},
		{"by chunks", 100, 5, [][]string{{"a", "a/b"}, {"b", "c"}, {"d"}}},
		{"a record larger than a page", 100, 1, [][]string{{"a"}, {"a/b"}, {"b"}, {"c"}, {"d"}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if diff := cmp.Diff(tc.want, pages(tc.maxFiles, tc.maxChunks)); diff != "" {
				t.Errorf("pages (-want +got):\n%s", diff)
			}
		})
	}
	if recs, more, err := st.PendingPage(ctx, "docs", "d", 10, 10); err != nil || more || len(recs) != 0 {
		t.Errorf("after the last: %d records, more %v, %v", len(recs), more, err)
	}
}
