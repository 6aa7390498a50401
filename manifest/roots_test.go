package manifest

import (
	"context"
	"errors"
	"testing"

	"github.com/dgraph-io/badger/v4"
	"github.com/google/uuid"

	"github.com/quic-s/quics/internal/secret"
)

func TestRoots(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	owner := e.client(t, "owner")
	r, err := e.db.CreateRoot(ctx, NewRoot{Name: "photos", Owner: owner.ID, Password: "open sesame", Chunking: testChunking,
		Retention: Retention{Kind: KeepLast, Value: 5}})
	if err != nil {
		t.Fatal(err)
	}
	if r.ID != 1 || r.Name != "photos" || r.Owner != owner.ID || r.Chunking != testChunking || r.Seq != 0 ||
		r.Created.IsZero() || r.Retention != (Retention{Kind: KeepLast, Value: 5}) {
		t.Errorf("created %+v", r)
	}
	if p, err := secret.ParamsOf(r.PasswordHash); err != nil || p != cheapParams {
		t.Errorf("password hashed with %+v, %v", p, err)
	}
	if ok, err := e.db.IsMember(ctx, r.ID, owner.ID); err != nil || !ok {
		t.Errorf("owner is not a member: %v, %v", ok, err)
	}
	if _, err := e.db.CreateRoot(ctx, NewRoot{Name: "photos", Owner: owner.ID, Chunking: testChunking}); !errors.Is(err, ErrExists) {
		t.Errorf("duplicate name err = %v, want ErrExists", err)
	}
	if _, err := e.db.CreateRoot(ctx, NewRoot{Name: "orphan", Owner: uuid.New(), Chunking: testChunking}); !errors.Is(err, ErrNotFound) {
		t.Errorf("unknown owner err = %v, want ErrNotFound", err)
	}
	r2 := e.root(t, "docs", owner)
	if r2.ID != 2 {
		t.Errorf("second root id %d, want 2 (failed creations must not consume ids)", r2.ID)
	}

	byName, err := e.db.RootByName(ctx, "photos")
	if err != nil || byName != r {
		t.Errorf("RootByName = %+v, %v", byName, err)
	}
	byID, err := e.db.RootByID(ctx, r2.ID)
	if err != nil || byID != r2 {
		t.Errorf("RootByID = %+v, %v", byID, err)
	}
	if _, err := e.db.RootByName(ctx, "nope"); !errors.Is(err, ErrNotFound) {
		t.Errorf("RootByName(unknown) err = %v", err)
	}
	if _, err := e.db.RootByID(ctx, 77); !errors.Is(err, ErrNotFound) {
		t.Errorf("RootByID(unknown) err = %v", err)
	}
	roots, err := e.db.ListRoots(ctx)
	if err != nil || len(roots) != 2 || roots[0].ID != 1 || roots[1].ID != 2 {
		t.Errorf("ListRoots = %+v, %v", roots, err)
	}

	// Passwords and joining.
	if err := e.db.VerifyRootPassword(ctx, r.ID, "open sesame"); err != nil {
		t.Errorf("right password: %v", err)
	}
	if err := e.db.VerifyRootPassword(ctx, r.ID, "guess"); !errors.Is(err, ErrBadCredentials) {
		t.Errorf("wrong password err = %v", err)
	}
	phone := e.client(t, "phone")
	if _, err := e.db.Join(ctx, "photos", phone.ID, "guess"); !errors.Is(err, ErrBadCredentials) {
		t.Errorf("Join(wrong password) err = %v", err)
	}
	if ok, _ := e.db.IsMember(ctx, r.ID, phone.ID); ok {
		t.Error("failed join made a member")
	}
	joined, err := e.db.Join(ctx, "photos", phone.ID, "open sesame")
	if err != nil || joined.ID != r.ID {
		t.Fatalf("Join = %+v, %v", joined, err)
	}
	if _, err := e.db.Join(ctx, "photos", phone.ID, "open sesame"); !errors.Is(err, ErrExists) {
		t.Errorf("second join err = %v, want ErrExists", err)
	}
	if _, err := e.db.Join(ctx, "nope", phone.ID, "x"); !errors.Is(err, ErrNotFound) {
		t.Errorf("join unknown root err = %v", err)
	}
	if err := e.db.AddMember(ctx, r.ID, uuid.New()); !errors.Is(err, ErrNotFound) {
		t.Errorf("AddMember(unknown client) err = %v", err)
	}
	if err := e.db.AddMember(ctx, 77, phone.ID); !errors.Is(err, ErrNotFound) {
		t.Errorf("AddMember(unknown root) err = %v", err)
	}
	if err := e.db.AddMember(ctx, r2.ID, phone.ID); err != nil {
		t.Fatal(err)
	}
	members, err := e.db.MembersOfRoot(ctx, r.ID)
	if err != nil || len(members) != 2 {
		t.Fatalf("MembersOfRoot = %+v, %v", members, err)
	}
	for _, m := range members {
		if m.Joined.IsZero() || (m.Client != owner.ID && m.Client != phone.ID) {
			t.Errorf("member %+v", m)
		}
	}
	of, err := e.db.RootsOfClient(ctx, phone.ID)
	if err != nil || len(of) != 2 || of[0].ID != r.ID || of[1].ID != r2.ID {
		t.Errorf("RootsOfClient = %+v, %v", of, err)
	}

	// Leaving.
	if err := e.db.RemoveMember(ctx, r.ID, phone.ID); err != nil {
		t.Fatal(err)
	}
	if err := e.db.RemoveMember(ctx, r.ID, phone.ID); !errors.Is(err, ErrNotFound) {
		t.Errorf("second leave err = %v", err)
	}
	of, err = e.db.RootsOfClient(ctx, phone.ID)
	if err != nil || len(of) != 1 || of[0].ID != r2.ID {
		t.Errorf("RootsOfClient after leave = %+v, %v", of, err)
	}
}

