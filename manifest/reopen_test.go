package manifest

import (
	"context"
	"errors"
	"testing"

	"github.com/dgraph-io/badger/v4"
	"github.com/google/go-cmp/cmp"

	"github.com/quic-s/quics/internal/secret"
)

func TestReopenKeepsEverything(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	owner := e.client(t, "owner")
	root := e.root(t, "r", owner)
	c := newContent("durable")
	v1 := mustCommit(t, e.db, proposal(root.ID, "a/b", nil, c, owner.ID))
	v2 := mustCommit(t, e.db, deletion(root.ID, "a/b", v1, owner.ID))
	if _, err := e.db.AddCandidate(ctx, root.ID, "a/b", Candidate{Kind: CandidateClient, Client: owner.ID, Hash: c.hash, Size: c.size}); err != nil {
		t.Fatal(err)
	}
	wantRoot, err := e.db.RootByID(ctx, root.ID)
	if err != nil {
		t.Fatal(err)
	}
	wantConflict, err := e.db.Conflict(ctx, root.ID, "a/b")
	if err != nil {
		t.Fatal(err)
	}

	e.reopen(t)

	if got, err := e.db.Client(ctx, owner.ID); err != nil || got != owner {
		t.Errorf("client = %+v, %v; want %+v", got, err, owner)
	}
	if _, err := e.db.AuthenticateClient(ctx, owner.ID, "token-owner"); err != nil {
		t.Errorf("token after reopen: %v", err)
	}
	if got, err := e.db.RootByName(ctx, "r"); err != nil || got != wantRoot {
		t.Errorf("root = %+v, %v; want %+v", got, err, wantRoot)
	}
	vs, err := e.db.Versions(ctx, root.ID, "a/b")
	if err != nil || !cmp.Equal(vs, []Version{v1, v2}) {
		t.Errorf("versions = %+v, %v", vs, err)
	}
	if h, err := e.db.Head(ctx, root.ID, "a/b"); err != nil || h != v2.Head() {
		t.Errorf("head = %+v, %v", h, err)
	}
	if got, err := e.db.Conflict(ctx, root.ID, "a/b"); err != nil || !cmp.Equal(got, wantConflict) {
		t.Errorf("conflict = %+v, %v", got, err)
	}
	if list, err := e.db.ChunkList(ctx, c.hash); err != nil || !cmp.Equal(list, c.chunks) {
		t.Errorf("chunk list = %v, %v", list, err)
	}
	if ch, err := e.db.Changes(ctx, root.ID, 0, 0); err != nil || len(ch) != 1 || ch[0].Seq != v2.Seq {
		t.Errorf("changes = %v, %v", ch, err)
	}
	if ok, err := e.db.IsMember(ctx, root.ID, owner.ID); err != nil || !ok {
		t.Errorf("membership = %v, %v", ok, err)
	}
	// The logical clock and the id counter continue.
	v3 := mustCommit(t, e.db, Proposal{Root: root.ID, Path: "a/b", BaseSeq: v2.Seq, Hash: EmptyHash})
	if v3.Seq != v2.Seq+1 {
		t.Errorf("seq after reopen %d, want %d", v3.Seq, v2.Seq+1)
	}
	if r2 := e.root(t, "r2", owner); r2.ID != root.ID+1 {
		t.Errorf("root id after reopen %d, want %d", r2.ID, root.ID+1)
	}
}

func TestSchemaVersion(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	read := func() []byte {
		var raw []byte
		err := e.kv.View(func(txn *badger.Txn) error {
			item, err := txn.Get(schemaKey)
			if err != nil {
				return err
			}
			raw, err = item.ValueCopy(nil)
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		return raw
	}
	if got := read(); !cmp.Equal(got, []byte{0, 0, 0, 1}) {
		t.Fatalf("fresh database schema value %x, want 00000001", got)
	}
	set := func(val []byte) {
		if err := e.kv.Update(func(txn *badger.Txn) error { return txn.Set(schemaKey, val) }); err != nil {
			t.Fatal(err)
		}
	}
	for _, tc := range []struct {
		name string
		val  []byte
	}{
		{"newer", encodeSchemaVersion(SchemaVersion + 1)},
		{"zero", encodeSchemaVersion(0)},
		{"short", []byte{1}},
	} {
		set(tc.val)
		if _, err := Open(ctx, e.kv, testOptions(e.clock)); !errors.Is(err, ErrSchemaVersion) {
			t.Errorf("%s version: Open err = %v, want ErrSchemaVersion", tc.name, err)
		}
	}
	set(encodeSchemaVersion(SchemaVersion))
	if _, err := Open(ctx, e.kv, testOptions(e.clock)); err != nil {
		t.Fatalf("current version: %v", err)
	}

	// Manifest data without a version is refused rather than stamped.
	owner := e.client(t, "owner")
	e.root(t, "r", owner)
	if err := e.kv.Update(func(txn *badger.Txn) error { return txn.Delete(schemaKey) }); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(ctx, e.kv, testOptions(e.clock)); !errors.Is(err, ErrSchemaVersion) {
		t.Errorf("data without version: Open err = %v, want ErrSchemaVersion", err)
	}
}

func TestOpenKeepsCASKeys(t *testing.T) {
	// A database holding only cas keys (prefixes 0x01-0x0F) is fresh for
	// the manifest.
	e := newEnv(t)
	if err := e.kv.Update(func(txn *badger.Txn) error {
		if err := txn.Delete(schemaKey); err != nil {
			return err
		}
		return txn.Set([]byte{casPrefixFirst, 'x'}, []byte("cas"))
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(context.Background(), e.kv, testOptions(e.clock)); err != nil {
		t.Fatalf("Open with cas keys only: %v", err)
	}
}

func TestOpenRejectsBadParams(t *testing.T) {
	e := newEnv(t)
	opts := testOptions(e.clock)
	opts.PasswordParams.Time = 0
	opts.PasswordParams.MemoryKiB = 64 // non-zero, so not defaulted
	if _, err := Open(context.Background(), e.kv, opts); !errors.Is(err, secret.ErrParams) {
		t.Errorf("Open with t=0: err = %v, want secret.ErrParams", err)
	}
}

func TestOpenDefaultsAreStrong(t *testing.T) {
	e := newEnv(t)
	db, err := Open(context.Background(), e.kv, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if db.passwordParams != secret.PasswordParams || db.tokenParams != secret.TokenParams {
		t.Errorf("default params %+v / %+v, want secret.PasswordParams / secret.TokenParams", db.passwordParams, db.tokenParams)
	}
	if db.now == nil {
		t.Error("no default clock")
	}
}
