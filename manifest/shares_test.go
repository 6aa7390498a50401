package manifest

import (
	"context"
	"encoding/hex"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/google/go-cmp/cmp"
	"github.com/google/uuid"

	"github.com/quic-s/quics/cas"
)

func TestShareKeyLayout(t *testing.T) {
	token := TokenHash{0: 0xab, 31: 0xcd}
	id := ShareID{1, 2, 3, 4, 5, 6}
	seen := map[byte]bool{}
	for _, p := range prefixTable {
		seen[p.Prefix] = true
	}
	for _, tc := range []struct {
		key  []byte
		want string
	}{
		{shareKey(token), "1d" + "ab" + strings.Repeat("00", 30) + "cd"},
		{shareIDKey(id), "1e" + "010203040506"},
	} {
		if got := hex.EncodeToString(tc.key); got != tc.want {
			t.Errorf("key %s, want %s", got, tc.want)
		}
		if !seen[tc.key[0]] {
			t.Errorf("prefix %#x missing from prefixTable", tc.key[0])
		}
	}
	if got, err := parseShareKey(shareKey(token)); err != nil || got != token {
		t.Errorf("parseShareKey = %x, %v", got, err)
	}
	if _, err := parseShareKey(shareIDKey(id)); !errors.Is(err, ErrCorrupt) {
		t.Errorf("parseShareKey of an id key: %v, want ErrCorrupt", err)
	}
	if got, err := ParseShareID(id.String()); err != nil || got != id {
		t.Errorf("ParseShareID(%s) = %v, %v", id, got, err)
	}
	for _, bad := range []string{"", "01020304050", "0102030405067", "zz0203040506"} {
		if _, err := ParseShareID(bad); !errors.Is(err, ErrInvalid) {
			t.Errorf("ParseShareID(%q): %v, want ErrInvalid", bad, err)
		}
	}
}

// shareEnv is a root "r" with a member, a file "f" with two versions, and
// an outsider.
type shareEnv struct {
	*testEnv
	owner, outsider Client
	root            Root
	v1, v2          Version
	c1, c2          content
}

func newShareEnv(t *testing.T) *shareEnv {
	t.Helper()
	e := &shareEnv{testEnv: newEnv(t)}
	e.owner, e.outsider = e.client(t, "owner"), e.client(t, "outsider")
	e.root = e.testEnv.root(t, "r", e.owner)
	e.c1, e.c2 = newContent("one"), newContent("two")
	e.v1 = mustCommit(t, e.db, proposal(e.root.ID, "f", nil, e.c1, e.owner.ID))
	e.v2 = mustCommit(t, e.db, proposal(e.root.ID, "f", &e.v1, e.c2, e.owner.ID))
	return e
}

func (e *shareEnv) share(t *testing.T, token string, ns NewShare) Share {
	t.Helper()
	ns.Token = HashShareToken(token)
	if ns.Root == 0 {
		ns.Root = e.root.ID
	}
	if ns.Path == "" {
		ns.Path = "f"
	}
	if ns.Client == uuid.Nil {
		ns.Client = e.owner.ID
	}
	sh, err := e.db.CreateShare(context.Background(), ns)
	if err != nil {
		t.Fatalf("create share %+v: %v", ns, err)
	}
	return sh
}