func TestCreateRootRejects(t *testing.T) {
	e := newEnv(t)
	owner := e.client(t, "owner")
	for _, tc := range []struct {
		name string
		nr   NewRoot
	}{
		{"empty name", NewRoot{Owner: owner.ID, Chunking: testChunking}},
		{"name with NUL", NewRoot{Name: "a\x00", Owner: owner.ID, Chunking: testChunking}},
		{"no chunk params", NewRoot{Name: "r", Owner: owner.ID}},
		{"min above avg", NewRoot{Name: "r", Owner: owner.ID, Chunking: ChunkParams{Min: 10, Avg: 5, Max: 20}}},
		{"max too large", NewRoot{Name: "r", Owner: owner.ID, Chunking: ChunkParams{Min: 1, Avg: 2, Max: MaxChunkSize + 1}}},
		{"keep last 0", NewRoot{Name: "r", Owner: owner.ID, Chunking: testChunking, Retention: Retention{Kind: KeepLast}}},
		{"keep all with value", NewRoot{Name: "r", Owner: owner.ID, Chunking: testChunking, Retention: Retention{Value: 3}}},
		{"unknown retention", NewRoot{Name: "r", Owner: owner.ID, Chunking: testChunking, Retention: Retention{Kind: 9, Value: 1}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := e.db.CreateRoot(context.Background(), tc.nr); !errors.Is(err, ErrInvalid) {
				t.Fatalf("err = %v, want ErrInvalid", err)
			}
		})
	}
}

