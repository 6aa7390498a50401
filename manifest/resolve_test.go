package manifest

import (
	"context"
	"errors"
	"testing"
	"time"
)

// TestCommitResolution commits a resolution: the losing sides become
// versions before the winner, in one transaction that also clears the
// conflict it was decided on.
func TestCommitResolution(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	owner, laptop, phone := e.client(t, "owner"), e.client(t, "laptop"), e.client(t, "phone")
	root := e.root(t, "r", owner)
	head := mustCommit(t, e.db, proposal(root.ID, "doc", nil, newContent("server"), owner.ID))
	lost, won := newContent("laptop"), newContent("phone")
	for _, c := range []content{lost, won} {
		if err := e.db.PutChunkList(ctx, c.hash, c.chunks); err != nil {
			t.Fatal(err)
		}
	}
	mtime := time.Date(2024, 4, 5, 6, 7, 8, 9, time.UTC)
	for _, c := range []Candidate{
		{Kind: CandidateServer, Hash: head.Hash, Size: head.Size, Mode: 0o644, BaseSeq: head.Seq},
		{Kind: CandidateClient, Client: laptop.ID, Hash: lost.hash, Size: lost.size, Mode: 0o600, MTime: mtime, BaseSeq: 0},
		{Kind: CandidateClient, Client: phone.ID, Hash: won.hash, Size: won.size, Mode: 0o644, BaseSeq: 0},
	} {
		if _, err := e.db.AddCandidate(ctx, root.ID, "doc", c); err != nil {
			t.Fatal(err)
		}
	}
	c, err := e.db.Conflict(ctx, root.ID, "doc")
	if err != nil {
		t.Fatal(err)
	}

	p := Proposal{
		Root: root.ID, Path: "doc", BaseSeq: head.Seq, BaseHash: head.Hash,
		Hash: won.hash, Size: won.size, Mode: 0o644, Client: phone.ID,
		Conflict: c.Candidates,
		History:  []Version{{Hash: lost.hash, Size: lost.size, Mode: 0o600, MTime: mtime, Client: laptop.ID}},
	}

	// A candidate that changed since the caller read the conflict fails
	// the commit, and nothing is written.
	stale := p
	stale.Conflict = c.Candidates[:2]
	if _, err := e.db.Commit(ctx, stale); !errors.Is(err, ErrConflictChanged) {
		t.Fatalf("commit against a stale conflict: %v, want ErrConflictChanged", err)
	}
	if vs, _ := e.db.Versions(ctx, root.ID, "doc"); len(vs) != 1 {
		t.Fatalf("a failed resolution wrote versions: %+v", vs)
	}

	v := mustCommit(t, e.db, p)
	vs, err := e.db.Versions(ctx, root.ID, "doc")
	if err != nil {
		t.Fatal(err)
	}
	if len(vs) != 3 {
		t.Fatalf("versions %+v, want the head, the loser and the winner", vs)
	}
	loser := vs[1]
	if loser.Seq != head.Seq+1 || loser.Hash != lost.hash || loser.Client != laptop.ID || loser.Mode != 0o600 ||
		!loser.MTime.Equal(mtime) || loser.WallTime.IsZero() {
		t.Errorf("loser version %+v", loser)
	}
	if v.Seq != head.Seq+2 || vs[2] != v || v.Hash != won.hash || v.Client != phone.ID {
		t.Errorf("winner %+v, stored %+v", v, vs[2])
	}
	h, err := e.db.Head(ctx, root.ID, "doc")
	if err != nil || h != v.Head() {
		t.Errorf("head %+v (%v), want the winner", h, err)
	}
	r, _ := e.db.RootByID(ctx, root.ID)
	if r.Seq != v.Seq {
		t.Errorf("root seq %d, want %d", r.Seq, v.Seq)
	}
	// The feed names the path once, at the winner.
	changes, _ := e.db.Changes(ctx, root.ID, 0, 0)
	if len(changes) != 1 || changes[0].Seq != v.Seq {
		t.Errorf("changes %+v, want one at %d", changes, v.Seq)
	}
	if _, err := e.db.Conflict(ctx, root.ID, "doc"); !errors.Is(err, ErrNotFound) {
		t.Errorf("conflict after resolution: %v", err)
	}
	// Resolving again finds no conflict.
	again := p
	again.BaseSeq, again.BaseHash = v.Seq, v.Hash
	if _, err := e.db.Commit(ctx, again); !errors.Is(err, ErrConflictChanged) {
		t.Errorf("second resolution: %v, want ErrConflictChanged", err)
	}
}

func TestCommitHistoryNeedsChunkLists(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	owner := e.client(t, "owner")
	root := e.root(t, "r", owner)
	head := mustCommit(t, e.db, proposal(root.ID, "doc", nil, newContent("a"), owner.ID))
	unknown := newContent("never stored")
	p := proposal(root.ID, "doc", &head, newContent("b"), owner.ID)
	p.History = []Version{{Hash: unknown.hash, Size: unknown.size}}
	if _, err := e.db.Commit(ctx, p); !errors.Is(err, ErrMissingChunkList) {
		t.Errorf("history without a chunk list: %v, want ErrMissingChunkList", err)
	}
	p.History = []Version{{Hash: unknown.hash}} // a zero size with a non-empty hash
	if _, err := e.db.Commit(ctx, p); !errors.Is(err, ErrInvalid) {
		t.Errorf("invalid history version: %v, want ErrInvalid", err)
	}
	// Deletions and the empty file need no list.
	p.History = []Version{{Deleted: true}, {Hash: EmptyHash}}
	v := mustCommit(t, e.db, p)
	vs, _ := e.db.Versions(ctx, root.ID, "doc")
	if len(vs) != 4 || !vs[1].Deleted || vs[2].Hash != EmptyHash || vs[3] != v {
		t.Errorf("versions %+v", vs)
	}
}

func TestVersionsAfter(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	owner := e.client(t, "owner")
	root := e.root(t, "r", owner)
	v1 := mustCommit(t, e.db, proposal(root.ID, "f", nil, newContent("1"), owner.ID))
	mustCommit(t, e.db, proposal(root.ID, "f/longer", nil, newContent("x"), owner.ID))
	v2 := mustCommit(t, e.db, proposal(root.ID, "f", &v1, newContent("2"), owner.ID))
	v3 := mustCommit(t, e.db, deletion(root.ID, "f", v2, owner.ID))
	for _, tt := range []struct {
		after uint64
		want  []Version
	}{
		{0, []Version{v1, v2, v3}},
		{v1.Seq, []Version{v2, v3}},
		{v2.Seq - 1, []Version{v2, v3}},
		{v3.Seq, nil},
		{^uint64(0), nil},
	} {
		got, err := e.db.VersionsAfter(ctx, root.ID, "f", tt.after)
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != len(tt.want) {
			t.Errorf("after %d: %+v, want %+v", tt.after, got, tt.want)
			continue
		}
		for i := range got {
			if got[i] != tt.want[i] {
				t.Errorf("after %d: [%d] = %+v, want %+v", tt.after, i, got[i], tt.want[i])
			}
		}
	}
	if got, err := e.db.VersionsAfter(ctx, root.ID, "nope", 0); err != nil || len(got) != 0 {
		t.Errorf("unknown path: %v, %v", got, err)
	}
}