func TestCreateShareChecksWhatTheLinkServes(t *testing.T) {
	e := newShareEnv(t)
	ctx := context.Background()
	del := mustCommit(t, e.db, deletion(e.root.ID, "gone", mustCommit(t, e.db, proposal(e.root.ID, "gone", nil, e.c1, e.owner.ID)), e.owner.ID))

	base := NewShare{Token: HashShareToken("t"), Root: e.root.ID, Path: "f", Client: e.owner.ID}
	for _, tc := range []struct {
		name string
		edit func(*NewShare)
		want error
	}{
		{"outsider", func(ns *NewShare) { ns.Client = e.outsider.ID }, ErrNotMember},
		{"unknown root", func(ns *NewShare) { ns.Root = 99 }, ErrNotFound},
		{"unknown file", func(ns *NewShare) { ns.Path = "nope" }, ErrNotFound},
		{"deleted file", func(ns *NewShare) { ns.Path = "gone" }, ErrNotFound},
		{"pinned deletion", func(ns *NewShare) { ns.Path, ns.PinSeq = "gone", del.Seq }, ErrNotFound},
		{"unknown version", func(ns *NewShare) { ns.PinSeq = 99 }, ErrNotFound},
		{"path with NUL", func(ns *NewShare) { ns.Path = "a\x00b" }, ErrInvalid},
		{"no client", func(ns *NewShare) { ns.Client = uuid.Nil }, ErrInvalid},
	} {
		ns := base
		tc.edit(&ns)
		if _, err := e.db.CreateShare(ctx, ns); !errors.Is(err, tc.want) {
			t.Errorf("%s: %v, want %v", tc.name, err, tc.want)
		}
	}
	if err := e.db.ListShares(ctx, e.clock.t, func(sh Share, _ ShareState) error {
		t.Errorf("a refused share was stored: %+v", sh)
		return nil
	}); err != nil {
		t.Fatal(err)
	}

	expires := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	head := e.share(t, "head-token", NewShare{MaxDownloads: 3, Expires: expires})
	pinned := e.share(t, "pin-token", NewShare{PinSeq: e.v1.Seq})
	if head.ID == pinned.ID {
		t.Fatal("two shares got the same id")
	}
	if head.Pin != nil || head.MaxDownloads != 3 || !head.Expires.Equal(expires) || head.Created.IsZero() {
		t.Errorf("head share %+v", head)
	}
	want := SharePin{Seq: e.v1.Seq, Hash: e.v1.Hash, Size: e.v1.Size, Mode: e.v1.Mode, MTime: e.v1.MTime}
	if pinned.Pin == nil || *pinned.Pin != want {
		t.Errorf("pinned share pin %+v, want %+v", pinned.Pin, want)
	}
	if _, err := e.db.CreateShare(ctx, NewShare{Token: HashShareToken("pin-token"), Root: e.root.ID, Path: "f", Client: e.owner.ID}); !errors.Is(err, ErrExists) {
		t.Errorf("a second share with the same token: %v, want ErrExists", err)
	}

	e.reopen(t)
	for _, sh := range []Share{head, pinned} {
		byID, err := e.db.Share(ctx, sh.ID)
		if err != nil {
			t.Fatal(err)
		}
		byToken, err := e.db.ShareByToken(ctx, sh.Token)
		if err != nil {
			t.Fatal(err)
		}
		if d := cmp.Diff(sh, byID); d != "" {
			t.Errorf("share by id after reopen (-want +got):\n%s", d)
		}
		if d := cmp.Diff(sh, byToken); d != "" {
			t.Errorf("share by token after reopen (-want +got):\n%s", d)
		}
	}
	if _, err := e.db.ShareByToken(ctx, HashShareToken("unknown")); !errors.Is(err, ErrNotFound) {
		t.Errorf("unknown token: %v, want ErrNotFound", err)
	}
}

func TestShareServesHeadOrPin(t *testing.T) {
	e := newShareEnv(t)
	ctx := context.Background()
	now := e.clock.t
	head := e.share(t, "head", NewShare{})
	pinned := e.share(t, "pin", NewShare{PinSeq: e.v1.Seq})

	serves := func(sh Share, want content) {
		t.Helper()
		c, err := e.db.ResolveShare(ctx, sh.Token, now)
		if err != nil {
			t.Fatalf("resolve %s: %v", sh.ID, err)
		}
		if c.Hash != want.hash || c.Size != want.size || !cmp.Equal(c.Chunks, want.chunks) {
			t.Errorf("share %s serves %s (%d bytes, %v), want %s", sh.ID, c.Hash.Short(), c.Size, c.Chunks, want.hash.Short())
		}
	}
	serves(head, e.c2)
	serves(pinned, e.c1)

	c3 := newContent("three")
	v3 := mustCommit(t, e.db, proposal(e.root.ID, "f", &e.v2, c3, e.owner.ID))
	serves(head, c3)
	serves(pinned, e.c1)

	// A download prepared for the old head is not counted.
	if _, err := e.db.CountShareDownload(ctx, head.Token, now, e.c2.hash); !errors.Is(err, ErrShareMoved) {
		t.Errorf("count with a stale content: %v, want ErrShareMoved", err)
	}
	if sh, _ := e.db.Share(ctx, head.ID); sh.Downloads != 0 {
		t.Errorf("a refused download was counted: %d", sh.Downloads)
	}

	// A deleted head serves nothing; the pinned version still does.
	mustCommit(t, e.db, deletion(e.root.ID, "f", v3, e.owner.ID))
	if _, err := e.db.ResolveShare(ctx, head.Token, now); !errors.Is(err, ErrNotFound) {
		t.Errorf("head of a deleted file: %v, want ErrNotFound", err)
	}
	serves(pinned, e.c1)

	empty := content{hash: EmptyHash, chunks: []Chunk{}}
	mustCommit(t, e.db, proposal(e.root.ID, "empty", nil, empty, e.owner.ID))
	serves(e.share(t, "empty", NewShare{Path: "empty"}), empty)
}

