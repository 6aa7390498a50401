package manifest

import (
	"context"
	"errors"
	"slices"
	"testing"

	"github.com/dgraph-io/badger/v4"

	"github.com/quic-s/quics/cas"
)

func collectRefs(t *testing.T, db *DB) ([]Ref, Watermark) {
	t.Helper()
	var refs []Ref
	wm, err := db.ForEachRef(context.Background(), func(r Ref) error {
		refs = append(refs, r)
		return nil
	})
	if err != nil {
		t.Fatalf("ForEachRef: %v", err)
	}
	return refs, wm
}

func TestForEachRef(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	owner := e.client(t, "owner")
	docs := e.root(t, "docs", owner)
	pics := e.root(t, "pics", owner)
	gone := e.root(t, "gone", owner)

	a1 := mustCommit(t, e.db, proposal(docs.ID, "a", nil, newContent("a1"), owner.ID))
	a2 := mustCommit(t, e.db, proposal(docs.ID, "a", &a1, newContent("a2"), owner.ID))
	mustCommit(t, e.db, deletion(docs.ID, "a", a2, owner.ID))
	mustCommit(t, e.db, proposal(pics.ID, "p", nil, newContent("p1"), owner.ID))
	mustCommit(t, e.db, proposal(gone.ID, "g", nil, newContent("g1"), owner.ID))
	cand := newContent("candidate")
	if err := e.db.PutChunkList(ctx, cand.hash, cand.chunks); err != nil {
		t.Fatal(err)
	}
	if _, err := e.db.AddCandidate(ctx, pics.ID, "p", Candidate{Kind: CandidateClient, Client: owner.ID, Hash: cand.hash, Size: cand.size, BaseSeq: 0}); err != nil {
		t.Fatal(err)
	}
	if err := e.db.RemoveRoot(ctx, gone.ID); err != nil {
		t.Fatal(err)
	}
	// Leftovers of an interrupted RemoveRoot: a version under the dead
	// root's id.
	if err := e.kv.Update(func(txn *badger.Txn) error {
		return putVersionRecord(txn, gone.ID, "g", Version{Seq: 1, Hash: newContent("g1").hash, Size: 2})
	}); err != nil {
		t.Fatal(err)
	}

	refs, wm := collectRefs(t, e.db)
	want := []Ref{
		{Root: docs.ID, Path: "a", Seq: 1, Hash: newContent("a1").hash, Size: 2},
		{Root: docs.ID, Path: "a", Seq: 2, Hash: newContent("a2").hash, Size: 2},
		{Root: docs.ID, Path: "a", Seq: 3, Deleted: true},
		{Root: pics.ID, Path: "p", Seq: 1, Hash: newContent("p1").hash, Size: 2},
		{Root: pics.ID, Path: "p", Candidate: true, Hash: cand.hash, Size: cand.size},
	}
	if !slices.Equal(refs, want) {
		t.Fatalf("refs =\n%+v\nwant\n%+v", refs, want)
	}
	if len(wm) != 2 || wm[docs.ID] != 3 || wm[pics.ID] != 1 {
		t.Fatalf("watermark = %v", wm)
	}
	if refs[2].HasChunks() || !refs[0].HasChunks() {
		t.Fatal("HasChunks wrong for a deletion or a content")
	}

	stop := errors.New("stop")
	if _, err := e.db.ForEachRef(ctx, func(Ref) error { return stop }); !errors.Is(err, stop) {
		t.Fatalf("ForEachRef error from fn: %v", err)
	}
}