func TestRemoveRoot(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	owner := e.client(t, "owner")
	phone := e.client(t, "phone")
	doomed := e.root(t, "doomed", owner)
	kept := e.root(t, "kept", owner)
	if err := e.db.AddMember(ctx, doomed.ID, phone.ID); err != nil {
		t.Fatal(err)
	}
	c := newContent("payload")
	for _, r := range []Root{doomed, kept} {
		v := mustCommit(t, e.db, proposal(r.ID, "f", nil, c, owner.ID))
		mustCommit(t, e.db, proposal(r.ID, "f", &v, newContent("payload 2"), owner.ID))
		if _, err := e.db.AddCandidate(ctx, r.ID, "f", Candidate{Kind: CandidateServer, Hash: c.hash, Size: c.size}); err != nil {
			t.Fatal(err)
		}
	}
	if err := e.db.RemoveRoot(ctx, doomed.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := e.db.RootByID(ctx, doomed.ID); !errors.Is(err, ErrNotFound) {
		t.Errorf("RootByID after removal err = %v", err)
	}
	if _, err := e.db.RootByName(ctx, "doomed"); !errors.Is(err, ErrNotFound) {
		t.Errorf("RootByName after removal err = %v", err)
	}
	for _, prefix := range []byte{prefixHead, prefixVersion, prefixConflict, prefixFeed, prefixMember} {
		if n := countKeys(t, e, rootScope(prefix, doomed.ID)); n != 0 {
			t.Errorf("%d keys left under prefix %#x of the removed root", n, prefix)
		}
		if n := countKeys(t, e, rootScope(prefix, kept.ID)); n == 0 {
			t.Errorf("no keys left under prefix %#x of the other root", prefix)
		}
	}
	for _, client := range []Client{owner, phone} {
		roots, err := e.db.RootsOfClient(ctx, client.ID)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range roots {
			if r.ID == doomed.ID {
				t.Errorf("client %s still lists the removed root", client.Name)
			}
		}
	}
	if _, err := e.db.Commit(ctx, proposal(doomed.ID, "g", nil, c, owner.ID)); !errors.Is(err, ErrNotFound) {
		t.Errorf("commit to removed root err = %v", err)
	}
	// Chunk lists are shared and stay for GC.
	if has, err := e.db.HasChunkList(ctx, c.hash); err != nil || !has {
		t.Errorf("chunk list gone: %v, %v", has, err)
	}
	// The name is free again; the id is not reused.
	again := e.root(t, "doomed", owner)
	if again.ID <= kept.ID {
		t.Errorf("recreated root got id %d, want a fresh one above %d", again.ID, kept.ID)
	}
	if err := e.db.ListHeads(ctx, again.ID, func(string, Head) error { return errors.New("a head in a fresh root") }); err != nil {
		t.Error(err)
	}
	if err := e.db.RemoveRoot(ctx, doomed.ID); !errors.Is(err, ErrNotFound) {
		t.Errorf("second removal err = %v", err)
	}
}

func countKeys(t *testing.T, e *testEnv, prefix []byte) int {
	t.Helper()
	n := 0
	err := e.db.view(context.Background(), "count", func(txn *badger.Txn) error {
		return scan(context.Background(), txn, prefix, true, func([]byte, []byte) error { n++; return nil })
	})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// RootsGeneration moves with every change to a root's record or to a
// membership, and not with commits (which only move a root's seq).
func TestRootsGeneration(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	owner, other := e.client(t, "owner"), e.client(t, "other")
	steps := []struct {
		name  string
		do    func() error
		moves bool
	}{
		{"create root", func() error {
			_, err := e.db.CreateRoot(ctx, NewRoot{Name: "docs", Owner: owner.ID, Chunking: testChunking})
			return err
		}, true},
		{"commit", func() error { _, err := e.db.Commit(ctx, proposal(1, "f", nil, newContent("x"), owner.ID)); return err }, false},
		{"add member", func() error { return e.db.AddMember(ctx, 1, other.ID) }, true},
		{"remove member", func() error { return e.db.RemoveMember(ctx, 1, other.ID) }, true},
		{"set retention", func() error { return e.db.SetRetention(ctx, 1, Retention{Kind: KeepLast, Value: 2}) }, true},
		{"remove client", func() error { return e.db.RemoveClient(ctx, other.ID) }, true},
		{"remove root", func() error { return e.db.RemoveRoot(ctx, 1) }, true},
	}
	for _, s := range steps {
		before := e.db.RootsGeneration()
		if err := s.do(); err != nil {
			t.Fatalf("%s: %v", s.name, err)
		}
		if moved := e.db.RootsGeneration() != before; moved != s.moves {
			t.Errorf("%s: generation moved %v, want %v", s.name, moved, s.moves)
		}
	}
}
