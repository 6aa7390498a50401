package manifest

import (
	"context"
	"errors"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestConflicts(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	owner := e.client(t, "owner")
	laptop, phone, tablet := e.client(t, "laptop"), e.client(t, "phone"), e.client(t, "tablet")
	root := e.root(t, "r", owner)
	head := mustCommit(t, e.db, proposal(root.ID, "doc", nil, newContent("server"), owner.ID))

	server := Candidate{Kind: CandidateServer, Hash: head.Hash, Size: head.Size, BaseSeq: head.Seq}
	mine := Candidate{Kind: CandidateClient, Client: laptop.ID, Hash: newContent("laptop").hash, Size: 6, BaseSeq: 0, LastUpdateTimestamp: 4}
	theirs := Candidate{Kind: CandidateClient, Client: phone.ID, Deleted: true, BaseSeq: 0, LastUpdateTimestamp: 9}
	for _, c := range []Candidate{server, mine, theirs} {
		if _, err := e.db.AddCandidate(ctx, root.ID, "doc", c); err != nil {
			t.Fatal(err)
		}
	}
	// A third client adds a third client candidate.
	third := Candidate{Kind: CandidateClient, Client: tablet.ID, Hash: EmptyHash}
	got, err := e.db.AddCandidate(ctx, root.ID, "doc", third)
	if err != nil {
		t.Fatal(err)
	}
	if len(got.Candidates) != 4 || got.Candidates[3].Client != tablet.ID {
		t.Fatalf("after third client: %+v", got.Candidates)
	}
	for _, c := range got.Candidates {
		if c.Created.IsZero() {
			t.Errorf("candidate %+v not stamped", c)
		}
	}
	// The same client replaces its own candidate in place.
	newer := mine
	newer.Hash, newer.Size, newer.LastUpdateTimestamp = newContent("laptop v2").hash, 9, 5
	got, err = e.db.AddCandidate(ctx, root.ID, "doc", newer)
	if err != nil {
		t.Fatal(err)
	}
	if len(got.Candidates) != 4 || got.Candidates[1].Hash != newer.Hash || got.Candidates[1].LastUpdateTimestamp != 5 {
		t.Errorf("after replacement: %+v", got.Candidates)
	}
	stored, err := e.db.Conflict(ctx, root.ID, "doc")
	if err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff(got, stored); d != "" {
		t.Errorf("Conflict differs from AddCandidate's result (-add +stored):\n%s", d)
	}

	if _, err := e.db.AddCandidate(ctx, root.ID, "other", server); err != nil {
		t.Fatal(err)
	}
	list, err := e.db.ListConflicts(ctx, root.ID)
	if err != nil || len(list) != 2 || list[0].Path != "doc" || list[1].Path != "other" {
		t.Fatalf("ListConflicts = %+v, %v", list, err)
	}

	var walked int
	err = e.db.ForEachCandidate(ctx, func(r RootID, path string, c Candidate) error {
		if r != root.ID {
			t.Errorf("candidate of root %d", r)
		}
		walked++
		return nil
	})
	if err != nil || walked != 5 {
		t.Errorf("ForEachCandidate walked %d, %v; want 5", walked, err)
	}

	if err := e.db.ClearConflict(ctx, root.ID, "doc"); err != nil {
		t.Fatal(err)
	}
	if _, err := e.db.Conflict(ctx, root.ID, "doc"); !errors.Is(err, ErrNotFound) {
		t.Errorf("cleared conflict err = %v", err)
	}
	if err := e.db.ClearConflict(ctx, root.ID, "doc"); !errors.Is(err, ErrNotFound) {
		t.Errorf("second clear err = %v", err)
	}
	if list, err := e.db.ListConflicts(ctx, root.ID); err != nil || len(list) != 1 {
		t.Errorf("ListConflicts after clear = %+v, %v", list, err)
	}
}

func TestAddCandidateRejects(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	owner := e.client(t, "owner")
	root := e.root(t, "r", owner)
	h := newContent("x").hash
	for _, tc := range []struct {
		name string
		root RootID
		path string
		c    Candidate
		want error
	}{
		{"no kind", root.ID, "f", Candidate{Hash: h, Size: 1}, ErrInvalid},
		{"client without id", root.ID, "f", Candidate{Kind: CandidateClient, Hash: h, Size: 1}, ErrInvalid},
		{"server with client id", root.ID, "f", Candidate{Kind: CandidateServer, Client: owner.ID, Hash: h, Size: 1}, ErrInvalid},
		{"deleted with hash", root.ID, "f", Candidate{Kind: CandidateServer, Hash: h, Deleted: true}, ErrInvalid},
		{"bad path", root.ID, "", Candidate{Kind: CandidateServer, Hash: h, Size: 1}, ErrInvalid},
		{"unknown root", 99, "f", Candidate{Kind: CandidateServer, Hash: h, Size: 1}, ErrNotFound},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := e.db.AddCandidate(ctx, tc.root, tc.path, tc.c); !errors.Is(err, tc.want) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
		})
	}
}