func TestForEachChunkList(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	var contents []content
	for _, s := range []string{"one", "two", "three"} {
		c := newContent(s)
		contents = append(contents, c)
		if err := e.db.PutChunkList(ctx, c.hash, c.chunks); err != nil {
			t.Fatal(err)
		}
	}
	got := map[cas.ID][]Chunk{}
	err := e.db.ForEachChunkList(ctx, func(h cas.ID) bool { return h != contents[1].hash }, func(h cas.ID, cs []Chunk) error {
		got[h] = cs
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || !slices.Equal(got[contents[0].hash], contents[0].chunks) || !slices.Equal(got[contents[2].hash], contents[2].chunks) {
		t.Fatalf("lists = %v", got)
	}
	n := 0
	if err := e.db.ForEachChunkList(ctx, nil, func(cas.ID, []Chunk) error { n++; return nil }); err != nil || n != 3 {
		t.Fatalf("all lists: %d, %v", n, err)
	}
}

// refsSinceIn runs RefsSince in a fresh read-write transaction that is
// discarded.
func refsSinceIn(t *testing.T, e *testEnv, wm Watermark) ([]Ref, map[cas.ID][]Chunk, Watermark) {
	t.Helper()
	txn := e.kv.NewTransaction(true)
	defer txn.Discard()
	var refs []Ref
	lists := map[cas.ID][]Chunk{}
	now, err := e.db.RefsSince(txn, wm, func(r Ref, cs []Chunk) error {
		refs = append(refs, r)
		if cs != nil {
			lists[r.Hash] = cs
		}
		return nil
	})
	if err != nil {
		t.Fatalf("RefsSince: %v", err)
	}
	return refs, lists, now
}

func TestRefsSince(t *testing.T) {
	e := newEnv(t)
	owner := e.client(t, "owner")
	docs := e.root(t, "docs", owner)
	a1 := mustCommit(t, e.db, proposal(docs.ID, "a", nil, newContent("a1"), owner.ID))
	mustCommit(t, e.db, proposal(docs.ID, "b", nil, newContent("b1"), owner.ID))
	_, wm := collectRefs(t, e.db)

	if refs, _, now := refsSinceIn(t, e, wm); len(refs) != 0 || now[docs.ID] != 2 {
		t.Fatalf("nothing committed: refs %v, watermark %v", refs, now)
	}

	// After the walk: two changes of one path, a deletion, a new root.
	a2 := mustCommit(t, e.db, proposal(docs.ID, "a", &a1, newContent("a2"), owner.ID))
	a3 := mustCommit(t, e.db, proposal(docs.ID, "a", &a2, newContent("a3"), owner.ID))
	mustCommit(t, e.db, deletion(docs.ID, "a", a3, owner.ID))
	pics := e.root(t, "pics", owner)
	mustCommit(t, e.db, proposal(pics.ID, "p", nil, newContent("p1"), owner.ID))

	refs, lists, now := refsSinceIn(t, e, wm)
	want := []Ref{
		{Root: docs.ID, Path: "a", Seq: 3, Hash: newContent("a2").hash, Size: 2},
		{Root: docs.ID, Path: "a", Seq: 4, Hash: newContent("a3").hash, Size: 2},
		{Root: docs.ID, Path: "a", Seq: 5, Deleted: true},
		{Root: pics.ID, Path: "p", Seq: 1, Hash: newContent("p1").hash, Size: 2},
	}
	if !slices.Equal(refs, want) {
		t.Fatalf("refs since =\n%+v\nwant\n%+v", refs, want)
	}
	for _, s := range []string{"a2", "a3", "p1"} {
		c := newContent(s)
		if !slices.Equal(lists[c.hash], c.chunks) {
			t.Fatalf("chunk list of %s = %v, want %v", s, lists[c.hash], c.chunks)
		}
	}
	if now[docs.ID] != 5 || now[pics.ID] != 1 {
		t.Fatalf("watermark = %v", now)
	}
	if refs, _, _ := refsSinceIn(t, e, now); len(refs) != 0 {
		t.Fatalf("nothing new since the last watermark, got %v", refs)
	}
}

// The fence: a transaction that ran RefsSince cannot commit if a commit
// or a new root landed after its snapshot.
func TestRefsSinceFencesCommits(t *testing.T) {
	e := newEnv(t)
	owner := e.client(t, "owner")
	docs := e.root(t, "docs", owner)
	mustCommit(t, e.db, proposal(docs.ID, "a", nil, newContent("a1"), owner.ID))
	_, wm := collectRefs(t, e.db)

	fenced := func(concurrent func()) error {
		txn := e.kv.NewTransaction(true)
		defer txn.Discard()
		if _, err := e.db.RefsSince(txn, wm, func(Ref, []Chunk) error { return nil }); err != nil {
			t.Fatal(err)
		}
		if err := txn.Delete(append([]byte{0x01}, newContent("x").chunks[0].ID[:]...)); err != nil {
			t.Fatal(err)
		}
		concurrent()
		return txn.Commit()
	}
	if err := fenced(func() {}); err != nil {
		t.Fatalf("nothing concurrent: %v", err)
	}
	if err := fenced(func() {
		mustCommit(t, e.db, proposal(docs.ID, "b", nil, newContent("b1"), owner.ID))
	}); !errors.Is(err, badger.ErrConflict) {
		t.Fatalf("commit after the fence's snapshot: err = %v, want ErrConflict", err)
	}
	if err := fenced(func() { e.root(t, "pics", owner) }); !errors.Is(err, badger.ErrConflict) {
		t.Fatalf("new root after the fence's snapshot: err = %v, want ErrConflict", err)
	}
}