func TestShareDownloadLimitHoldsUnderConcurrency(t *testing.T) {
	e := newShareEnv(t)
	ctx := context.Background()
	now := e.clock.t
	const limit, tries = 3, 12
	sh := e.share(t, "limited", NewShare{MaxDownloads: limit})

	var wg sync.WaitGroup
	errs := make(chan error, tries)
	for range tries {
		wg.Go(func() {
			_, err := e.db.CountShareDownload(ctx, sh.Token, now, e.c2.hash)
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	ok := 0
	for err := range errs {
		switch {
		case err == nil:
			ok++
		case !errors.Is(err, ErrShareGone):
			t.Errorf("download: %v, want success or ErrShareGone", err)
		}
	}
	if ok != limit {
		t.Errorf("%d downloads counted, want exactly %d", ok, limit)
	}
	got, err := e.db.Share(ctx, sh.ID)
	if err != nil || got.Downloads != limit || !got.LastDownload.Equal(now) {
		t.Errorf("after the downloads: %+v, %v", got, err)
	}
	states := map[ShareID]ShareState{}
	if err := e.db.ListShares(ctx, now, func(sh Share, st ShareState) error { states[sh.ID] = st; return nil }); err != nil {
		t.Fatal(err)
	}
	if states[sh.ID] != ShareExhausted {
		t.Errorf("state %q, want exhausted", states[sh.ID])
	}
}

func TestShareExpiresAndIsRevoked(t *testing.T) {
	e := newShareEnv(t)
	ctx := context.Background()
	expires := e.clock.t.Add(time.Hour)
	sh := e.share(t, "soon", NewShare{Expires: expires})
	state := func(now time.Time) ShareState {
		t.Helper()
		var st ShareState
		err := e.db.ListShares(ctx, now, func(got Share, s ShareState) error {
			if got.ID == sh.ID {
				st = s
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		return st
	}
	if _, err := e.db.ResolveShare(ctx, sh.Token, expires.Add(-time.Nanosecond)); err != nil {
		t.Errorf("before expiry: %v", err)
	}
	if _, err := e.db.CountShareDownload(ctx, sh.Token, expires, e.c2.hash); !errors.Is(err, ErrShareGone) {
		t.Errorf("at expiry: %v, want ErrShareGone", err)
	}
	if st := state(expires); st != ShareExpired {
		t.Errorf("state at expiry %q", st)
	}

	now := e.clock.t
	if st := state(now); st != ShareActive {
		t.Fatalf("state %q, want active", st)
	}
	if err := e.db.AddMember(ctx, e.root.ID, e.outsider.ID); err != nil {
		t.Fatal(err)
	}
	if err := e.db.RemoveMember(ctx, e.root.ID, e.owner.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := e.db.ResolveShare(ctx, sh.Token, now); !errors.Is(err, ErrShareGone) {
		t.Errorf("after its creator left: %v, want ErrShareGone", err)
	}
	if st := state(now); st != ShareRevoked {
		t.Errorf("state after its creator left %q", st)
	}
	other := e.share(t, "other", NewShare{Client: e.outsider.ID})
	if err := e.db.RemoveRoot(ctx, e.root.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := e.db.ResolveShare(ctx, other.Token, now); !errors.Is(err, ErrShareGone) {
		t.Errorf("after its root was removed: %v, want ErrShareGone", err)
	}
}

func TestRemoveShare(t *testing.T) {
	e := newShareEnv(t)
	ctx := context.Background()
	sh := e.share(t, "tok", NewShare{})
	refuse := errors.New("not yours")
	if _, err := e.db.RemoveShare(ctx, sh.ID, func(Share) error { return refuse }); !errors.Is(err, refuse) {
		t.Fatalf("refused removal: %v", err)
	}
	if _, err := e.db.Share(ctx, sh.ID); err != nil {
		t.Fatalf("a refused removal removed: %v", err)
	}
	var seen Share
	got, err := e.db.RemoveShare(ctx, sh.ID, func(s Share) error { seen = s; return nil })
	if err != nil || got.ID != sh.ID || seen.ID != sh.ID {
		t.Fatalf("RemoveShare = %+v, %v (check saw %+v)", got, err, seen)
	}
	if _, err := e.db.Share(ctx, sh.ID); !errors.Is(err, ErrNotFound) {
		t.Errorf("by id after removal: %v", err)
	}
	if _, err := e.db.ResolveShare(ctx, sh.Token, e.clock.t); !errors.Is(err, ErrNotFound) {
		t.Errorf("by token after removal: %v", err)
	}
	if _, err := e.db.RemoveShare(ctx, sh.ID, nil); !errors.Is(err, ErrNotFound) {
		t.Errorf("second removal: %v", err)
	}
}

// TestPinnedSharesAreGCRoots checks what gc is told: the content of an
// active pinned link, even after retention dropped the version, and
// nothing for links that follow the head or no longer serve.
func TestPinnedSharesAreGCRoots(t *testing.T) {
	e := newShareEnv(t)
	ctx := context.Background()
	now := e.clock.t
	pinned := e.share(t, "pin", NewShare{PinSeq: e.v1.Seq})
	e.share(t, "head", NewShare{})
	used := e.share(t, "used", NewShare{PinSeq: e.v2.Seq, MaxDownloads: 1})
	if _, err := e.db.CountShareDownload(ctx, used.Token, now, e.c2.hash); err != nil {
		t.Fatal(err)
	}
	if n, err := e.db.DropVersions(ctx, e.root.ID, "f", []uint64{e.v1.Seq}); err != nil || n != 1 {
		t.Fatalf("drop v1: %d, %v", n, err)
	}

	contents, err := e.db.PinnedShareContents(ctx, now)
	if err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff([]cas.ID{e.c1.hash}, contents.List()); d != "" {
		t.Errorf("pinned contents (-want +got):\n%s", d)
	}
	var refs []Ref
	err = e.kv.View(func(txn *badger.Txn) error {
		return e.db.PinnedSharesTxn(txn, now, func(ref Ref, chunks []Chunk) error {
			if !cmp.Equal(chunks, e.c1.chunks) {
				t.Errorf("chunks of %s: %v, want %v", ref.Hash.Short(), chunks, e.c1.chunks)
			}
			refs = append(refs, ref)
			return nil
		})
	})
	if err != nil {
		t.Fatal(err)
	}
	want := []Ref{{Root: e.root.ID, Path: "f", Seq: e.v1.Seq, Hash: e.c1.hash, Size: e.c1.size}}
	if d := cmp.Diff(want, refs); d != "" {
		t.Errorf("refs in txn (-want +got):\n%s", d)
	}
	// The dropped version is still served.
	if c, err := e.db.ResolveShare(ctx, pinned.Token, now); err != nil || c.Hash != e.c1.hash {
		t.Errorf("pinned link after its version was dropped: %+v, %v", c, err)
	}
	if _, err := e.db.RemoveShare(ctx, pinned.ID, nil); err != nil {
		t.Fatal(err)
	}
	if contents, err := e.db.PinnedShareContents(ctx, now); err != nil || len(contents) != 0 {
		t.Errorf("after stopping the link: %v, %v", contents.List(), err)
	}
}

func FuzzShareRecord(f *testing.F) {
	token := TokenHash{7: 7}
	seeds := []Share{
		{ID: ShareID{1}, Token: token, Root: 3, Path: "a b/c&d#e.txt", Client: uuid.New(), Created: time.Unix(5, 0).UTC(), MaxDownloads: 2, Downloads: 1},
		{ID: ShareID{2}, Token: token, Root: 3, Path: "f", Client: uuid.New(), Expires: time.Unix(9, 0).UTC(),
			Pin: &SharePin{Seq: 4, Hash: cas.Sum([]byte("x")), Size: 1, Mode: 0o600, MTime: time.Unix(3, 0).UTC()}},
	}
	fuzzRecord(f, seeds, encodeShare, func(b []byte) (Share, error) { return decodeShare(token, b) })
}
